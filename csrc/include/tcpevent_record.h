/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The record a tcpevent BPF program writes into its ring buffer, one per
 * event. Shared by the built-in program, the user-space core, and custom
 * programs (docs/custom-programs.md): its size and layout are a contract.
 */
#ifndef TCPEVENT_RECORD_H
#define TCPEVENT_RECORD_H

#include <linux/types.h>

/* A task's command name (comm), its NUL included: the kernel's
 * TASK_COMM_LEN. Every comm and task field of the API has this size. */
#define TCPEVENT_COMM_LEN 16

/*
 * Defaults of tcpevent_options (tcpevent.h), here because the built-in BPF
 * program declares its maps with the same sizes: events held in user space,
 * the kernel ring buffer's bytes, and the sockets tracked in the kernel.
 */
#define TCPEVENT_DEFAULT_QUEUE_SIZE  65536u
#define TCPEVENT_DEFAULT_RING_SIZE   (4u << 20)
#define TCPEVENT_DEFAULT_MAX_SOCKETS 65536u
/* Least time between two retransmit events of a connection: 100 a second. */
#define TCPEVENT_DEFAULT_RETRANSMIT_INTERVAL_US 10000u

/* Most pids, or ports, one filter holds (the BPF filter maps' size). */
#define TCPEVENT_MAX_FILTER 1024

/* Record flags. */
#define TCPEVENT_F_OWNER    0x1	 /* pid/uid/comm are the owner's */
#define TCPEVENT_F_ACTIVE   0x2	 /* the side that called connect() */
#define TCPEVENT_F_PASSIVE  0x4	 /* a side accept() hands out (born SYN_RECV) */
#define TCPEVENT_F_ORIGIN   0x8	 /* origin_pid/uid/comm are known */
#define TCPEVENT_F_SNAPSHOT 0x80 /* user space only: a live sample */

/* Why an event was made (tcpevent_record.kind, tcpevent_event.kind). */
enum tcpevent_kind {
	TCPEVENT_KIND_CLOSE = 0,    /* the connection reached TCP_CLOSE */
	TCPEVENT_KIND_SNAPSHOT = 1, /* user space: a sample of a live one */
	TCPEVENT_KIND_CONNECT = 2,  /* the active side reached ESTABLISHED */
	TCPEVENT_KIND_ACCEPT = 3,   /* accept() handed the passive side out */
	TCPEVENT_KIND_RETRANSMIT =
		4,		 /* a segment or SYN-ACK was retransmitted */
	TCPEVENT_KIND_RESET = 5, /* a reset was sent or received */
	TCPEVENT_KIND_DROP = 6,	 /* the kernel dropped a TCP packet */
};

/* Of a retransmit or reset event: what kind (tcpevent_record.cause;
 * docs/health.md says how each is told apart). */
enum tcpevent_cause {
	TCPEVENT_CAUSE_NONE = 0,
	TCPEVENT_CAUSE_TIMEOUT = 1, /* the retransmission timer's own */
	TCPEVENT_CAUSE_LOSS = 2,    /* after a timeout, in loss recovery */
	TCPEVENT_CAUSE_FAST =
		3, /* fast retransmit, recovery (dup ACKs, SACK, RACK) */
	TCPEVENT_CAUSE_PROBE = 4,    /* a tail-loss probe */
	TCPEVENT_CAUSE_SYN = 5,	     /* a SYN */
	TCPEVENT_CAUSE_SYNACK = 6,   /* a SYN-ACK of a request (a listener's) */
	TCPEVENT_CAUSE_SENT = 7,     /* a reset this host sent */
	TCPEVENT_CAUSE_RECEIVED = 8, /* a reset this host received */
};

/*
 * The layout grows by appending: a record of an earlier layout is a prefix
 * of this one, and the library reads it with the fields it lacks as 0.
 * TCPEVENT_RECORD_V1_SIZE is the first layout's size (up to comm),
 * TCPEVENT_RECORD_V2_SIZE the second's (up to reserved).
 *
 * pid/uid/comm name the owner: the process that ended the connection in
 * process context (close(), shutdown(), exit), or when none did (a reset,
 * a timeout), the last one seen holding it there (docs/attribution.md).
 * origin_* name the process that set it up: connect()'s caller, or for the
 * passive side the one that put its listener in listen().
 */
