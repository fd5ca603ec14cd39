// SPDX-License-Identifier: GPL-2.0 OR MIT
/* Built against another version of tcpevent_record.h, whose record was 120
 * bytes: the size marker that header defines says so. */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>

struct tcpevent_record {
	__u64 fields[15];
};

const volatile __u32 tcpevent_record_size = sizeof(struct tcpevent_record);

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

SEC("raw_tracepoint/inet_sock_set_state")
int other_layout(struct bpf_raw_tracepoint_args *ctx)
{
	struct tcpevent_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);

	if (r)
		bpf_ringbuf_discard(r, 0);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
