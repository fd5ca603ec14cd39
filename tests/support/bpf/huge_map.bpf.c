// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Valid, but one map asks for 2^30 preallocated entries (~72 GiB): loading
 * it would take the host's memory. A bit flipped in a map's max_entries
 * does the same. */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 30);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

SEC("raw_tracepoint/inet_sock_set_state")
int huge_map(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	return bpf_map_lookup_elem(&pid_filter, &pid) != 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
