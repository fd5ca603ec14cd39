// SPDX-License-Identifier: MIT
/* The extended UDP API (udpevent.h): open, dequeue, stats, close. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "tcpevent.h"
#include "udp_tracer.h"

void udpevent_options_init(struct udpevent_options *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->flush_interval_ms = UDPEVENT_DEFAULT_FLUSH_INTERVAL_MS;
	o->queue_size = UDPEVENT_DEFAULT_QUEUE_SIZE;
	o->max_flows = UDPEVENT_DEFAULT_MAX_FLOWS;
}

static int check(struct udpevent_options *o)
{
	if (!o->flush_interval_ms)
		o->flush_interval_ms = UDPEVENT_DEFAULT_FLUSH_INTERVAL_MS;
	if (!o->queue_size)
		o->queue_size = UDPEVENT_DEFAULT_QUEUE_SIZE;
	if (!o->max_flows)
		o->max_flows = UDPEVENT_DEFAULT_MAX_FLOWS;
	if (o->flush_interval_ms < UDPEVENT_MIN_FLUSH_INTERVAL_MS)
		return te_fail(EINVAL,
			       "flush_interval_ms %u is below the minimum of %d",
			       o->flush_interval_ms,
			       UDPEVENT_MIN_FLUSH_INTERVAL_MS);
	if (o->queue_size > UDPEVENT_MAX_QUEUE_SIZE)
		return te_fail(EINVAL,
			       "queue_size %u is above the maximum of %d",
			       o->queue_size, UDPEVENT_MAX_QUEUE_SIZE);
	if (o->max_flows > UDPEVENT_MAX_FLOWS)
		return te_fail(EINVAL,
			       "max_flows %u is above the maximum of %d",
			       o->max_flows, UDPEVENT_MAX_FLOWS);
	return 0;
}

int udpevent_open(const struct udpevent_options *opts, struct udpevent **out)
{
	struct udpevent_options o;
	struct udpevent *u;
	int err;

	te_error_clear();
	if (!out)
		return te_fail(EINVAL, "udpevent_open: NULL out");
	*out = NULL;
	if (opts)
		o = *opts;
	else
		udpevent_options_init(&o);
	err = check(&o);
	if (err)
		return err;
	u = calloc(1, sizeof(*u));
	if (!u)
		return te_fail(ENOMEM, "out of memory");
	u->epoll_fd = u->stop_fd = u->bpf.cgroup_fd = -1;
	atomic_store(&u->notify_fd, -1);
	u->flush_ns = (uint64_t)o.flush_interval_ms * 1000000;
	err = te_udp_filter_set(&u->filter, &o);
	if (!err && (te_queue_init(&u->queue, o.queue_size) ||
		     te_udp_shadow_init(&u->shadow, o.max_flows)))
		err = te_fail(ENOMEM,
			      "out of memory for the queue and flow table");
	if (!err) {
		u->keys = calloc(TE_UDP_BATCH, sizeof(*u->keys));
		u->values = calloc(TE_UDP_BATCH, sizeof(*u->values));
		if (!u->keys || !u->values)
			err = te_fail(ENOMEM, "out of memory");
	}
	te_clock_refresh(&u->clock);
	if (!err)
		err = te_udp_bpf_open(&u->bpf, &o, &u->filter, u,
				      te_udp_on_release);
	if (!err)
		err = te_udp_poller_start(u);
	if (err) {
		char why[TE_ERROR_LEN];

		snprintf(why, sizeof(why), "%s", udpevent_last_error());
		udpevent_free(u);
		return te_fail(-err > 0 ? -err : err, "%s", why);
	}
	*out = u;
	return 0;
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The eventfd is level-style: re-armed when the queue is drained. */
static unsigned int take(struct udpevent *u, struct udpevent_report *out,
			 unsigned int max)
{
	unsigned int n = te_queue_pop(&u->queue, out, max);
	int fd = atomic_load(&u->notify_fd);
	eventfd_t drained;

	if (n)
		atomic_fetch_add(&u->delivered, n);
	if (fd >= 0 && !te_queue_depth(&u->queue) &&
	    !atomic_load(&u->queue.closed))
		eventfd_read(fd, &drained);
	return n;
}

