// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * A custom program that emits bad records on every TCP close, to prove the
 * library never turns them into out-of-bounds reads or garbage strings:
 *   - family 7 (neither AF_INET nor AF_INET6): must be dropped, counted;
 *   - a comm of 16 non-NUL bytes: must be cut to 15 and terminated;
 *   - an IPv6 record with arbitrary address bytes: valid text anyway;
 *   - a 64-byte record (wrong size): must be dropped, counted;
 *   - a kind that is none of enum tcpevent_kind: must be dropped, counted.
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpevent_record.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

static __always_inline void emit(__u16 family, __u16 sport, __u16 dport,
				 __u8 fill, __u8 kind)
{
	struct tcpevent_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (!r)
		return;
	__builtin_memset(r, fill, sizeof(*r));
	r->ts_ns = bpf_ktime_get_boot_ns();
	r->family = family;
	r->sport = sport;
	r->dport = dport;
	r->kind = kind;
	bpf_ringbuf_submit(r, 0);
}

SEC("raw_tracepoint/inet_sock_set_state")
int hostile(struct bpf_raw_tracepoint_args *ctx)
{
	struct sock *sk = (struct sock *)ctx->args[0];
	__u64 junk[8] = {};
	__u16 sport, dport;

	if (ctx->args[2] != TCP_CLOSE)
		return 0;
	sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	emit(7, sport, dport, 0x41, TCPEVENT_KIND_CLOSE);	/* bad family */
	emit(AF_INET, sport, dport, 0x41, TCPEVENT_KIND_CLOSE);	/* comm "AAAA...", no NUL */
	emit(AF_INET6, sport, dport, 0xfe, TCPEVENT_KIND_CLOSE);	/* arbitrary address bytes */
	emit(AF_INET, sport, dport, 0x41, 0x41);		/* bad kind */
	junk[0] = AF_INET;
	bpf_ringbuf_output(&events, junk, sizeof(junk), 0);	/* 64 bytes */
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
