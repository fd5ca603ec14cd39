// SPDX-License-Identifier: MIT
/*
 * The poller's once-a-second work on the loaded object (te_bpf_tick()):
 * attach the nested-hit program once the kernel reports a skipped hit, and
 * sweep the socket table of the closes no program saw (docs/design.md).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "loader.h"

/*
 * Whether the kernel counts the runs of program fd it skipped: Linux 5.12
 * added recursion_misses to struct bpf_prog_info; an older kernel answers
 * with its shorter struct (the length it copied).
 */
static bool kernel_counts_skips(int fd)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	return !bpf_obj_get_info_by_fd(fd, &info, &len) &&
	       len >= offsetof(struct bpf_prog_info, recursion_misses) +
			       sizeof(info.recursion_misses);
}

/*
 * The nested-hit program costs a second program dispatch on every
 * tracepoint hit, and it only helps where the kernel skips the main program
 * because a softirq interrupted it on its CPU. That is rare
 * (docs/reliability.md; the cost of each choice: docs/performance.md), so
 * it waits in standby and is attached the first time the kernel reports a
 * skip; skips before that are counted as missed. Before 5.12 no skip is
 * reported, so none would wake it and the skipped closes would be lost
 * uncounted: there watched_fd stays -1 and the caller attaches it now.
 */
void te_bpf_hold_in_standby(struct te_bpf *b, struct bpf_program *nested)
{
	struct bpf_program *main_prog =
		bpf_object__find_program_by_name(b->obj, "tcpevent_state");
	int fd = main_prog ? bpf_program__fd(main_prog) : -1;

	b->standby = nested;
	b->watched_fd = fd >= 0 && kernel_counts_skips(fd) ? fd : -1;
}

static void watch_skips(struct te_bpf *b)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (!b->standby || bpf_obj_get_info_by_fd(b->watched_fd, &info, &len) ||
	    !info.recursion_misses)
		return;
	/* Once: if it cannot be attached, the skips stay counted. */
	if (te_bpf_attach_program(b, b->standby))
		te_error_clear();
	b->standby = NULL;
}

/*
 * A sweep walks every bucket of the socket table, so its cost grows with
 * max_sockets (per walk of the default table: docs/performance.md). A table
 * of the default size is swept every tick, a larger one every
 * max_sockets / TCPEVENT_DEFAULT_MAX_SOCKETS ticks, so that the sweep's
 * share of a CPU stays the same whatever the table's size.
 */
void te_bpf_plan_sweeps(struct te_bpf *b, struct bpf_program *sweep)
{
	struct bpf_map *sockets =
		bpf_object__find_map_by_name(b->obj, "sockets");

	b->sweep_fd = bpf_program__fd(sweep);
	b->sweep_every = sockets ? bpf_map__max_entries(sockets) /
					   TCPEVENT_DEFAULT_MAX_SOCKETS :
				   1;
	if (!b->sweep_every)
		b->sweep_every = 1;
}

void te_bpf_tick(struct te_bpf *b)
{
	LIBBPF_OPTS(bpf_test_run_opts, run);

	watch_skips(b);
	if (b->sweep_fd >= 0 && ++b->ticks >= b->sweep_every) {
		b->ticks = 0;
		bpf_prog_test_run_opts(b->sweep_fd, &run);
	}
}
