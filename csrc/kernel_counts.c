// SPDX-License-Identifier: MIT
/*
 * What the kernel side lost or skipped, as the kernel counted it: the
 * program's per-CPU "counters" array, and the kernel's own count of the
 * program runs it skipped (recursion_misses).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <string.h>

#include "tracer.h"

void te_bpf_kernel_counts(struct te_bpf *b, struct te_kernel_counts *c)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t nested = 0, unseen = 0;
	/* Indexed by enum tcpevent_counter: a close or a birth never seen. */
	uint64_t *sum[TCPEVENT_CNT_MAX] = { &c->ringbuf_full, &c->untracked,
					    &nested, &unseen, &unseen };

	memset(c, 0, sizeof(*c));
	if (b->counters_fd >= 0 && ncpu > 0) {
		for (__u32 key = 0; key < TCPEVENT_CNT_MAX; key++) {
			__u64 vals[ncpu];

			if (bpf_map_lookup_elem(b->counters_fd, &key, vals))
				continue; /* a custom array may be shorter */
			for (int cpu = 0; cpu < ncpu; cpu++)
				*sum[key] += vals[cpu];
		}
	}
	/* The kernel skips a program that is already running on this CPU
	 * (a softirq interrupting it) and counts those skips; the ones the
	 * nested-hit program handled were not lost. */
	for (int i = 0; i < b->n_prog_fds; i++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(b->prog_fds[i], &info, &len))
			c->missed += info.recursion_misses;
	}
	c->missed = (c->missed > nested ? c->missed - nested : 0) + unseen;
}
