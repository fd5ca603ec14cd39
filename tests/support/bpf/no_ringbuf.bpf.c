// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Valid, but without the ring buffer the contract asks for. */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>

SEC("raw_tracepoint/inet_sock_set_state")
int no_ringbuf(struct bpf_raw_tracepoint_args *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
