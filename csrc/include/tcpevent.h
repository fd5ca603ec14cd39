/* SPDX-License-Identifier: MIT */
/*
 * tcpevent.h - public API of libtcpEvent.so.
 *
 * Two layers:
 *  - the original ABI (AddProbe, setupBPF, getStatus, DequeuePerfEvent,
 *    printCharArray, cleanup and the packed struct tcp_event_t), byte-exact,
 *    driving one default tracer;
 *  - the extended, handle-based API (tcpevent_*), which the legacy calls and
 *    the Python package are built on.
 *
 * The original examples include common.h instead: the struct alone (they
 * declare the calls themselves, as function pointers).
 */
#ifndef TCPEVENT_H
#define TCPEVENT_H

#include <stddef.h>
#include <stdint.h>

#include "tcpevent_legacy.h"
#include "tcpevent_record.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- The original ABI ------------------------------------------------- */

/* The six calls of tcpevent_legacy.h, declared from their types there. */
tcpevent_AddProbe_fn AddProbe;
tcpevent_setupBPF_fn setupBPF;
tcpevent_printCharArray_fn printCharArray;
tcpevent_getStatus_fn getStatus;
tcpevent_DequeuePerfEvent_fn DequeuePerfEvent;
tcpevent_cleanup_fn cleanup;

/* ---- The extended API ------------------------------------------------- */

/* The size of tcpevent_event.task: the one command length,
 * TCPEVENT_COMM_LEN (tcpevent_record.h), under its older name. */
#define TCPEVENT_TASK_LEN TCPEVENT_COMM_LEN
#define TCPEVENT_ADDR_LEN 46 /* INET6_ADDRSTRLEN */

/* Which side of a connection an event is about (enum tcpevent_kind is in
 * tcpevent_record.h). */
enum tcpevent_direction {
	TCPEVENT_DIRECTION_UNKNOWN = 0,
	TCPEVENT_DIRECTION_OUTBOUND = 1, /* it called connect() */
	TCPEVENT_DIRECTION_INBOUND = 2,	 /* accept() hands it out */
};

/* One event, naturally aligned (unlike tcp_event_t). */
struct tcpevent_event {
	uint64_t time_ns;     /* wall clock, ns since the Unix epoch */
	uint64_t lifetime_ns; /* first sighting -> this event; 0 if unknown */
	uint64_t rx_bytes;    /* bytes_received */
	uint64_t tx_bytes;    /* bytes_acked */
	uint64_t cgroup_id;   /* the socket's cgroup v2 id; 0 if unknown */
	uint64_t handshake_ns; /* SYN_SENT/SYN_RECV -> ESTABLISHED; 0: not measured */
	uint64_t accept_wait_ns; /* accept: ESTABLISHED -> accept() returned */
	uint32_t pid;		 /* owning process (tgid); 0 if unknown */
	uint32_t uid;
	uint32_t segs_out; /* data_segs_out */
	uint32_t segs_in;  /* data_segs_in */
	uint32_t rtt_us;   /* smoothed RTT; 0 if unknown */
	uint32_t retrans;  /* total retransmitted segments */
	uint32_t netns; /* the socket's network namespace inode; 0 if unknown */
	uint16_t family;   /* AF_INET or AF_INET6 */
	uint16_t sport;	   /* local port, host byte order */
	uint16_t dport;	   /* remote port, host byte order */
	uint16_t error;	   /* the socket's pending error (an errno), or 0 */
	uint8_t kind;	   /* enum tcpevent_kind */
	uint8_t state;	   /* TCP state before the close / current */
	uint8_t direction; /* enum tcpevent_direction */
	char task[TCPEVENT_COMM_LEN];  /* NUL-terminated */
	char saddr[TCPEVENT_ADDR_LEN]; /* inet_ntop text, NUL-terminated */
	char daddr[TCPEVENT_ADDR_LEN];
	uint8_t reserved[5];
	/* Appended. pid/uid/task above name the owner: the process that ended
	 * the connection (close(), shutdown(), exit), or when none did (a
	 * reset, a timeout) the last one seen holding it (connect(),
	 * accept(), or its release of a socket reset while open). origin_*
	 * name the process that set it up: connect()'s caller, or for the
	 * passive side the one that called listen() on its listener
	 * (docs/attribution.md). */
	uint32_t origin_pid; /* 0 if unknown */
	uint32_t origin_uid;
	char origin_task[TCPEVENT_TASK_LEN]; /* NUL-terminated */
	/* What the connection went through (docs/health.md), counted while
	 * retransmit, reset or drop events are on; else 0. */
	uint64_t first_retrans_ns; /* wall clock of its first retransmission; 0: none */
	uint64_t last_retrans_ns; /* of its last one; 0: none */
	uint32_t retrans_segs;	  /* segments retransmitted */
	uint32_t retrans_timeout; /* retransmissions by cause (enum tcpevent_cause) */
	uint32_t retrans_loss;
	uint32_t retrans_fast;
	uint32_t retrans_probe;
	uint32_t retrans_syn;
	uint32_t resets_sent;
	uint32_t resets_received;
	uint32_t drops; /* its packets the kernel dropped */
	uint32_t skipped; /* retransmit events the rate limit left out before this one */
	uint16_t reason; /* drop: enum skb_drop_reason; reset sent: enum sk_rst_reason */
	uint8_t cause; /* retransmit, reset: enum tcpevent_cause */
	uint8_t segs;  /* retransmit: segments it sent */
	uint8_t reserved2[4];
};

