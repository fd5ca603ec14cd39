/* SPDX-License-Identifier: MIT */
/* The built-in BPF object (bpf/tcp.bpf.c compiled by clang), embedded in
 * the library by the build (setup.py generates builtin_object.c): the
 * default build, and the portable one for kernels that refuse it (see
 * kernel_read.h). */
#ifndef TCPEVENT_BUILTIN_OBJECT_H
#define TCPEVENT_BUILTIN_OBJECT_H

#include <stddef.h>

extern const unsigned char te_builtin_object[];
extern const size_t te_builtin_object_size;
extern const unsigned char te_portable_object[];
extern const size_t te_portable_object_size;

#endif /* TCPEVENT_BUILTIN_OBJECT_H */
