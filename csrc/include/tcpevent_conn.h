/* SPDX-License-Identifier: MIT */
/*
 * tcpevent_conn.h - the live TCP connections of the host, with the full
 * struct tcp_info of each and optionally the owning process, through netlink
 * sock_diag (no BPF, no privilege). Part of the public API of libtcpEvent.so,
 * wrapped in Python as tcpevent.connections().
 *
 * Errors: every function returns 0 or -errno, with the reason in
 * tcpevent_last_error(). Nothing here exits, aborts or prints.
 * Thread safety: reentrant; each tcpevent_connections() call opens its own
 * netlink socket (a cached one could receive stale replies of an abandoned
 * dump).
 */
#ifndef TCPEVENT_CONN_H
#define TCPEVENT_CONN_H

#include <stddef.h>
#include <stdint.h>

#include "tcpevent.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TCP states (values of tcpevent_conn.state, same as the kernel's). */
enum tcpevent_tcp_state {
	TCPEVENT_TCP_ESTABLISHED = 1,
	TCPEVENT_TCP_SYN_SENT,
	TCPEVENT_TCP_SYN_RECV,
	TCPEVENT_TCP_FIN_WAIT1,
	TCPEVENT_TCP_FIN_WAIT2,
	TCPEVENT_TCP_TIME_WAIT,
	TCPEVENT_TCP_CLOSE,
	TCPEVENT_TCP_CLOSE_WAIT,
	TCPEVENT_TCP_LAST_ACK,
	TCPEVENT_TCP_LISTEN,
	TCPEVENT_TCP_CLOSING,
	TCPEVENT_TCP_NEW_SYN_RECV,
	TCPEVENT_TCP_BOUND_INACTIVE,
};

#define TCPEVENT_STATE_BIT(s) (1u << (s))
/* The default (query.states == 0): sockets of real connections, i.e. with
 * an inode, an owner and a tcp_info. Leaves out LISTEN, CLOSE, TIME_WAIT and
 * SYN_RECV (the last two are kernel mini-sockets without any of those). */
#define TCPEVENT_STATES_CONNECTED                       \
	(TCPEVENT_STATE_BIT(TCPEVENT_TCP_ESTABLISHED) | \
	 TCPEVENT_STATE_BIT(TCPEVENT_TCP_SYN_SENT) |    \
	 TCPEVENT_STATE_BIT(TCPEVENT_TCP_FIN_WAIT1) |   \
	 TCPEVENT_STATE_BIT(TCPEVENT_TCP_FIN_WAIT2) |   \
	 TCPEVENT_STATE_BIT(TCPEVENT_TCP_CLOSE_WAIT) |  \
	 TCPEVENT_STATE_BIT(TCPEVENT_TCP_LAST_ACK) |    \
	 TCPEVENT_STATE_BIT(TCPEVENT_TCP_CLOSING))
#define TCPEVENT_STATES_ALL 0xffffffffu

/* Values of tcpevent_conn.timer: the kernel's idiag_timer (which timer is
 * pending), named as ss names them. */
enum tcpevent_conn_timer {
	TCPEVENT_TIMER_NONE = 0,
	TCPEVENT_TIMER_RETRANSMIT = 1,
	TCPEVENT_TIMER_KEEPALIVE = 2,
	TCPEVENT_TIMER_TIME_WAIT = 3,
	TCPEVENT_TIMER_ZERO_WINDOW_PROBE = 4,
};

/* tcpevent_conn.shutdown when the kernel sent no INET_DIAG_SHUTDOWN. */
#define TCPEVENT_SHUTDOWN_ABSENT 0xff

/*
 * Our own copy of the kernel's struct tcp_info as of Linux 6.18
 * (include/uapi/linux/tcp.h; 280 bytes). The system header may be older, so
 * it is not used. The kernel sends as many bytes as it knows; a field is
 * present only if it ends within tcpevent_conn.info_len (see
 * TCPEVENT_TCP_INFO_HAS); absent fields read as 0.
 *
 * Bitfields cannot be length-checked with offsetof: snd/rcv_wscale and
 * delivery_rate_app_limited are present when info_len >= 8;
 * fastopen_client_fail (5.5) shares a byte with a 4.9 field and reads 0 on
 * older kernels.
 *
 * Linux 7.0 repacks the last 4 bytes (accecn_fail_mode, accecn_opt_seen)
 * into a u32 bitfield (ecn_mode:2, accecn_opt_seen:2, accecn_fail_mode:4,
 * options2:24); on such kernels those two u16 fields here are to be
 * reinterpreted (the Python layer does: ACCECN_LAYOUT).
 */
struct tcpevent_tcp_info {
	uint8_t tcpi_state;
	uint8_t tcpi_ca_state;
	uint8_t tcpi_retransmits;
	uint8_t tcpi_probes;
	uint8_t tcpi_backoff;
	uint8_t tcpi_options;
	uint8_t tcpi_snd_wscale : 4, tcpi_rcv_wscale : 4;
	uint8_t tcpi_delivery_rate_app_limited : 1,
		tcpi_fastopen_client_fail : 2;

