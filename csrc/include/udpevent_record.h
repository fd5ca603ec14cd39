/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What the UDP BPF program (csrc/bpf/udp.bpf.c) shares with user space: the
 * flow table's key and value, and the record it writes into its ring
 * buffer when a socket is released. The counters are cumulative since the
 * flow's first datagram; user space turns them into per-report deltas.
 */
#ifndef UDPEVENT_RECORD_H
#define UDPEVENT_RECORD_H

#include <linux/types.h>

#include "tcpevent_record.h" /* TCPEVENT_COMM_LEN, the kernel's */

/* Most pids, ports, cgroups or netns one filter holds. */
#define UDPEVENT_MAX_FILTER 1024

/* The flow table's default size (max_flows), and the ring buffer's, which
 * carries only release records. */
#define UDPEVENT_DEFAULT_MAX_FLOWS (1u << 16)
#define UDPEVENT_DEFAULT_RING_SIZE (1u << 20)

/* udpevent_flow_value.flags */
#define UDPEVENT_F_OWNER 0x1 /* pid/uid/comm are the owner's */

/*
 * A flow: one socket (its cookie, never reused while the system runs) and
 * one remote endpoint. A connected socket has one; an unconnected one has
 * one per peer. An IPv4 peer of an AF_INET6 socket is v4-mapped.
 */
struct udpevent_flow_key {
	__u64 cookie;	/* bpf_get_socket_cookie() */
	__u8 raddr[16]; /* network order; IPv4 in the first 4 bytes */
	__u16 rport;	/* host byte order */
	__u16 reserved[3];
};

struct udpevent_flow_value {
	__u64 start_ns;	    /* bpf_ktime_get_boot_ns() at its first datagram */
	__u64 rx_bytes;	    /* payload bytes that reached the socket */
	__u64 tx_bytes;	    /* payload bytes sent */
	__u64 cgroup_id;    /* the socket's cgroup v2 id */
	__u32 rx_datagrams; /* datagrams that reached the socket (ingress) */
	__u32 tx_datagrams; /* datagrams sent (GSO segments each) */
	__u32 rx_drops;	    /* of rx: not queued (buffer full, memory) */
	__u32 pid;	    /* owner tgid, 0 if unknown */
	__u32 uid;
	__u32 netns;  /* inode of the socket's network namespace */
	__u16 family; /* the socket's: AF_INET or AF_INET6 */
	__u16 lport;  /* host byte order */
	__u8 flags;   /* UDPEVENT_F_* */
	__u8 reserved[3];
	__u8 laddr[16]; /* the local address of its first datagram */
	char comm[TCPEVENT_COMM_LEN];
};

/* Ring-buffer record: the socket was released (close() of its last fd). */
struct udpevent_release {
	__u64 ts_ns; /* bpf_ktime_get_boot_ns() */
	__u64 cookie;
};

/* Indexes of the per-CPU "counters" array. */
enum udpevent_counter {
	UDPEVENT_CNT_RINGBUF_FULL = 0, /* a release record lost */
	UDPEVENT_CNT_UNTRACKED =
		1, /* datagrams of flows not tracked: table full */
	UDPEVENT_CNT_NO_STORAGE = 2, /* datagrams of sockets without storage */
	UDPEVENT_CNT_MAX,
};

#endif /* UDPEVENT_RECORD_H */
