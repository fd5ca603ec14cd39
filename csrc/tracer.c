// SPDX-License-Identifier: MIT
/* The extended, handle-based API: open, dequeue, stats, close. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "convert.h"
#include "tracer.h"

#define TE_POP_CHUNK 64
#define TE_OPT_ALL   (TCPEVENT_OPT_NO_ACCEPT_HOOKS | TCPEVENT_OPT_CGROUP_SUBTREE)

void tcpevent_options_init(struct tcpevent_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->size = sizeof(*opts);
	opts->queue_size = TCPEVENT_DEFAULT_QUEUE_SIZE;
	opts->ring_size = TCPEVENT_DEFAULT_RING_SIZE;
	opts->max_sockets = TCPEVENT_DEFAULT_MAX_SOCKETS;
	opts->retransmit_interval_us = TCPEVENT_DEFAULT_RETRANSMIT_INTERVAL_US;
}

/* Copy the caller's options over the defaults; 0 keeps a default. */
static int read_options(const struct tcpevent_options *in,
			struct tcpevent_options *o)
{
	long page = sysconf(_SC_PAGESIZE);

	tcpevent_options_init(o);
	if (!in)
		return 0;
	if (in->size < offsetof(struct tcpevent_options, pids) ||
	    in->size > sizeof(*o))
		return te_fail(EINVAL,
			       "options.size is %zu; set it with tcpevent_options_init()",
			       in->size);
	memcpy(o, in, in->size);
	o->size = sizeof(*o);
	if (!o->queue_size)
		o->queue_size = TCPEVENT_DEFAULT_QUEUE_SIZE;
	if (!o->ring_size)
		o->ring_size = TCPEVENT_DEFAULT_RING_SIZE;
	if (!o->max_sockets)
		o->max_sockets = TCPEVENT_DEFAULT_MAX_SOCKETS;
	if (o->queue_size > TCPEVENT_MAX_QUEUE_SIZE)
		return te_fail(EINVAL,
			       "queue_size %u is over the limit of %u events",
			       o->queue_size, TCPEVENT_MAX_QUEUE_SIZE);
	if (o->ring_size < page || o->ring_size > TCPEVENT_MAX_RING_SIZE ||
	    (o->ring_size & (o->ring_size - 1)))
		return te_fail(EINVAL,
			       "ring_size %u must be a power of two between %ld and %u bytes",
			       o->ring_size, page, TCPEVENT_MAX_RING_SIZE);
	if (o->max_sockets > TCPEVENT_MAX_SOCKETS)
		return te_fail(EINVAL, "max_sockets %u is over the limit of %u",
			       o->max_sockets, TCPEVENT_MAX_SOCKETS);
	if (o->flags & ~TE_OPT_ALL)
		return te_fail(EINVAL,
			       "options.flags 0x%x has unknown bits 0x%x",
			       o->flags, o->flags & ~TE_OPT_ALL);
	return 0;
}

int tcpevent_open(const struct tcpevent_options *opts, struct tcpevent **out)
{
	struct tcpevent_options o;
	struct tcpevent *t;
	int err;

	te_error_clear();
	if (!out)
		return te_fail(EINVAL, "tcpevent_open: out is NULL");
	*out = NULL;
	err = read_options(opts, &o);
	if (err)
		return err;
	t = calloc(1, sizeof(*t));
	if (!t)
		return te_fail(ENOMEM, "out of memory");
	t->fork_generation = atomic_load(&te_fork_generation);
	t->epoll_fd = t->stop_fd = t->timer_fd = -1;
	t->bpf.ring_fd = t->bpf.counters_fd = -1; /* before anything fails */
	atomic_init(&t->notify_fd, -1);
	t->snapshot_interval_ms = o.snapshot_interval_ms;
	err = te_filter_init(&t->filter, &o);
	if (!err && te_queue_init(&t->queue, o.queue_size))
		err = te_fail(ENOMEM, "cannot allocate a queue of %u events",
			      o.queue_size);
	if (!err)
		err = te_names_init(&t->names);
	if (!err) {
		te_clock_refresh(&t->clock);
		err = te_bpf_open(&t->bpf, &o, &t->filter, te_poller_on_record,
				  t);
	}
	/* After the mkdir hook is attached: a cgroup made meanwhile is met
	 * by the walk, or told by the hook (its record waits in the ring
	 * for the poller), or both. */
	if (!err)
		te_names_walk(&t->names);
	if (!err)
		err = te_snapshot_start(t);
	if (!err)
		err = te_poller_start(t);
	if (err) {
		char msg[TE_ERROR_LEN];

		/* Keep the cause: freeing must not overwrite it. */
		memcpy(msg, tcpevent_last_error(), sizeof(msg));
		tcpevent_free(t);
		return te_fail(-err, "%s", msg);
	}
	*out = t;
	return 0;
}

static int refuse_inherited(void)
{
	return te_fail(EBADFD,
		       "this tracer was opened by the parent process before fork(); open a new one in this process");
}

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Take what is queued, up to max, without waiting. */
static unsigned int take(struct tcpevent *t, struct tcpevent_event *evs,
			 unsigned int max)
{
	struct tcpevent_record recs[TE_POP_CHUNK];
	unsigned int got = 0, n;

	while (got < max) {
		n = te_queue_pop(&t->queue, recs,
				 max - got < TE_POP_CHUNK ? max - got :
							    TE_POP_CHUNK);
		if (!n)
			break;
		for (unsigned int i = 0; i < n; i++)
			te_record_to_event(&recs[i], &t->clock, &evs[got + i]);
		got += n;
	}
	if (got)
		atomic_fetch_add_explicit(&t->delivered, got,
					  memory_order_relaxed);
	return got;
}