struct tcpevent_record {
	__u64 ts_ns;	   /* bpf_ktime_get_boot_ns() at the event */
	__u64 lifetime_ns; /* first sighting -> event */
	__u64 rx_bytes;	   /* tcp_sock->bytes_received */
	__u64 tx_bytes;	   /* tcp_sock->bytes_acked */
	__u32 pid;	   /* owner tgid, 0 if unknown */
	__u32 uid;
	__u32 segs_out; /* tcp_sock->data_segs_out */
	__u32 segs_in;	/* tcp_sock->data_segs_in */
	__u32 rtt_us;	/* tcp_sock->srtt_us >> 3 */
	__u32 retrans;	/* tcp_sock->total_retrans */
	__u16 family;	/* AF_INET or AF_INET6 */
	__u16 sport;	/* host byte order */
	__u16 dport;	/* host byte order */
	__u8 state;	/* state before TCP_CLOSE; else the current one */
	__u8 flags;	/* TCPEVENT_F_* */
	__u8 saddr[16]; /* network order; IPv4 in the first 4 bytes */
	__u8 daddr[16];
	char comm[TCPEVENT_COMM_LEN];
	/* Since the second layout. */
	__u64 cgroup_id; /* the socket's cgroup v2 id; 0 if unknown */
	__u64 handshake_ns; /* SYN_SENT/SYN_RECV -> ESTABLISHED; 0 if not measured */
	__u64 accept_wait_ns; /* ESTABLISHED -> accept() returned; 0 if not */
	__u32 netns;	      /* inode of the socket's network namespace */
	__u16 error;	      /* the socket's pending error (sk_err), or 0 */
	__u8 kind;	      /* enum tcpevent_kind */
	__u8 reserved;
	/* Since the third layout. */
	__u32 origin_pid; /* tgid of the process that set it up; 0 if unknown */
	__u32 origin_uid;
	char origin_comm[TCPEVENT_COMM_LEN];
	/* What the connection went through, counted
	 * only while retransmit, reset or drop events are on (docs/health.md);
	 * else 0. Retransmissions are counted by cause. */
	__u64 first_retrans_ns; /* boot time of its first retransmission, or 0 */
	__u64 last_retrans_ns;	/* of its last one, or 0 */
	__u32 retrans_segs;	/* segments retransmitted */
	__u32 retrans_timeout;	/* TCPEVENT_CAUSE_TIMEOUT retransmissions */
	__u32 retrans_loss;	/* TCPEVENT_CAUSE_LOSS */
	__u32 retrans_fast;	/* TCPEVENT_CAUSE_FAST */
	__u32 retrans_probe;	/* TCPEVENT_CAUSE_PROBE */
	__u32 retrans_syn;	/* TCPEVENT_CAUSE_SYN */
	__u32 resets_sent;
	__u32 resets_received;
	__u32 drops;   /* its packets the kernel dropped with a reason */
	__u32 skipped; /* retransmit: events the rate limit left out
				 * since this connection's previous one */
	__u16 reason;  /* drop: enum skb_drop_reason; a reset sent:
				 * enum sk_rst_reason (the kernel's values) */
	__u8 cause;    /* enum tcpevent_cause */
	__u8 segs;     /* retransmit: segments it sent */
	__u32 reserved2;
};

#define TCPEVENT_RECORD_V1_SIZE 112
#define TCPEVENT_RECORD_V2_SIZE 144

#ifdef __bpf__
/*
 * Compiled into every BPF program that includes this header (one .bpf.c per
 * object): the library reads it before loading and refuses a program built
 * with another layout. A program without it is checked record by record.
 */
const volatile __u32 tcpevent_record_size = sizeof(struct tcpevent_record);
#endif

/*
 * The other record on the ring buffer: a cgroup v2 directory was made
 * (cgroup:cgroup_mkdir), its id and its path, so that the library knows the
 * names of every cgroup its events may carry, however short the cgroup's
 * life (docs/containers.md). Told apart from an event by its size, which no
 * layout of struct tcpevent_record has. A program without the hook sends
 * none: the library then knows only the cgroups it found at start.
 */
/* Longest path the kernel's tracepoint gives (TRACE_CGROUP_PATH_LEN), its
 * NUL included. */
#define TCPEVENT_CGROUP_PATH_LEN 1024

struct tcpevent_cgroup_record {
	__u64 cgroup_id; /* the kernfs id: the directory's inode number */
	__u32 len;	 /* strlen(path); TCPEVENT_CGROUP_PATH_LEN - 1 may
			  * be the kernel's truncation: then unused */
	__u32 reserved;
	char path[TCPEVENT_CGROUP_PATH_LEN]; /* from the hierarchy's root */
};

/* A record of this size is no event: it only wakes the poller up. */
#define TCPEVENT_WAKEUP_SIZE 8

/* Indexes of the optional per-CPU "counters" array. */
enum tcpevent_counter {
	TCPEVENT_CNT_RINGBUF_FULL = 0, /* record lost: ring buffer full */
	TCPEVENT_CNT_UNTRACKED =
		1, /* socket (or its health) not tracked: table full */
	TCPEVENT_CNT_NESTED = 2,       /* hits the nested-hit program handled */
	TCPEVENT_CNT_UNSEEN_CLOSE = 3, /* an owned socket's close never seen */
	TCPEVENT_CNT_UNSEEN_BIRTH = 4, /* a socket released, birth never seen */
	TCPEVENT_CNT_MAX,
};

/* Indexes of the optional "census" array (bpf/tcp_census.bpf.c). */
enum tcpevent_census_slot {
	TCPEVENT_CENSUS_TAKEN = 0, /* set by user space: counting is on */
	TCPEVENT_CENSUS_INCOMPLETE =
		1, /* set by the census: a socket missing */
	TCPEVENT_CENSUS_SLOTS,
};

/* Children the census notes per listener: a longer accept queue (at most
 * somaxconn) leaves it incomplete. The verifier walks every turn of that
 * loop: 1,024 is beyond its limit on 6.18, 512 within; 256 leaves room. */
#define TCPEVENT_CENSUS_QUEUE_MAX 256

#endif /* TCPEVENT_RECORD_H */
