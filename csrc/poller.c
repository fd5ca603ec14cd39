// SPDX-License-Identifier: MIT
/*
 * The poller thread: moves records from the kernel ring buffer into the
 * queue. It wakes on the ring buffer's fd, drains it, publishes the batch
 * (one futex wake at most, and only if someone waits), then naps for
 * TE_BATCH_NS before draining again while records keep coming. Under load
 * that bounds wake-ups to about 1/TE_BATCH_NS per second instead of one per
 * event; when idle it sleeps in epoll and the first record wakes it (the
 * built-in program wakes it only then: see drain_or_go_idle()), or the
 * next second's te_bpf_tick().
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "convert.h"
#include "sync.h"
#include "tracer.h"

#define TE_BATCH_NS 1000000 /* 1 ms: adds at most this much latency */
#define TE_TICK_MS  1000    /* te_bpf_tick() period, even when idle */

/* Said once, the first time: the program does not follow the contract. */
static void warn_record_size(struct tcpevent *t, size_t size)
{
	if (atomic_load_explicit(&t->runtime_warning_set, memory_order_relaxed))
		return;
	snprintf(t->runtime_warning, sizeof(t->runtime_warning),
		 "%s%sthe BPF program emits records of %zu bytes; struct tcpevent_record is %zu (or an earlier layout's %d or %d): they are dropped and counted as malformed; see docs/custom-programs.md",
		 t->bpf.warning, *t->bpf.warning ? "; " : "", size,
		 sizeof(struct tcpevent_record), TCPEVENT_RECORD_V1_SIZE,
		 TCPEVENT_RECORD_V2_SIZE);
	atomic_store_explicit(&t->runtime_warning_set, 1, memory_order_release);
}

int te_poller_on_record(void *ctx, void *data, size_t size)
{
	const struct tcpevent_record *r = data;
	struct tcpevent_record widened, *slot;
	struct tcpevent *t = ctx;

	if (size == TCPEVENT_WAKEUP_SIZE)
		return 0;
	/* A cgroup's name, not an event: not counted among the records. */
	if (size == sizeof(struct tcpevent_cgroup_record)) {
		te_names_on_record(&t->names, data);
		return 0;
	}
	te_bump(&t->received, 1);
	if (size == TCPEVENT_RECORD_V1_SIZE ||
	    size == TCPEVENT_RECORD_V2_SIZE) {
		/* An earlier layout: a prefix of this one, the rest reads 0. */
		memcpy(&widened, data, size);
		memset((char *)&widened + size, 0, sizeof(widened) - size);
		r = &widened;
	} else if (size != sizeof(*r)) {
		te_bump(&t->malformed, 1);
		warn_record_size(t, size);
		return 0;
	}
	if (!te_record_valid(r)) {
		te_bump(&t->malformed, 1);
		return 0;
	}
	if (!te_filter_match(&t->filter, r)) {
		te_bump(&t->filtered, 1);
		return 0;
	}
	slot = te_queue_stage(&t->queue);
	if (!slot) {
		te_bump(&t->dropped_queue, 1);
		return 0;
	}
	memcpy(slot, r, sizeof(*r));
	slot->flags &= ~TCPEVENT_F_SNAPSHOT;
	return 0;
}

static void publish(struct tcpevent *t)
{
	int fd;

	if (!te_queue_publish(&t->queue))
		return;
	fd = atomic_load(&t->notify_fd);
	if (fd >= 0)
		eventfd_write(fd, 1);
}

static void nap(void)
{
	struct timespec ts = { .tv_nsec = TE_BATCH_NS };

	while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
		;
}

/*
 * The built-in program commits records without waking us (no IRQ work per
 * record) and wakes us only while we say we are idle. Announce it, then look
 * once more: a record committed before the program saw the flag is seen
 * here (both sides order their write before their read).
 */
static int drain_or_go_idle(struct tcpevent *t)
{
	_Atomic uint32_t *idle = t->bpf.poller_idle;
	int n;

	if (!idle)
		return 0;
	atomic_store(idle, 1);
	n = ring_buffer__consume(t->bpf.rb);
	if (n != 0) {
		atomic_store(idle, 0);
		publish(t);
	}
	return n;
}

static void *poller_main(void *arg)
{
	struct tcpevent *t = arg;
	struct epoll_event evs[4];
	int64_t ticked = 0, now;
	int n, nev;

	for (;;) {
		te_clock_refresh(&t->clock);
		now = te_clock_boottime_ns();
		if (now - ticked >= TE_TICK_MS * 1000000LL) {
			ticked = now;
			te_bpf_tick(&t->bpf);
		}
		n = ring_buffer__consume(t->bpf.rb);
		publish(t);
		if (atomic_load(&t->stopping))
			break;
		if (n != 0)
			nap(); /* n < 0 (an error) naps too: no busy loop */
		else
			n = drain_or_go_idle(t);
		nev = epoll_wait(t->epoll_fd, evs, 4, n != 0 ? 0 : TE_TICK_MS);
		if (t->bpf.poller_idle)
			atomic_store(t->bpf.poller_idle, 0);
		for (int i = 0; i < nev; i++)
			if (evs[i].data.fd == t->timer_fd)
				te_snapshot_tick(t);
	}
	return NULL;
}

static int watch(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int te_poller_start(struct tcpevent *t)
{
	int err;

	t->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->epoll_fd < 0 || t->stop_fd < 0 ||
	    watch(t->epoll_fd, t->bpf.ring_fd) ||
	    watch(t->epoll_fd, t->stop_fd) ||
	    (t->timer_fd >= 0 && watch(t->epoll_fd, t->timer_fd)))
		return te_fail(errno, "cannot set up the poller: %s",
			       strerror(errno));
	err = te_thread_start_masked(&t->poller, poller_main, t);
	if (err)
		return te_fail(err, "cannot start the poller thread: %s",
			       strerror(err));
	t->poller_running = true;
	return 0;
}

/* Async-signal-safe as far as the poller is concerned: it never waits for
 * anything a consumer holds, so the join always completes. */
void te_poller_stop(struct tcpevent *t)
{
	atomic_store(&t->stopping, 1);
	if (t->stop_fd >= 0)
		eventfd_write(t->stop_fd, 1);
	if (t->poller_running)
		pthread_join(t->poller, NULL);
	t->poller_running = false;
}
