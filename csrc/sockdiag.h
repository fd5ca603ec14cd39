/* SPDX-License-Identifier: MIT */
/*
 * sockdiag.h - internal to libtcpEvent (not installed): the sock_diag
 * client behind tcpevent_connections() (tcpevent_conn.h), in parts the
 * poller and the tests use, one file each:
 *   sockdiag_parse.c    the reply parser, and the array it fills
 *   sockdiag_dump.c     a dump of one family, restarted as needed
 *   sockdiag_netlink.c  the netlink transport (another namespace too)
 *   connections.c       the listing, with owners; tcpevent_connections()
 *   snapshot_record.c   a listed socket as a snapshot record
 *
 * Errors: 0 (or a count) or -errno, with the reason in
 * tcpevent_last_error() (te_fail()). Allocation failures are -ENOMEM.
 */
#ifndef TCPEVENT_SOCKDIAG_H
#define TCPEVENT_SOCKDIAG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tcpevent_conn.h"
#include "tcpevent_record.h"

/* A socket's addresses as the kernel sent them, laid out as in the record
 * (network order; IPv4 in the first 4 bytes, the rest 0). */
struct sockdiag_addr {
	uint8_t saddr[16];
	uint8_t daddr[16];
};

/* Growing array of parsed sockets, plus the user-space port filter. */
struct sockdiag_result {
	struct tcpevent_conn *conns;
	struct sockdiag_addr *addrs; /* addrs[i]: those of conns[i] */
	size_t count, cap;
	const uint16_t *ports; /* keep only these (local or remote) */
	size_t n_ports;	       /* 0: keep all */
};

void sockdiag_result_free(struct sockdiag_result *res);
/* Drop the entries from index mark on (a restarted dump's partial data). */
void sockdiag_result_truncate(struct sockdiag_result *res, size_t mark);

/*
 * Parse one netlink receive buffer (a whole datagram, 4-byte aligned) into
 * res. Returns:
 *   > 0      messages consumed, the dump goes on;
 *   0        NLMSG_DONE seen (sockets before it are in res);
 *   -EINVAL  malformed (bad nlmsg_len, rtattr running past its message,
 *            short inet_diag_msg or attribute, leftover bytes);
 *   -EAGAIN  a message carries NLM_F_DUMP_INTR: the dump must be restarted;
 *   -errno   NLMSG_ERROR (or an NLMSG_DONE carrying an error) from the kernel;
 *   -ENOMEM.
 * Nothing outside [buf, buf + len) is ever read.
 */
int sockdiag_parse(const void *buf, size_t len, struct sockdiag_result *res);

/* Transport of a dump, pluggable so the tests can script kernel replies. */
struct sockdiag_io {
	/* Drop any dump in flight (the default: a fresh socket). */
	int (*reset)(void *ctx);
	/* Send one request datagram. 0 or -errno. */
	int (*send)(void *ctx, const void *msg, size_t len);
	/* Receive one datagram into buf; return its FULL length (may exceed
	 * cap: then it was truncated), or -errno. */
	ssize_t (*recv)(void *ctx, void *buf, size_t cap);
	void *ctx;
};

#define SOCKDIAG_MAX_RESTARTS 8 /* per family and call */
#define SOCKDIAG_BUF_SIZE     (64u << 10)
#define SOCKDIAG_BUF_MAX      (4u << 20)

/*
 * Dump one family (AF_INET or AF_INET6) with the given state mask into res.
 * Restarts the dump (reset, resend, drop this family's partial results) on
 * NLM_F_DUMP_INTR, a truncated datagram (after growing the buffer) or
 * ENOBUFS, at most SOCKDIAG_MAX_RESTARTS times (then -EAGAIN).
 */
int sockdiag_dump(const struct sockdiag_io *io, uint8_t family, uint32_t states,
		  struct sockdiag_result *res);

/* The netlink transport: ctx is a struct sockdiag_nl. */
struct sockdiag_nl {
	int fd;
	int netns_fd;	   /* make the socket in this network namespace
				 * (an nsfs fd); -1: the caller's */
	const char *netns; /* its path, for error messages */
};
/* Open nl->fd (in nl->netns_fd's namespace, if set). */
int sockdiag_nl_open(struct sockdiag_nl *nl);
void sockdiag_nl_close(struct sockdiag_nl *nl);
void sockdiag_nl_io(struct sockdiag_nl *nl, struct sockdiag_io *io);

/*
 * The sockets matching q into res, with their raw addresses and, as q asks,
 * their owners: tcpevent_connections() without its checks of the caller's
 * query (q is full-size, from tcpevent_conn_query_init()). 0, or -errno
 * with res emptied.
 */
int sockdiag_connections(const struct tcpevent_conn_query *q,
			 struct sockdiag_result *res);

/* For the poller: a live socket (c, and a its addresses) as a snapshot
 * record, stamped ts_ns (CLOCK_BOOTTIME); absent tcp_info fields give 0,
 * lifetime_ns is 0. */
void sockdiag_conn_to_record(const struct tcpevent_conn *c,
			     const struct sockdiag_addr *a, uint64_t ts_ns,
			     struct tcpevent_record *r);

#endif /* TCPEVENT_SOCKDIAG_H */
