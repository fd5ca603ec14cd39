// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * The built-in program, blind to the closes of connections on one port
 * (-DHIDDEN_PORT=n), as some kernels leave a program blind to the state
 * changes they run in some tasks' context (docs/reliability.md). The loss
 * must show in stats.missed once the sockets' memory is reused.
 */
static inline __attribute__((always_inline)) int
hidden_close(unsigned long long sk);
#define TCPEVENT_CLOSE_HIDDEN(sk) hidden_close(sk)

#include "tcp.bpf.c"

static __always_inline int hidden_close(unsigned long long sk)
{
	return bpf_ntohs(KREAD(KPTR(struct inet_sock, sk), inet_sport)) ==
		       HIDDEN_PORT ||
	       bpf_ntohs(KREAD(KPTR(struct sock, sk),
			       __sk_common.skc_dport)) == HIDDEN_PORT;
}
