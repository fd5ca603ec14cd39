/* SPDX-License-Identifier: MIT */
/*
 * What this process may do, asked before the kernel answers only EPERM:
 * its capabilities, tracefs (where classic tracepoints get their ids) and
 * kernel.perf_event_paranoid. Each answer is for an error message, or to
 * mount tracefs where nobody did; none of them grants or refuses anything.
 */
#ifndef TCPEVENT_PRIVILEGES_H
#define TCPEVENT_PRIVILEGES_H

#include <stdbool.h>

/* tracefs' standard place (where the library mounts it if need be). */
#define TE_TRACEFS "/sys/kernel/tracing"

/* The remedy every privilege error names. */
#define TE_PRIV_REMEDY                                       \
	"run it as root (sudo), or grant the capabilities: " \
	"sudo setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep <program>"

/*
 * 0 if this process may load a tracing BPF program (CAP_SYS_ADMIN, or both
 * CAP_BPF and CAP_PERFMON), or if it cannot tell; else -EPERM, naming the
 * missing capabilities in tcpevent_last_error().
 */
int te_check_privileges(void);

/* Whether this process has capability cap (false if it cannot tell). */
bool te_has_capability(int cap);

/*
 * Whether opening the perf event of a classic tracepoint is refused for
 * lack of CAP_SYS_ADMIN: Debian's and Ubuntu's kernels add a level 3 to
 * kernel.perf_event_paranoid (their default) at which CAP_PERFMON is not
 * enough.
 */
bool te_perf_events_locked(void);

/*
 * Whether tracefs is mounted (at TE_TRACEFS or under debugfs); if not, mount
 * it at TE_TRACEFS, unless TCPEVENT_NO_TRACEFS_MOUNT is set. True if it is
 * there now.
 */
bool te_ensure_tracefs(void);

/*
 * Whether this process may read the id of the classic tracepoint a program
 * of that section is attached to ("tracepoint/<category>/<name>").
 */
bool te_tracefs_id_readable(const char *section);

#endif /* TCPEVENT_PRIVILEGES_H */
