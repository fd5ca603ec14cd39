/* SPDX-License-Identifier: MIT */
/* The built-in UDP BPF object (csrc/bpf/udp.bpf.c compiled by clang),
 * embedded in libudpEvent.so by the build (setup.py). */
#ifndef UDPEVENT_UDP_OBJECT_H
#define UDPEVENT_UDP_OBJECT_H

#include <stddef.h>

extern const unsigned char te_udp_object[];
extern const size_t te_udp_object_size;

#endif /* UDPEVENT_UDP_OBJECT_H */
