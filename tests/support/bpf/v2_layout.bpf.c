// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * A custom program built against the second layout of tcpevent_record.h
 * (144 bytes, up to reserved): one record per TCP close, from the socket,
 * with a made-up netns of 4242 (a field of that layout). The library must
 * still take it, reading the fields of the third layout (the health
 * counts, docs/health.md) as 0.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

struct tcpevent_record_v2 {
	__u64 ts_ns, lifetime_ns, rx_bytes, tx_bytes;
	__u32 pid, uid, segs_out, segs_in, rtt_us, retrans;
	__u16 family, sport, dport;
	__u8 state, flags;
	__u8 saddr[16], daddr[16];
	char comm[16];
	__u64 cgroup_id, handshake_ns, accept_wait_ns;
	__u32 netns;
	__u16 error;
	__u8 kind, reserved;
};

const volatile __u32 tcpevent_record_size = sizeof(struct tcpevent_record_v2);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

SEC("raw_tracepoint/inet_sock_set_state")
int v2_layout(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	struct tcpevent_record_v2 *r;

	if (ctx->args[2] != TCP_CLOSE || BPF_CORE_READ(sk, __sk_common.skc_family) != AF_INET)
		return 0;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return 0;
	__builtin_memset(r, 0, sizeof(*r));
	r->ts_ns = bpf_ktime_get_boot_ns();
	r->family = AF_INET;
	r->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	r->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	r->state = ctx->args[1];
	BPF_CORE_READ_INTO(&r->saddr, sk, __sk_common.skc_rcv_saddr);
	BPF_CORE_READ_INTO(&r->daddr, sk, __sk_common.skc_daddr);
	r->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	r->netns = 4242;
	bpf_ringbuf_submit(r, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
