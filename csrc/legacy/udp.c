// SPDX-License-Identifier: MIT
/*
 * The original libudpEvent.so's four calls, driving one default tracer.
 *
 * cleanup() may run in a signal handler that interrupted DequeuePerfEvent()
 * on the same thread (the original test client does exactly that), so
 * nothing here takes a lock: the default tracer is published through an
 * atomic pointer, callers count themselves in `users`, and a retired
 * tracer is freed only once no caller can still hold it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "env.h"
#include "udpevent.h"

static _Atomic(struct udpevent *) current;
static _Atomic unsigned int users;
static _Atomic(struct udpevent *) retired; /* linked by ->retired_next */
static _Atomic unsigned int adding;

/* The list link lives in the handle, which only udp_tracer.h knows. */
struct udpevent **te_udp_retired_next(struct udpevent *u);

static void reap(void)
{
	struct udpevent *u = atomic_exchange(&retired, NULL);

	while (u) {
		struct udpevent *next = *te_udp_retired_next(u);

		udpevent_free(u);
		u = next;
	}
}

static struct udpevent *get(void)
{
	atomic_fetch_add(&users, 1);
	return atomic_load(&current);
}

static void put(void)
{
	if (atomic_fetch_sub(&users, 1) == 1 && atomic_load(&retired))
		reap();
}

/* UDPEVENT_FLUSH_INTERVAL (seconds) and UDPEVENT_QUEUE_SIZE tune it. */
void AddProbe(void)
{
	struct udpevent_options o;
	struct udpevent *u;

	if (atomic_exchange(&adding, 1)) {
		fprintf(stderr,
			"udpevent: AddProbe: another AddProbe is attaching; this call changes nothing\n");
		return;
	}
	if (atomic_load(&current)) {
		fprintf(stderr,
			"udpevent: AddProbe: already attached; this call changes nothing\n");
		goto out;
	}
	udpevent_options_init(&o);
	o.flush_interval_ms =
		te_env_u32("udpevent", "UDPEVENT_FLUSH_INTERVAL", 1000);
	o.queue_size = te_env_u32("udpevent", "UDPEVENT_QUEUE_SIZE", 1);
	if (udpevent_open(&o, &u)) {
		fprintf(stderr, "udpevent: AddProbe failed: %s\n",
			udpevent_last_error());
		goto out;
	}
	if (*udpevent_warnings(u))
		fprintf(stderr, "udpevent: %s\n", udpevent_warnings(u));
	atomic_store(&current, u);
out:
	atomic_store(&adding, 0);
}

unsigned getStatus(void)
{
	struct udpevent *u = get();
	unsigned status = udpevent_status(u);

	put();
	return status;
}

/* src is NUL-terminated within src_len; dst gets at most len - 1 of it. */
static void copy_text(char *dst, size_t len, const char *src, size_t src_len)
{
	size_t n = strnlen(src, src_len < len - 1 ? src_len : len - 1);

	memcpy(dst, src, n);
	dst[n] = 0;
}

struct udp_event_t DequeuePerfEvent(void)
{
	struct udpevent_report r;
	struct udp_event_t ev;
	struct udpevent *u = get();

	memset(&ev, 0, sizeof(ev));
	if (u && udpevent_dequeue(u, &r, -1) == 1) {
		ev.family = r.family;
		ev.pid = r.pid;
		ev.UserId = r.uid;
		ev.EventTime = r.time_ns;
		ev.SPT = r.sport;
		ev.DPT = r.dport;
		copy_text(ev.task, sizeof(ev.task), r.task, sizeof(r.task));
		ev.rx_b = r.rx_bytes;
		ev.tx_b = r.tx_bytes;
		ev.rxPkts = r.rx_datagrams;
		ev.txPkts = r.tx_datagrams;
		copy_text(ev.SADDR, sizeof(ev.SADDR), r.saddr, sizeof(r.saddr));
		copy_text(ev.DADDR, sizeof(ev.DADDR), r.daddr, sizeof(r.daddr));
	}
	put();
	return ev;
}

/* Detach now (its last reports are made); free once unused. */
void cleanup(void)
{
	struct udpevent *u = atomic_exchange(&current, NULL);

	if (u) {
		udpevent_close(u);
		*te_udp_retired_next(u) = atomic_load(&retired);
		while (!atomic_compare_exchange_weak(&retired,
						     te_udp_retired_next(u), u))
			;
	}
	if (!atomic_load(&users))
		reap();
}

int udpevent_default_stats(struct udpevent_stats *st)
{
	struct udpevent *u = get();
	int err = u ? udpevent_stats(u, st) : -ENODEV;

	put();
	return err;
}

/* dlclose() or exit() while attached: stop the thread before its code
 * is unmapped. */
__attribute__((destructor)) static void unload(void)
{
	cleanup();
}
