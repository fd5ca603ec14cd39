/* SPDX-License-Identifier: MIT */
/* The tracer handle behind the public API, shared by its parts. */
#ifndef TCPEVENT_TRACER_H
#define TCPEVENT_TRACER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cgroup_names.h"
#include "clock.h"
#include "queue.h"
#include "tcpevent.h"

#define TE_MAX_LINKS 16
/* Room for every degraded hook's warning at once, each with its remedy (an
 * old kernel can have five: docs/kernels.md). */
#define TE_WARNING_LEN 2048

/* Everything loaded into the kernel (the loader: loader.h). */
struct te_bpf {
	struct bpf_object *obj;
	struct bpf_link *links[TE_MAX_LINKS];
	int n_links;
	struct ring_buffer *rb;
	int ring_fd;
	int counters_fd;	    /* -1 if the program has none */
	int prog_fds[TE_MAX_LINKS]; /* for the kernel's miss counts */
	int n_prog_fds;
	struct bpf_program *standby; /* attached once the kernel skips a hit */
	int watched_fd;		     /* the program whose skips it covers */
	int sweep_fd;		     /* run, never attached; or -1 */
	unsigned int sweep_every;    /* ticks between two sweeps */
	unsigned int ticks;
	bool custom;
	bool portable;		       /* the built-in's portable build */
	bool no_release;	       /* load without the release hook */
	_Atomic uint32_t *poller_idle; /* in the program's .bss, or NULL */
	void *bss;		       /* our mapping of that .bss */
	size_t bss_len;
	char warning[TE_WARNING_LEN]; /* what works less well than it could */
};

struct te_filter {
	uint16_t family;
	bool cgroup_subtree; /* cgroups: the kernel checks ancestry */
	uint32_t events;     /* TCPEVENT_EVENT_* bits */
	uint32_t n_pids;
	uint32_t pids[TCPEVENT_MAX_FILTER]; /* sorted */
	uint32_t n_ports;
	uint16_t ports[TCPEVENT_MAX_FILTER]; /* sorted */
	uint32_t n_cgroups;
	uint64_t cgroups[TCPEVENT_MAX_FILTER]; /* sorted */
	uint32_t n_netns;
	uint32_t netns[TCPEVENT_MAX_FILTER]; /* sorted */
};

struct tcpevent {
	struct te_queue queue;
	struct te_clock clock;
	struct te_filter filter;
	struct te_bpf bpf;
	struct te_cgroup_names names; /* cgroup_names.c */
	uint32_t snapshot_interval_ms;
	uint32_t own_netns; /* inode of our network namespace */

	pthread_t poller;
	bool poller_running;
	int epoll_fd;
	int stop_fd;	       /* eventfd: tells the poller to stop */
	int timer_fd;	       /* timerfd for snapshots, or -1 */
	_Atomic int notify_fd; /* eventfd for tcpevent_fd(), or -1 */
	_Atomic int stopping;
	_Atomic int closed;

	/* Written by the poller only; read by tcpevent_stats(). */
	_Atomic uint64_t received;
	_Atomic uint64_t dropped_queue;
	_Atomic uint64_t malformed;
	_Atomic uint64_t filtered;
	_Atomic uint64_t snapshots;
	_Atomic uint64_t snapshot_errors;
	/* Written by consumers. */
	_Atomic uint64_t delivered;

	/* Written once by the poller, then published by the flag. */
	char runtime_warning[TE_WARNING_LEN + 256]; /* warning + the poller's */
	_Atomic int runtime_warning_set;

	struct tcpevent *retired_next; /* legacy/tcp.c: awaiting free */
	unsigned int fork_generation;  /* fork.c: whose tracer this is */
};

/* fork.c */
extern _Atomic unsigned int te_fork_generation;

/* Inherited through fork() from the process that opened it? */
static inline bool te_inherited(const struct tcpevent *t)
{
	return t->fork_generation !=
	       atomic_load_explicit(&te_fork_generation, memory_order_relaxed);
}

/* legacy/tcp.c: forget the parent's default tracer in a fork child. */
void te_legacy_after_fork(void);

/* loader.c */
int te_bpf_open(struct te_bpf *b, const struct tcpevent_options *opts,
		const struct te_filter *f,
		int (*on_record)(void *ctx, void *data, size_t size),
		void *ctx);
/* Detach and unload; te_bpf_release() then drops what stats still read. */
void te_bpf_close(struct te_bpf *b);
/* In a fork child: make te_bpf_close() leave the parent's links attached. */
void te_bpf_disown(struct te_bpf *b);
void te_bpf_release(struct te_bpf *b);
/* upkeep.c, poller only, about once a second: attach the nested-hit program
 * once the kernel skips a hit; sweep the socket table of closes never seen. */
void te_bpf_tick(struct te_bpf *b);
/* kernel_counts.c: what the kernel side lost or skipped, as it counted. */
struct te_kernel_counts {
	uint64_t ringbuf_full; /* records lost: ring buffer full */
	uint64_t untracked;    /* sockets not tracked: table full */
	uint64_t missed;       /* hook runs skipped: program already running */
};
void te_bpf_kernel_counts(struct te_bpf *b, struct te_kernel_counts *c);

/* cgroup_link.c: the release hook (tcpevent_release). Before load: whether
 * it can be loaded here (else it is left out); after: attach it to the
 * cgroup v2 root. */
bool te_is_release_program(const struct bpf_program *prog);
bool te_release_plan(struct te_bpf *b);
int te_release_attach(struct te_bpf *b, struct bpf_program *prog);

/* forked_trial.c: run fn in a forked child first; its failure (or crash) is
 * reported as ours, naming `what`. */
int te_trial(int (*fn)(void *), void *arg, const char *what);

/* poller.c */
int te_poller_start(struct tcpevent *t);
void te_poller_stop(struct tcpevent *t);
int te_poller_on_record(void *ctx, void *data, size_t size);

/* snapshot.c */
int te_snapshot_start(struct tcpevent *t);
void te_snapshot_tick(struct tcpevent *t);

/* filter.c */
int te_filter_init(struct te_filter *f, const struct tcpevent_options *o);
bool te_filter_match(const struct te_filter *f,
		     const struct tcpevent_record *r);

#endif /* TCPEVENT_TRACER_H */
