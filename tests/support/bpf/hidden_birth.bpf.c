// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The built-in program, blind to the births of the passive connections on
 * one port (-DHIDDEN_PORT=n), as some kernels leave a program blind to the
 * SYN_RECV children they make in softirq in some tasks' context
 * (docs/reliability.md). The loss must show in stats.missed at each one's
 * release, and only for the children born after the tracer's census.
 */
static inline __attribute__((always_inline)) int
hidden_birth(unsigned long long sk);
#define TCPEVENT_BIRTH_HIDDEN(sk) hidden_birth(sk)

#include "tcp.bpf.c"

static __always_inline int hidden_birth(unsigned long long sk)
{
	return bpf_ntohs(KREAD(KPTR(struct inet_sock, sk), inet_sport)) ==
	       HIDDEN_PORT;
}
