// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Compiles, but the verifier must refuse it: a hash map value is used
 * without checking the lookup for NULL. */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counter SEC(".maps");

SEC("raw_tracepoint/inet_sock_set_state")
int rejected(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&counter, &key);

	*value += 1;	/* no NULL check */
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
