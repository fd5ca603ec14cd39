/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The kernel fields udp.bpf.c reads beyond vmlinux_min.h's, as CO-RE
 * "flavors" (the ___udp suffix is dropped when libbpf matches them against
 * the kernel's BTF), so that vmlinux_min.h stays the TCP program's.
 */
#ifndef UDPEVENT_UDP_KERNEL_H
#define UDPEVENT_UDP_KERNEL_H

#include <linux/types.h>

#define IPPROTO_UDP 17
#define ETH_P_IP    0x0800
#define ETH_P_IPV6  0x86DD
#define ENOMEM	    12
#define E2BIG	    7

#pragma clang attribute push(__attribute__((preserve_access_index)), \
			     apply_to = record)

struct sock_common___udp {
	unsigned short skc_family;
	struct {
		__s64 counter;
	} skc_cookie;
};

struct sock___udp {
	struct sock_common___udp __sk_common;
};

/* The current task's owner fields, read by the portable build where
 * cgroup_skb programs have no bpf_get_current_*() helpers (udp.bpf.c). */
struct cred___udp {
	struct {
		__u32 val;
	} uid;
};

struct task_struct___udp {
	int tgid;
	const struct cred___udp *cred;
	char comm[16];
};

struct sk_buff___udp {
	unsigned char *head;
	__u16 transport_header;
	__u16 network_header;
};

#pragma clang attribute pop

/* The headers read from the packet (no options needed). */
struct iphdr_min {
	__u8 ver_ihl;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__sum16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr_min {
	__be32 ver_tc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct udphdr_min {
	__be16 source;
	__be16 dest;
	__be16 len;
	__sum16 check;
};

#endif /* UDPEVENT_UDP_KERNEL_H */
