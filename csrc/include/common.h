/* SPDX-License-Identifier: MIT */
/*
 * common.h - the header the original examples include: struct tcp_event_t
 * and the types of the six calls (tcpevent_legacy.h; the examples dlsym()
 * them into pointers of their own, named like the calls, so the calls are
 * not declared here: tcpevent.h declares them and the full API), and
 * BPF_PROGRAM, the BCC program text they pass to AddProbe() or
 * setupBPF(). libtcpEvent.so accepts that text and loads its built-in CO-RE
 * program instead, which produces the same events (BCC cannot compile
 * programs on a machine without kernel headers; CO-RE needs none).
 */
#ifndef TCPEVENT_COMMON_H
#define TCPEVENT_COMMON_H

#include "tcpevent_legacy.h"

#ifndef BPF_PROGRAM
#define BPF_PROGRAM TCPEVENT_BCC_PROGRAM
#endif

/* The original program, kept as text for the examples that pass it. */
#define TCPEVENT_BCC_PROGRAM \
"#include <uapi/linux/ptrace.h>\n" \
"#include <net/sock.h>\n" \
"#include <net/tcp_states.h>\n" \
"#include <bcc/proto.h>\n" \
"\n" \
"struct tcp_event_t {\n" \
"    u64 ts_ns; u32 pid; u32 uid; u64 rx_b; u64 tx_b;\n" \
"    u32 segs_out; u32 segs_in; u16 family; u16 sport; u16 dport;\n" \
"    char task[TASK_COMM_LEN];\n" \
"    unsigned __int128 saddr; unsigned __int128 daddr;\n" \
"};\n" \
"BPF_PERF_OUTPUT(tcp_events);\n" \
"\n" \
"int kprobe__tcp_set_state(struct pt_regs *ctx, struct sock *sk, int state)\n" \
"{\n" \
"    if (state != TCP_CLOSE)\n" \
"        return 0;\n" \
"    struct tcp_sock *tp = (struct tcp_sock *)sk;\n" \
"    struct tcp_event_t event = {};\n" \
"    u16 family = sk->__sk_common.skc_family;\n" \
"    event.ts_ns = bpf_ktime_get_ns();\n" \
"    event.pid = bpf_get_current_pid_tgid() >> 32;\n" \
"    event.uid = bpf_get_current_uid_gid();\n" \
"    event.rx_b = tp->bytes_received;\n" \
"    event.tx_b = tp->bytes_acked;\n" \
"    event.segs_out = tp->data_segs_out;\n" \
"    event.segs_in = tp->data_segs_in;\n" \
"    event.sport = sk->__sk_common.skc_num;\n" \
"    event.dport = ntohs(sk->__sk_common.skc_dport);\n" \
"    bpf_get_current_comm(&event.task, sizeof(event.task));\n" \
"    if (family == AF_INET) {\n" \
"        event.family = AF_INET;\n" \
"        event.saddr = sk->__sk_common.skc_rcv_saddr;\n" \
"        event.daddr = sk->__sk_common.skc_daddr;\n" \
"    } else if (family == AF_INET6) {\n" \
"        event.family = AF_INET6;\n" \
"        bpf_probe_read(&event.saddr, sizeof(event.saddr),\n" \
"                       sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32);\n" \
"        bpf_probe_read(&event.daddr, sizeof(event.daddr),\n" \
"                       sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32);\n" \
"    }\n" \
"    tcp_events.perf_submit(ctx, &event, sizeof(event));\n" \
"    return 0;\n" \
"}\n"

#endif /* TCPEVENT_COMMON_H */