struct tcpevent_options {
	size_t size;	      /* sizeof(struct tcpevent_options) */
	const char *program;  /* NULL: built-in; else BPF object path */
	uint32_t queue_size;  /* events held in user space; 0: default */
	uint32_t ring_size;   /* kernel ring buffer bytes; 0: default */
	uint32_t max_sockets; /* sockets tracked in the kernel; 0: default */
	uint32_t snapshot_interval_ms; /* 0: no snapshot events */
	uint16_t family;	       /* 0: both; AF_INET or AF_INET6 only */
	uint16_t n_ports;      /* events whose local or remote port ... */
	const uint16_t *ports; /* ... is one of these; none: all */
	uint32_t n_pids;       /* events owned by one of these ... */
	const uint32_t *pids;  /* ... processes; none: all */
	uint32_t flags;	       /* TCPEVENT_OPT_* */
	/* Appended: a caller's smaller struct (its size) leaves them 0. */
	uint32_t events;	 /* TCPEVENT_EVENT_* bits; 0: close only */
	uint32_t n_cgroups;	 /* sockets made in one of these ... */
	const uint64_t *cgroups; /* ... cgroup v2 ids (or below one:
					 * TCPEVENT_OPT_CGROUP_SUBTREE); none: all */
	uint32_t n_netns;	 /* sockets of one of these ... */
	const uint32_t *netns;	 /* ... network namespaces (inode
					 * numbers); none: all */
	uint32_t retransmit_interval_us; /* least time between two
					 * retransmit events of a connection
					 * (the others are counted in the
					 * next, "skipped"); 0: no limit */
};

/* Event kinds to deliver (options.events), as bits of enum tcpevent_kind.
 * Snapshots are asked for with snapshot_interval_ms instead. */
#define TCPEVENT_EVENT_CLOSE	  (1u << TCPEVENT_KIND_CLOSE)
#define TCPEVENT_EVENT_CONNECT	  (1u << TCPEVENT_KIND_CONNECT)
#define TCPEVENT_EVENT_ACCEPT	  (1u << TCPEVENT_KIND_ACCEPT)
#define TCPEVENT_EVENT_RETRANSMIT (1u << TCPEVENT_KIND_RETRANSMIT)
#define TCPEVENT_EVENT_RESET	  (1u << TCPEVENT_KIND_RESET)
#define TCPEVENT_EVENT_DROP	  (1u << TCPEVENT_KIND_DROP)
/* What connections go through (docs/health.md): the three above. */
#define TCPEVENT_EVENT_HEALTH \
	(TCPEVENT_EVENT_RETRANSMIT | TCPEVENT_EVENT_RESET | TCPEVENT_EVENT_DROP)

/*
 * Never load the accept() hooks (syscalls:sys_exit_accept4/accept). While
 * any syscall tracepoint is attached, every system call of every process on
 * the host goes through the kernel's syscall-tracing path (its cost: see
 * docs/performance.md). By default they are attached only where they are
 * needed: for accept events, or where the release hook (a cgroup program,
 * CAP_NET_ADMIN) cannot be loaded, to name the owner of a passive socket
 * reset before its process closed it. With this flag they never are (and
 * accept events are refused): such a socket then has no owner (pid 0, as
 * one nobody accepted) unless the release hook names it. Also: no tracefs,
 * so no CAP_DAC_READ_SEARCH (docs/privileges.md).
 */
#define TCPEVENT_OPT_NO_ACCEPT_HOOKS (1u << 0)
/* options.cgroups also match every cgroup below them. */
#define TCPEVENT_OPT_CGROUP_SUBTREE (1u << 1)

struct tcpevent_stats {
	uint64_t received;	  /* records read from the kernel */
	uint64_t dropped_kernel;  /* lost: kernel ring buffer was full */
	uint64_t dropped_queue;	  /* lost: user-space queue was full */
	uint64_t queued;	  /* waiting in the queue now */
	uint64_t delivered;	  /* handed to callers */
	uint64_t malformed;	  /* records rejected (custom programs) */
	uint64_t untracked;	  /* sockets not tracked: table full */
	uint64_t filtered;	  /* records dropped by the filters */
	uint64_t snapshots;	  /* snapshot events made (queued or dropped) */
	uint64_t snapshot_errors; /* snapshot listings that failed */
	uint64_t missed;	  /* events the kernel may never have
					 * shown us (an upper bound): hook runs
					 * it skipped (one of ours was running
					 * on that CPU) and closes of tracked
					 * sockets no program saw */
};

