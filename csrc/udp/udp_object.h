/* SPDX-License-Identifier: MIT */
/* The built-in UDP BPF object (csrc/bpf/udp.bpf.c compiled by clang),
 * embedded in libudpEvent.so by the build (setup.py): the default build,
 * and the portable one for kernels that refuse it (before 6.2). */
#ifndef UDPEVENT_UDP_OBJECT_H
#define UDPEVENT_UDP_OBJECT_H

#include <stddef.h>

extern const unsigned char te_udp_object[];
extern const size_t te_udp_object_size;
extern const unsigned char te_udp_portable_object[];
extern const size_t te_udp_portable_object_size;

#endif /* UDPEVENT_UDP_OBJECT_H */
