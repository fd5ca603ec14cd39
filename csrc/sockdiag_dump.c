// SPDX-License-Identifier: MIT
/*
 * A sock_diag dump of one address family: the request, and its restarts
 * when the kernel's socket table changed under it or a reply did not fit,
 * over a transport of the caller's (sockdiag.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>

#include "error.h"
#include "sockdiag.h"

#define EXT(attr) (1u << ((attr)-1)) /* idiag_ext request bit */

struct dump_req {
	struct nlmsghdr nlh;
	struct inet_diag_req_v2 r;
};

static void build_req(struct dump_req *q, uint8_t family, uint32_t states,
		      uint32_t seq)
{
	memset(q, 0, sizeof(*q));
	q->nlh.nlmsg_len = sizeof(*q);
	q->nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	q->nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	q->nlh.nlmsg_seq = seq;
	q->r.sdiag_family = family;
	q->r.sdiag_protocol = IPPROTO_TCP;
	q->r.idiag_states = states;
	/* SHUTDOWN, SKV6ONLY, CGROUP_ID (and MARK for root) come anyway;
	 * TCLASS is only sent for IPv6 sockets */
	q->r.idiag_ext = EXT(INET_DIAG_INFO) | EXT(INET_DIAG_CONG) |
			 EXT(INET_DIAG_SKMEMINFO) | EXT(INET_DIAG_SHUTDOWN) |
			 EXT(INET_DIAG_TOS) | EXT(INET_DIAG_TCLASS);
}

/* Receive and parse until NLMSG_DONE. -EAGAIN asks for a restart. */
static int dump_once(const struct sockdiag_io *io, void **buf, size_t *cap,
		     struct sockdiag_result *res)
{
	for (;;) {
		ssize_t n = io->recv(io->ctx, *buf, *cap);
		int r;

		if (n == -ENOBUFS)
			return te_fail(EAGAIN,
				       "sock_diag: netlink receive queue overrun");
		if (n == -EAGAIN) /* SO_RCVTIMEO */
			return te_fail(ETIMEDOUT,
				       "sock_diag: no reply from the kernel in time");
		if (n < 0)
			return te_fail((int)-n, "sock_diag: recv failed: %s",
				       strerror((int)-n));
		if (n == 0)
			return te_fail(EIO,
				       "sock_diag: end of stream before NLMSG_DONE");
		if ((size_t)n > *cap) {
			/* lost the tail of a datagram: grow and start over */
			size_t ncap = *cap;
			void *p;

			while (ncap < (size_t)n && ncap < SOCKDIAG_BUF_MAX)
				ncap *= 2;
			if (ncap < (size_t)n)
				return te_fail(EMSGSIZE,
					       "sock_diag: %zd-byte datagram exceeds %u bytes",
					       n, SOCKDIAG_BUF_MAX);
			p = malloc(ncap);
			if (!p)
				return te_fail(ENOMEM, "out of memory");
			free(*buf);
			*buf = p;
			*cap = ncap;
			return te_fail(EAGAIN,
				       "sock_diag: %zd-byte datagram truncated",
				       n);
		}
		r = sockdiag_parse(*buf, (size_t)n, res);
		if (r <= 0)
			return r;
	}
}

int sockdiag_dump(const struct sockdiag_io *io, uint8_t family, uint32_t states,
		  struct sockdiag_result *res)
{
	size_t mark = res->count, cap = SOCKDIAG_BUF_SIZE;
	struct dump_req req;
	void *buf;
	int attempt, r = 0;

	buf = malloc(cap);
	if (!buf)
		return te_fail(ENOMEM, "out of memory");
	for (attempt = 0; attempt <= SOCKDIAG_MAX_RESTARTS; attempt++) {
		if (attempt) {
			/* the old dump may still be streaming: a fresh
			 * socket is simpler than draining it to its DONE */
			sockdiag_result_truncate(res, mark);
			r = io->reset(io->ctx);
			if (r < 0)
				break;
		}
		build_req(&req, family, states, (uint32_t)attempt + 1);
		r = io->send(io->ctx, &req, sizeof(req));
		if (r < 0) {
			te_fail(-r, "sock_diag: send failed: %s", strerror(-r));
			break;
		}
		r = dump_once(io, &buf, &cap, res);
		if (r != -EAGAIN)
			break;
	}
	if (r == -EAGAIN) {
		char last[TE_ERROR_LEN];

		snprintf(last, sizeof(last), "%s", tcpevent_last_error());
		te_fail(EAGAIN,
			"sock_diag: dump restarted %d times, giving up (last: %s)",
			SOCKDIAG_MAX_RESTARTS, last);
	}
	if (r < 0)
		sockdiag_result_truncate(res, mark);
	free(buf);
	return r < 0 ? r : 0;
}