/* Bounds of the options (tcpevent_open() refuses others with EINVAL); their
 * defaults, TCPEVENT_DEFAULT_*, are in tcpevent_record.h. The ring size is
 * also a power of two of at least one page. */
#define TCPEVENT_MAX_QUEUE_SIZE (1u << 24)
#define TCPEVENT_MAX_RING_SIZE	(1u << 30)
#define TCPEVENT_MAX_SOCKETS	(1u << 24)

struct tcpevent;

/* Fill *opts with the defaults. */
void tcpevent_options_init(struct tcpevent_options *opts);
/* Load, attach and start a tracer. 0 or -errno; on failure the reason is in
 * tcpevent_last_error() and nothing stays attached. */
int tcpevent_open(const struct tcpevent_options *opts, struct tcpevent **out);
/* Take one event. timeout_ms < 0 waits forever, 0 does not wait.
 * 1: *ev is filled; 0: timed out; -ESHUTDOWN: the tracer is closed. */
int tcpevent_dequeue(struct tcpevent *t, struct tcpevent_event *ev,
		     int timeout_ms);
/* Take up to max events, waiting as tcpevent_dequeue for the first one.
 * n >= 0 events taken, or -ESHUTDOWN. */
int tcpevent_dequeue_batch(struct tcpevent *t, struct tcpevent_event *evs,
			   unsigned int max, int timeout_ms);
/* As tcpevent_dequeue, filling the original struct. */
int tcpevent_dequeue_abi(struct tcpevent *t, struct tcp_event_t *ev,
			 int timeout_ms);
/* An eventfd that becomes readable when events may be waiting or the tracer
 * closed; read it to re-arm, then dequeue with timeout 0 until empty. */
int tcpevent_fd(struct tcpevent *t);
/* 1 while attached and delivering, 0 once closed. */
int tcpevent_status(struct tcpevent *t);
int tcpevent_stats(struct tcpevent *t, struct tcpevent_stats *stats);
/* What works less well than it could (e.g. no accept() hook), or "". */
const char *tcpevent_warnings(struct tcpevent *t);
/* Which BPF object is loaded: "default" (the built-in's build for Linux
 * 6.2+), "portable" (the built-in's build for older kernels, chosen when
 * the kernel refuses the default one) or "custom" (options.program). */
const char *tcpevent_build(struct tcpevent *t);
/* Detach, stop and wake every waiter; the handle stays valid (dequeue then
 * returns -ESHUTDOWN). Thread-safe, idempotent. */
void tcpevent_close(struct tcpevent *t);
/* tcpevent_close, then free. No other call may use t concurrently or after. */
void tcpevent_free(struct tcpevent *t);
/* Convert an event to the original struct. */
void tcpevent_event_to_abi(const struct tcpevent_event *ev,
			   struct tcp_event_t *out);
/* The running kernel's name of a reason (tcpevent_event.reason) of an event
 * of this kind: TCPEVENT_KIND_DROP, enum skb_drop_reason's member without
 * its SKB_DROP_REASON_ prefix ("TCP_LISTEN_OVERFLOW"); TCPEVENT_KIND_RESET,
 * enum sk_rst_reason's without SK_RST_REASON_ ("NO_SOCKET"); read from the
 * kernel's BTF. "" if the kernel has no such value (or no BTF). */
const char *tcpevent_reason_name(unsigned int kind, unsigned int reason);
/*
 * The path of a cgroup v2 id (tcpevent_event.cgroup_id) relative to the
 * cgroup v2 mount ("/machine.slice/libpod-<id>.scope"; the root is "/"),
 * as the tracer learnt it: every cgroup that existed when it opened, and
 * every one made since (while its program has the cgroup_mkdir hook),
 * kept after the cgroup is removed, up to TCPEVENT_CGROUP_NAMES_MAX ids
 * (the ones learnt longest ago out first; docs/containers.md). Copies it,
 * NUL-terminated, into buf: 0; -ENOENT: not known; -ERANGE: len is too
 * small (TCPEVENT_CGROUP_PATH_LEN always does); -EINVAL. Thread-safe;
 * usable after tcpevent_close(), until tcpevent_free().
 */
int tcpevent_cgroup_path(struct tcpevent *t, uint64_t cgroup_id, char *buf,
			 size_t len);
/* Most cgroup ids tcpevent_cgroup_path() knows at once. */
#define TCPEVENT_CGROUP_NAMES_MAX 16384u

/* Text of the last failure in this thread ("" if none). */
const char *tcpevent_last_error(void);
/* The default instance behind AddProbe & co: its stats (-ENODEV if none). */
int tcpevent_default_stats(struct tcpevent_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* TCPEVENT_H */