int tcpevent_dequeue_batch(struct tcpevent *t, struct tcpevent_event *evs,
			   unsigned int max, int timeout_ms)
{
	int64_t deadline = 0, left = -1;
	unsigned int n;

	if (!t || (!evs && max))
		return te_fail(EINVAL, "tcpevent_dequeue: NULL argument");
	if (te_inherited(t))
		return refuse_inherited();
	if (timeout_ms > 0)
		deadline = monotonic_ns() + (int64_t)timeout_ms * 1000000;
	if (max > INT32_MAX)
		max = INT32_MAX;
	for (;;) {
		if (atomic_load(&t->closed))
			return te_fail(ESHUTDOWN, "the tracer is closed");
		n = take(t, evs, max);
		if (n || !max || !timeout_ms)
			return n;
		if (timeout_ms > 0) {
			left = deadline - monotonic_ns();
			if (left <= 0)
				return 0;
		}
		te_queue_wait(&t->queue, left);
	}
}

int tcpevent_dequeue(struct tcpevent *t, struct tcpevent_event *ev,
		     int timeout_ms)
{
	return tcpevent_dequeue_batch(t, ev, 1, timeout_ms);
}

int tcpevent_dequeue_abi(struct tcpevent *t, struct tcp_event_t *ev,
			 int timeout_ms)
{
	struct tcpevent_event e;
	int n;

	if (!ev)
		return te_fail(EINVAL, "tcpevent_dequeue_abi: NULL argument");
	n = tcpevent_dequeue_batch(t, &e, 1, timeout_ms);
	if (n == 1)
		tcpevent_event_to_abi(&e, ev);
	else
		memset(ev, 0, sizeof(*ev));
	return n;
}

int tcpevent_fd(struct tcpevent *t)
{
	int fd, expected = -1;

	if (!t)
		return te_fail(EINVAL, "tcpevent_fd: NULL tracer");
	if (te_inherited(t))
		return refuse_inherited();
	fd = atomic_load(&t->notify_fd);
	if (fd >= 0)
		return fd;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return te_fail(errno, "eventfd: %s", strerror(errno));
	if (!atomic_compare_exchange_strong(&t->notify_fd, &expected, fd)) {
		close(fd);
		return expected;
	}
	/* Whatever was queued before the fd existed must be announced too. */
	if (te_queue_depth(&t->queue) || atomic_load(&t->closed))
		eventfd_write(fd, 1);
	return fd;
}

int tcpevent_status(struct tcpevent *t)
{
	return t && !te_inherited(t) && !atomic_load(&t->closed);
}

const char *tcpevent_build(struct tcpevent *t)
{
	if (!t)
		return "";
	return t->bpf.custom   ? "custom" :
	       t->bpf.portable ? "portable" :
				 "default";
}

const char *tcpevent_warnings(struct tcpevent *t)
{
	if (!t)
		return "";
	if (atomic_load_explicit(&t->runtime_warning_set, memory_order_acquire))
		return t->runtime_warning; /* includes bpf.warning */
	return t->bpf.warning;
}

int tcpevent_stats(struct tcpevent *t, struct tcpevent_stats *st)
{
	struct te_kernel_counts k;

	if (!t || !st)
		return te_fail(EINVAL, "tcpevent_stats: NULL argument");
	if (te_inherited(t))
		return refuse_inherited();
	memset(st, 0, sizeof(*st));
	st->received = atomic_load(&t->received);
	st->dropped_queue = atomic_load(&t->dropped_queue);
	st->malformed = atomic_load(&t->malformed);
	st->filtered = atomic_load(&t->filtered);
	st->snapshots = atomic_load(&t->snapshots);
	st->snapshot_errors = atomic_load(&t->snapshot_errors);
	st->delivered = atomic_load(&t->delivered);
	st->queued = te_queue_depth(&t->queue);
	te_bpf_kernel_counts(&t->bpf, &k);
	st->dropped_kernel = k.ringbuf_full;
	st->untracked = k.untracked;
	st->missed = k.missed;
	return 0;
}

void tcpevent_close(struct tcpevent *t)
{
	int fd;

	if (!t || atomic_exchange(&t->closed, 1))
		return;
	if (te_inherited(t)) {
		/* The poller is the parent's; the links stay the parent's. */
		t->poller_running = false;
		te_bpf_disown(&t->bpf);
	}
	/* Waiters first: they return at once, whatever teardown costs. */
	te_queue_close(&t->queue);
	fd = atomic_load(&t->notify_fd);
	if (fd >= 0)
		eventfd_write(fd, 1);
	te_poller_stop(t);
	te_bpf_close(&t->bpf);
}

static void close_fd(int fd)
{
	if (fd >= 0)
		close(fd);
}

void tcpevent_free(struct tcpevent *t)
{
	if (!t)
		return;
	tcpevent_close(t);
	te_bpf_release(&t->bpf);
	close_fd(t->epoll_fd);
	close_fd(t->stop_fd);
	close_fd(t->timer_fd);
	close_fd(atomic_load(&t->notify_fd));
	te_queue_destroy(&t->queue);
	te_names_destroy(&t->names);
	free(t);
}
