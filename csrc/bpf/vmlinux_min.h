/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The few kernel types the BPF program reads, declared with
 * preserve_access_index so that libbpf relocates every field access against
 * the running kernel's BTF (CO-RE). Only the fields we use are listed; their
 * order and the enclosing anonymous unions do not matter, names do. This
 * replaces a generated vmlinux.h: no kernel headers at build time.
 */
#ifndef TCPEVENT_VMLINUX_MIN_H
#define TCPEVENT_VMLINUX_MIN_H

#include <linux/types.h>
#include <linux/bpf.h>

#define AF_INET		2
#define AF_INET6	10
#define IPPROTO_TCP	6
#define EEXIST		17
#define SHUTDOWN_MASK	3	/* RCV_SHUTDOWN | SEND_SHUTDOWN */

enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT,
	TCP_SYN_RECV,
	TCP_FIN_WAIT1,
	TCP_FIN_WAIT2,
	TCP_TIME_WAIT,
	TCP_CLOSE,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
	TCP_LISTEN,
	TCP_CLOSING,
	TCP_NEW_SYN_RECV,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct sock_common {
	possible_net_t skc_net;
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

typedef struct {
	__u32 val;
} kuid_t;

struct kernfs_node {
	__u64 id;		/* the cgroup id, for a cgroup's node (5.5+) */
};

struct cgroup_subsys_state {
	struct cgroup_subsys_state *parent;
};

/* The cgroup v2 (default) hierarchy's id is 0 ("0::" in /proc/PID/cgroup);
 * v1 hierarchies' are 1 and up. */
struct cgroup_root {
	int hierarchy_id;
};

/* self is the first member: a cgroup's css pointer is the cgroup's. */
struct cgroup {
	struct cgroup_subsys_state self;
	struct kernfs_node *kn;
	struct cgroup_root *root;
};

/* 5.15+ holds the cgroup pointer; before, a tagged word (val): a cgroup
 * pointer when its bit 0 is clear (no net_cls/net_prio data in it). */
struct sock_cgroup_data {
	struct cgroup *cgroup;
	__u64 val;
};

struct socket;

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;	/* a bitfield before 5.6: read it PROBED */
	kuid_t sk_uid;
	int sk_err;
	struct sock_cgroup_data sk_cgrp_data;
	__u8 sk_shutdown;	/* RCV_SHUTDOWN | SEND_SHUTDOWN */
	__u8 sk_kern_sock: 1;	/* the kernel's own: no release hook runs */
	struct socket *sk_socket;	/* NULL: no file (never accepted) */
	__u32 sk_max_ack_backlog;	/* a child's: its listener's */
};

/* inet_num (skc_num) is already 0 at TCP_CLOSE: inet_put_port() ran. */
struct inet_sock {
	__be16 inet_sport;
};

struct tcp_sock {
	__u64 bytes_received;
	__u64 bytes_acked;
	__u32 data_segs_in;
	__u32 data_segs_out;
	__u32 srtt_us;		/* smoothed RTT << 3 */
	__u32 total_retrans;
};

struct inode {
	__u16 i_mode;		/* umode_t */
};

struct file {
	struct inode *f_inode;
	void *private_data;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct cred {
	kuid_t uid;
};

struct task_struct {
	struct files_struct *files;
	int tgid;
	__u64 start_time;	/* ns of CLOCK_MONOTONIC at its fork */
	const struct cred *cred;
	char comm[16];
};

struct socket {
	struct file *file;
	struct sock *sk;
};

/* A connection request; once its child is made, in a listener's queue of
 * children waiting for accept(). */
struct request_sock {
	struct sock_common __req_common;
	struct request_sock *dl_next;
	struct sock *sk;
};

struct request_sock_queue {
	struct request_sock *rskq_accept_head;
};

/* Begins with struct inet_sock, which begins with struct sock. */
struct inet_connection_sock {
	struct request_sock_queue icsk_accept_queue;
	__u8 icsk_ca_state : 5;
	__u8 icsk_pending;
};

struct bpf_iter_meta;

/* The context of an iter/task_file program: one open file of one task. */
struct bpf_iter__task_file {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
	__u32 fd;
	struct file *file;
};

#pragma clang attribute pop

#endif /* TCPEVENT_VMLINUX_MIN_H */