int udpevent_dequeue_batch(struct udpevent *u, struct udpevent_report *out,
			   unsigned int max, int timeout_ms)
{
	int64_t deadline = 0, left = -1;
	unsigned int n;

	if (!u || (!out && max))
		return te_fail(EINVAL, "udpevent_dequeue: NULL argument");
	if (timeout_ms > 0)
		deadline = monotonic_ns() + (int64_t)timeout_ms * 1000000;
	if (max > INT32_MAX)
		max = INT32_MAX;
	for (;;) {
		n = take(u, out, max);
		if (n || !max)
			return n;
		if (atomic_load(&u->queue.closed) && !te_queue_depth(&u->queue))
			return te_fail(EBADF,
				       "the UDP tracer is closed and its reports are all taken");
		if (!timeout_ms)
			return 0;
		if (timeout_ms > 0) {
			left = deadline - monotonic_ns();
			if (left <= 0)
				return 0;
		}
		te_queue_wait(&u->queue, left);
	}
}

int udpevent_dequeue(struct udpevent *u, struct udpevent_report *out,
		     int timeout_ms)
{
	return udpevent_dequeue_batch(u, out, 1, timeout_ms);
}

int udpevent_fd(struct udpevent *u)
{
	int fd, expected = -1;

	if (!u)
		return te_fail(EINVAL, "udpevent_fd: NULL tracer");
	fd = atomic_load(&u->notify_fd);
	if (fd >= 0)
		return fd;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return te_fail(errno, "eventfd: %s", strerror(errno));
	if (!atomic_compare_exchange_strong(&u->notify_fd, &expected, fd)) {
		close(fd);
		return expected;
	}
	if (te_queue_depth(&u->queue) || atomic_load(&u->queue.closed))
		eventfd_write(fd, 1);
	return fd;
}

unsigned int udpevent_status(struct udpevent *u)
{
	return u && !atomic_load(&u->closed);
}

const char *udpevent_warnings(struct udpevent *u)
{
	return u ? u->bpf.warning : "";
}

const char *udpevent_last_error(void)
{
	return tcpevent_last_error(); /* error.c's thread-local text */
}

int udpevent_stats(struct udpevent *u, struct udpevent_stats *st)
{
	if (!u || !st)
		return te_fail(EINVAL, "udpevent_stats: NULL argument");
	memset(st, 0, sizeof(*st));
	st->reports = atomic_load(&u->reports);
	st->delivered = atomic_load(&u->delivered);
	st->dropped_queue = atomic_load(&u->dropped_queue);
	st->filtered = atomic_load(&u->filtered);
	st->queued = te_queue_depth(&u->queue);
	st->flows = atomic_load(&u->flows);
	st->scans = atomic_load(&u->scans);
	if (u->bpf.obj) {
		st->untracked =
			te_udp_bpf_counter(&u->bpf, UDPEVENT_CNT_UNTRACKED);
		st->no_storage =
			te_udp_bpf_counter(&u->bpf, UDPEVENT_CNT_NO_STORAGE);
		st->releases_lost =
			te_udp_bpf_counter(&u->bpf, UDPEVENT_CNT_RINGBUF_FULL);
	}
	return 0;
}

void udpevent_close(struct udpevent *u)
{
	int fd;

	bool running;

	if (!u || atomic_exchange(&u->closed, 1))
		return;
	running = u->poller_running;
	te_udp_poller_stop(u); /* it makes the last reports, closes the queue */
	if (!running)
		te_queue_close(&u->queue);
	fd = atomic_load(&u->notify_fd);
	if (fd >= 0)
		eventfd_write(fd, 1);
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

void udpevent_free(struct udpevent *u)
{
	if (!u)
		return;
	udpevent_close(u);
	te_udp_bpf_detach(&u->bpf);
	te_udp_bpf_release(&u->bpf);
	close_fd(u->epoll_fd);
	close_fd(u->stop_fd);
	close_fd(atomic_load(&u->notify_fd));
	te_queue_destroy(&u->queue);
	te_udp_shadow_destroy(&u->shadow);
	free(u->released.cookies);
	free(u->released_prev.cookies);
	free(u->keys);
	free(u->values);
	free(u);
}

struct udpevent **te_udp_retired_next(struct udpevent *u)
{
	return &u->retired_next;
}
