/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Reading kernel structures from the BPF program, two ways.
 *
 * The default build casts a kernel pointer to its BTF type with the
 * bpf_rdonly_cast() kfunc (Linux 6.2+): its fields are then plain loads,
 * single instructions once JITed (and faulting safely). The portable build
 * (-DTCPEVENT_PORTABLE) reads each field with bpf_probe_read_kernel(), a
 * helper call each. Both are CO-RE. The library loads the default build and
 * falls back to the portable one where the kernel refuses it.
 */
#ifndef TCPEVENT_KERNEL_READ_H
#define TCPEVENT_KERNEL_READ_H

#include <bpf/bpf_core_read.h>

#ifdef TCPEVENT_PORTABLE

#define KPTR(type, p)		      ((type *)(p))
#define KREAD(p, field)		      BPF_CORE_READ(p, field)
#define KREAD_BYTES(dst, n, p, field) bpf_core_read(dst, n, &(p)->field)
/* sk_protocol was a bitfield before 5.6. */
#define KREAD_PROTOCOL(sk) BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol)
/* sk_shutdown was a bitfield in older kernels too. */
#define KREAD_SHUTDOWN(sk) BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown)

#else

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

#define KPTR(type, p)                               \
	((type *)bpf_rdonly_cast((const void *)(p), \
				 bpf_core_type_id_kernel(type)))
#define KREAD(p, field)		      ((p)->field)
#define KREAD_BYTES(dst, n, p, field) __builtin_memcpy(dst, &(p)->field, n)
#define KREAD_PROTOCOL(sk)	      ((sk)->sk_protocol)
#define KREAD_SHUTDOWN(sk)	      ((sk)->sk_shutdown)

#endif

#endif /* TCPEVENT_KERNEL_READ_H */
