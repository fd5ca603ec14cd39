/* SPDX-License-Identifier: MIT */
/*
 * The parts of the loader (internal; te_bpf_* of tracer.h is its interface
 * to the rest of the library), one file each:
 *   loader.c        open, configure, load and close an object
 *   globals.c       a program's global variables, found through its BTF
 *   object_check.c  what an object must be before it is loaded
 *   attach.c        attaching the programs, and explaining a refusal
 *   upkeep.c        the poller's once-a-second work: standby and sweep
 *   census.c        the passive sockets open when the hooks were attached
 *   kernel_counts.c what the kernel side counted
 */
#ifndef TCPEVENT_LOADER_H
#define TCPEVENT_LOADER_H

#include <bpf/libbpf.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "tracer.h"

/*
 * The programs the built-in object has besides tcpevent_state, known by
 * name or section (a custom object may have any of them, or none).
 */

/* The accept() syscall-exit hooks: optional (TCPEVENT_OPT_NO_ACCEPT_HOOKS). */
static inline bool te_is_accept_program(const struct bpf_program *prog)
{
	static const char section[] = "tracepoint/syscalls/sys_exit_accept";

	return !strncmp(bpf_program__section_name(prog), section,
			sizeof(section) - 1);
}

/* tcpevent_sweep is for no hook: the poller runs it (upkeep.c). */
static inline bool te_is_sweep_program(const struct bpf_program *prog)
{
	return !strcmp(bpf_program__name(prog), "tcpevent_sweep");
}

/* tcpevent_census is an iterator: run once, after the hooks (census.c). */
static inline bool te_is_census_program(const struct bpf_program *prog)
{
	return !strcmp(bpf_program__name(prog), "tcpevent_census");
}

/* The stand-in for the hits the kernel skips (upkeep.c): when it is skipped
 * itself, nothing is lost, so its skips are not counted. */
static inline bool te_is_nested_program(const struct bpf_program *prog)
{
	return !strcmp(bpf_program__name(prog), "tcpevent_state_nested");
}

/* loader.c: append to b->warning (what works less well than it could). */
void te_bpf_warn(struct te_bpf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* globals.c: read or set a `const volatile` global before load; -ENOENT if
 * the program has none of that name (not an error: nothing is set). */
int te_rodata_read(struct bpf_object *obj, const char *name, void *val,
		   size_t size);
int te_rodata_write(struct bpf_object *obj, const char *name, const void *val,
		    size_t size);
/* globals.c: after load, map the object's .bss and return the address of
 * its global `name` there (*mem, *len: the mapping, for munmap()); NULL if
 * it has none of that name and size. */
void *te_bss_var(struct bpf_object *obj, const char *name, size_t size,
		 void **mem, size_t *len);

/* object_check.c: 0, or -errno with the reason, before load. */
int te_check_record_layout(struct bpf_object *obj);
int te_check_map_sizes(struct bpf_object *obj);

/* attach.c */
int te_bpf_attach_program(struct te_bpf *b, struct bpf_program *prog);
int te_bpf_attach_all(struct te_bpf *b);

/* upkeep.c: set up what te_bpf_tick() does for these programs. */
void te_bpf_hold_in_standby(struct te_bpf *b, struct bpf_program *nested);
void te_bpf_plan_sweeps(struct te_bpf *b, struct bpf_program *sweep);

/* census.c: run the census once every hook is attached; it counts births
 * never seen only if the release hook is (counting). A failure is a
 * warning. */
void te_bpf_take_census(struct te_bpf *b, struct bpf_program *census,
			bool counting);

#endif /* TCPEVENT_LOADER_H */
