/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * The kernel types only the health programs read (tcp_health.bpf.c), in the
 * manner of vmlinux_min.h: CO-RE relocated, only the fields used. A type
 * vmlinux_min.h already declares gets a ___health flavor here (libbpf
 * matches it to the kernel's type of the name before the ___).
 */
#ifndef TCPEVENT_VMLINUX_HEALTH_H
#define TCPEVENT_VMLINUX_HEALTH_H

#include "vmlinux_min.h"

#define ETH_P_IP   0x0800
#define ETH_P_IPV6 0x86DD

/* include/net/inet_connection_sock.h: what icsk_pending says is armed. */
#define ICSK_TIME_RETRANS    1
#define ICSK_TIME_LOSS_PROBE 5

/* include/net/tcp.h: enum tcp_ca_state. */
#define TCP_CA_Open	0
#define TCP_CA_Disorder 1
#define TCP_CA_Loss	4

#define TCPHDR_SYN 0x02

#pragma clang attribute push(__attribute__((preserve_access_index)), \
			     apply_to = record)

struct net_device {
	possible_net_t nd_net;
};

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	char cb[48];
	__be16 protocol;
	__u16 transport_header;
	__u16 network_header;
	unsigned char *head;
};

/* In skb->cb of a TCP skb. tcp_flags was a __u8 before 6.?: its low byte
 * holds the flags read here either way (little-endian). */
struct tcp_skb_cb {
	__u16 tcp_gso_segs;
	__u16 tcp_flags;
};

struct tcp_sock___health {
	__u32 tlp_high_seq;
};

#pragma clang attribute pop

#endif /* TCPEVENT_VMLINUX_HEALTH_H */