	uint32_t tcpi_rto; /* usec */
	uint32_t tcpi_ato;
	uint32_t tcpi_snd_mss;
	uint32_t tcpi_rcv_mss;

	uint32_t tcpi_unacked;
	uint32_t tcpi_sacked;
	uint32_t tcpi_lost;
	uint32_t tcpi_retrans;
	uint32_t tcpi_fackets;

	/* Times, msec ago. */
	uint32_t tcpi_last_data_sent;
	uint32_t tcpi_last_ack_sent; /* not remembered, always 0 */
	uint32_t tcpi_last_data_recv;
	uint32_t tcpi_last_ack_recv;

	/* Metrics. */
	uint32_t tcpi_pmtu;
	uint32_t tcpi_rcv_ssthresh;
	uint32_t tcpi_rtt; /* smoothed RTT, usec */
	uint32_t tcpi_rttvar;
	uint32_t tcpi_snd_ssthresh;
	uint32_t tcpi_snd_cwnd;
	uint32_t tcpi_advmss;
	uint32_t tcpi_reordering;

	uint32_t tcpi_rcv_rtt;
	uint32_t tcpi_rcv_space;

	uint32_t tcpi_total_retrans;

	uint64_t tcpi_pacing_rate; /* bytes/s */
	uint64_t tcpi_max_pacing_rate;
	uint64_t tcpi_bytes_acked;    /* offset 120 */
	uint64_t tcpi_bytes_received; /* offset 128 */
	uint32_t tcpi_segs_out;
	uint32_t tcpi_segs_in;

	uint32_t tcpi_notsent_bytes;
	uint32_t tcpi_min_rtt;
	uint32_t tcpi_data_segs_in;
	uint32_t tcpi_data_segs_out;

	uint64_t tcpi_delivery_rate;

	uint64_t tcpi_busy_time;      /* usec busy sending data */
	uint64_t tcpi_rwnd_limited;   /* usec limited by receive window */
	uint64_t tcpi_sndbuf_limited; /* usec limited by send buffer */

	uint32_t tcpi_delivered;
	uint32_t tcpi_delivered_ce;

	uint64_t tcpi_bytes_sent;
	uint64_t tcpi_bytes_retrans;
	uint32_t tcpi_dsack_dups;
	uint32_t tcpi_reord_seen;

	uint32_t tcpi_rcv_ooopack;

	uint32_t tcpi_snd_wnd; /* peer's advertised window, bytes */
	uint32_t tcpi_rcv_wnd; /* local advertised window, bytes */

	uint32_t tcpi_rehash;

	uint16_t tcpi_total_rto;
	uint16_t tcpi_total_rto_recoveries;
	uint32_t tcpi_total_rto_time; /* msec; 6.7+ ends here (248) */

	/* Accurate ECN, 6.18+ */
	uint32_t tcpi_received_ce; /* CE-marked segments received */
	uint32_t tcpi_delivered_e1_bytes;
	uint32_t tcpi_delivered_e0_bytes;
	uint32_t tcpi_delivered_ce_bytes;
	uint32_t tcpi_received_e1_bytes;
	uint32_t tcpi_received_e0_bytes;
	uint32_t tcpi_received_ce_bytes;
	uint16_t tcpi_accecn_fail_mode;
	uint16_t tcpi_accecn_opt_seen;
};

/* 1 if a field [offset, offset + size) lies within the info_len bytes the
 * kernel sent, else 0. Written to be overflow-free. */
static inline int tcpevent_tcp_info_has(size_t info_len, size_t field_offset,
					size_t field_size)
{
	return field_size <= info_len && field_offset <= info_len - field_size;
}

/* TCPEVENT_TCP_INFO_HAS(conn, tcpi_bytes_acked): is that field present? */
#define TCPEVENT_TCP_INFO_HAS(conn, field)                               \
	tcpevent_tcp_info_has((conn)->info_len,                          \
			      offsetof(struct tcpevent_tcp_info, field), \
			      sizeof(((struct tcpevent_tcp_info *)0)->field))

/* Socket memory (INET_DIAG_SKMEMINFO, the SK_MEMINFO_* u32 array). Entry i
 * is present when i < tcpevent_conn.skmem_count. */
struct tcpevent_skmem {
	uint32_t rmem_alloc; /* bytes in the receive queue */
	uint32_t rcvbuf;
	uint32_t wmem_alloc; /* bytes in flight (in qdisc/driver) */
	uint32_t sndbuf;
	uint32_t fwd_alloc;
	uint32_t wmem_queued; /* bytes in the send queue */
	uint32_t optmem;
	uint32_t backlog;
	uint32_t drops;
};

