/* SPDX-License-Identifier: MIT */
/*
 * The running kernel's BTF (/sys/kernel/btf/vmlinux), loaded once per
 * process: what its enums say and which tracepoints it has, with which
 * arguments. Never a table of our own: numbering differs between kernels.
 */
#ifndef TCPEVENT_KERNEL_BTF_H
#define TCPEVENT_KERNEL_BTF_H

#include <stdbool.h>
#include <stdint.h>

struct btf;

/* The kernel's BTF, or NULL if it has none (freed when the library is
 * unloaded). Thread-safe. */
const struct btf *te_kernel_btf(void);
/* The value of member `member` of `enum name`: 0 and *val, or -ENOENT. */
int te_btf_enum_value(const char *name, const char *member, int64_t *val);
/* The name of the member of `enum name` whose value is val, or NULL. */
const char *te_btf_enum_name(const char *name, int64_t val);
/* How many arguments tracepoint tp passes (its btf_trace_<tp> type, less
 * the context pointer), or -ENOENT if the kernel has no such tracepoint. */
int te_btf_tracepoint_args(const char *tp);

#endif /* TCPEVENT_KERNEL_BTF_H */