/* One socket. Strings are NUL-terminated. */
struct tcpevent_conn {
	uint16_t family;  /* AF_INET or AF_INET6 */
	uint16_t sport;	  /* local port, host byte order */
	uint16_t dport;	  /* remote port, host byte order */
	uint8_t state;	  /* enum tcpevent_tcp_state */
	uint8_t shutdown; /* SHUT_* bits seen: 1 rd, 2 wr; 0xff absent */
	char saddr[TCPEVENT_ADDR_LEN]; /* inet_ntop text; an IPv4-mapped */
	char daddr[TCPEVENT_ADDR_LEN]; /* IPv6 socket gives "::ffff:a.b.c.d" */
	uint32_t ifindex;	       /* bound device, 0 if none */
	uint32_t uid;
	uint64_t inode;	     /* 0 for TIME_WAIT / SYN_RECV minisocks */
	uint64_t cookie;     /* = bpf_get_socket_cookie() of the socket */
	uint32_t rqueue;     /* LISTEN: accept queue; else unread bytes */
	uint32_t wqueue;     /* LISTEN: backlog limit; else unacked bytes */
	uint32_t expires_ms; /* pending timer, msec */
	uint8_t timer; /* 0 none, 1 retrans, 2 keepalive, 3 TIME_WAIT, 4 probe */
	uint8_t retrans;     /* retransmits / probes of the timer */
	uint8_t tos;	     /* INET_DIAG_TOS, 0 if absent */
	uint8_t tclass;	     /* INET_DIAG_TCLASS (IPv6), 0 if absent */
	uint8_t v6only;	     /* INET_DIAG_SKV6ONLY, 0 if absent */
	uint8_t skmem_count; /* u32 entries of skmem the kernel sent */
	uint8_t reserved[2];
	uint32_t mark;	    /* INET_DIAG_MARK (root only), 0 if absent */
	uint32_t attrs;	    /* bit 1u << INET_DIAG_x: attribute x received */
	uint64_t cgroup_id; /* INET_DIAG_CGROUP_ID, 0 if absent */
	/* Owner: only filled when asked (with_process, with_cmdline or pids). */
	uint32_t pid;		      /* 0: unknown or not asked */
	char task[TCPEVENT_COMM_LEN]; /* /proc/<pid>/comm, "" if unknown */
	char *cmdline; /* with_cmdline: args joined by spaces ("" if
					 * unreadable); otherwise, or pid 0: NULL.
					 * Freed by tcpevent_connections_free(). */
	char cong[16]; /* congestion control, "" if absent */
	struct tcpevent_skmem skmem;
	uint32_t info_len; /* tcp_info bytes the kernel sent; 0: none
					 * (may exceed sizeof(info) on newer kernels) */
	uint32_t reserved2;
	struct tcpevent_tcp_info info;
};

struct tcpevent_conn_query {
	size_t size;	       /* sizeof(struct tcpevent_conn_query) */
	uint16_t family;       /* 0: both; AF_INET or AF_INET6 only */
	uint16_t n_ports;      /* sockets whose local or remote port is */
	const uint16_t *ports; /* one of these (host order); none: all */
	uint32_t states;       /* TCPEVENT_STATE_BIT mask; 0: CONNECTED */
	uint32_t n_pids;       /* sockets held open by one of these */
	const uint32_t *pids;  /* processes; none: all (implies owners) */
	int with_process;      /* fill pid and task */
	int with_cmdline;      /* also cmdline (implies with_process) */
	/* Appended: a caller's smaller struct (its size) leaves it NULL. */
	const char *netns; /* the sockets of this network namespace:
					 * the path of its nsfs file
					 * (/proc/PID/ns/net, /run/netns/NAME);
					 * NULL: the caller's. Entering another
					 * one needs CAP_SYS_ADMIN. */
};

/* Fill *q with the defaults: both families, TCPEVENT_STATES_CONNECTED, no
 * filters, no owners. */
void tcpevent_conn_query_init(struct tcpevent_conn_query *q);

/*
 * List the TCP sockets matching q (NULL: the defaults). On success returns 0
 * and a malloc'ed array in *out (NULL if *count is 0), in kernel order, to
 * be released with tcpevent_connections_free(). On failure returns -errno
 * (-EINVAL bad query or malformed reply, -ENOMEM, -EAGAIN dump interrupted
 * too often, -ETIMEDOUT no reply within 5 s, or the kernel's error), with
 * *out NULL, *count 0 and the reason in tcpevent_last_error().
 *
 * Another network namespace (q->netns): the netlink socket is made inside
 * it by a short-lived thread of ours (setns(), socket(), exit), so the
 * calling thread never changes namespace. Owners are found as below:
 * socket inodes are unique across namespaces.
 *
 * Owners: found by scanning /proc/<pid>/fd of every process (or only of
 * q->pids) for the wanted socket inodes, stopping once all are found. When
 * several processes share a socket, the lowest pid wins (pids are scanned in
 * ascending order). Only the fd table of the thread-group leader is read.
 * Sockets of processes we may not inspect stay unowned (pid 0). With q->pids,
 * only sockets found in those processes are returned.
 */
int tcpevent_connections(const struct tcpevent_conn_query *q,
			 struct tcpevent_conn **out, size_t *count);
void tcpevent_connections_free(struct tcpevent_conn *conns, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* TCPEVENT_CONN_H */
