// SPDX-License-Identifier: MIT
/*
 * sockdiag.c - list live TCP sockets through netlink sock_diag
 * (SOCK_DIAG_BY_FAMILY + inet_diag_req_v2), with tcp_info, congestion
 * control, shutdown state and socket memory, and optionally their owners.
 *
 * Every length coming from the kernel is checked before it is used: netlink
 * headers with NLMSG_OK, attributes with RTA_OK, payloads against the size
 * of what is read from them. Fixed structs are memcpy'd out of the buffer
 * since attribute payloads are only 4-byte aligned.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "error.h"
#include "procowner.h"
#include "sockdiag.h"
#include "sync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>

/* Our tcp_info copy must match the kernel's layout byte for byte. */
#define TI_OFF(f) offsetof(struct tcpevent_tcp_info, f)
_Static_assert(TI_OFF(tcpi_rto) == 8, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_rtt) == 68, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_total_retrans) == 100, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_pacing_rate) == 104, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_bytes_acked) == 120, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_bytes_received) == 128, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_min_rtt) == 148, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_delivery_rate) == 160, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_bytes_retrans) == 208, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_rcv_ooopack) == 224, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_rcv_wnd) == 232, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_total_rto) == 240, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_total_rto_time) == 244, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_received_ce) == 248, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_received_ce_bytes) == 272, "tcp_info layout");
_Static_assert(TI_OFF(tcpi_accecn_opt_seen) == 278, "tcp_info layout");
_Static_assert(sizeof(struct tcpevent_tcp_info) == 280, "tcp_info size");
_Static_assert(sizeof(struct tcpevent_skmem) == 9 * 4, "skmem");

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define EXT(attr) (1u << ((attr) - 1))	/* idiag_ext request bit */

/* ---- Result array ----------------------------------------------------- */

static struct tcpevent_conn *result_push(struct sockdiag_result *res)
{
	if (res->count == res->cap) {
		size_t ncap = res->cap ? res->cap * 2 : 64;
		struct tcpevent_conn *p;

		if (ncap > SIZE_MAX / sizeof(*p))
			return NULL;
		p = realloc(res->conns, ncap * sizeof(*p));
		if (!p)
			return NULL;
		res->conns = p;
		res->cap = ncap;
	}
	return &res->conns[res->count++];
}

/* Drop the entries from index mark on (a restarted dump's partial data). */
static void result_truncate(struct sockdiag_result *res, size_t mark)
{
	size_t i;

	for (i = mark; i < res->count; i++)
		free(res->conns[i].cmdline);
	if (mark < res->count)
		res->count = mark;
}

void sockdiag_result_free(struct sockdiag_result *res)
{
	result_truncate(res, 0);
	free(res->conns);
	res->conns = NULL;
	res->count = res->cap = 0;
}

static int port_wanted(const struct sockdiag_result *res,
		       const struct tcpevent_conn *c)
{
	size_t i;

	if (!res->n_ports)
		return 1;
	for (i = 0; i < res->n_ports; i++)
		if (res->ports[i] == c->sport || res->ports[i] == c->dport)
			return 1;
	return 0;
}

/* ---- Parsing ---------------------------------------------------------- */

/* A string attribute into a fixed buffer: stops at the first NUL or the
 * payload's end, whichever comes first; always terminated. */
static void copy_string(char *dst, size_t dstlen, const void *src, size_t len)
{
	const char *s = src;
	size_t n = 0;

	while (n < len && n < dstlen - 1 && s[n])
		n++;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int short_attr(unsigned int type, size_t len, size_t want)
{
	return te_fail(EINVAL,
		"malformed sock_diag reply: attribute %u has %zu bytes, needs %zu",
		type, len, want);
}

static int parse_attr(struct tcpevent_conn *c, const struct rtattr *rta)
{
	unsigned int type = rta->rta_type & NLA_TYPE_MASK;
	size_t len = RTA_PAYLOAD(rta);
	const uint8_t *p = RTA_DATA(rta);
	size_t n;

	if (type < 32)
		c->attrs |= 1u << type;
	switch (type) {
	case INET_DIAG_INFO:
		/* shorter (older kernel) or longer (newer) than ours: take
		 * what both know, the rest stays 0 and info_len tells */
		memset(&c->info, 0, sizeof(c->info));
		memcpy(&c->info, p, MIN(len, sizeof(c->info)));
		c->info_len = (uint32_t)len;
		break;
	case INET_DIAG_CONG:
		copy_string(c->cong, sizeof(c->cong), p, len);
		break;
	case INET_DIAG_SKMEMINFO:
		n = len / sizeof(uint32_t);
		c->skmem_count = (uint8_t)MIN(n, 255u);
		memset(&c->skmem, 0, sizeof(c->skmem));
		memcpy(&c->skmem, p, MIN(n * sizeof(uint32_t), sizeof(c->skmem)));
		break;
	case INET_DIAG_SHUTDOWN:
	case INET_DIAG_TOS:
	case INET_DIAG_TCLASS:
	case INET_DIAG_SKV6ONLY:
		if (len < 1)
			return short_attr(type, len, 1);
		if (type == INET_DIAG_SHUTDOWN)
			c->shutdown = p[0];
		else if (type == INET_DIAG_TOS)
			c->tos = p[0];
		else if (type == INET_DIAG_TCLASS)
			c->tclass = p[0];
		else
			c->v6only = p[0];
		break;
	case INET_DIAG_MARK:
		if (len < sizeof(c->mark))
			return short_attr(type, len, sizeof(c->mark));
		memcpy(&c->mark, p, sizeof(c->mark));
		break;
	case INET_DIAG_CGROUP_ID:
		if (len < sizeof(c->cgroup_id))
			return short_attr(type, len, sizeof(c->cgroup_id));
		memcpy(&c->cgroup_id, p, sizeof(c->cgroup_id));
		break;
	default:
		break;		/* not needed: skipped */
	}
	return 0;
}

static void fill_from_msg(struct tcpevent_conn *c, const struct inet_diag_msg *m)
{
	c->family = m->idiag_family;
	c->state = m->idiag_state;
	c->timer = m->idiag_timer;
	c->retrans = m->idiag_retrans;
	c->sport = ntohs(m->id.idiag_sport);
	c->dport = ntohs(m->id.idiag_dport);
	c->ifindex = m->id.idiag_if;
	c->cookie = (uint64_t)m->id.idiag_cookie[1] << 32 | m->id.idiag_cookie[0];
	c->expires_ms = m->idiag_expires;
	c->rqueue = m->idiag_rqueue;
	c->wqueue = m->idiag_wqueue;
	c->uid = m->idiag_uid;
	c->inode = m->idiag_inode;
	c->shutdown = 0xff;
	/* AF_INET uses the first word; cannot fail for these families */
	inet_ntop(c->family, m->id.idiag_src, c->saddr, sizeof(c->saddr));
	inet_ntop(c->family, m->id.idiag_dst, c->daddr, sizeof(c->daddr));
}

/* One SOCK_DIAG_BY_FAMILY message: inet_diag_msg, then attributes. */
static int parse_conn(const struct nlmsghdr *nlh, struct sockdiag_result *res)
{
	const int hdr = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct inet_diag_msg));
	const struct rtattr *rta;
	struct inet_diag_msg m;
	struct tcpevent_conn *c;
	int alen, r = 0;

	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(m)))
		return te_fail(EINVAL,
			"malformed sock_diag reply: message of %u bytes is shorter than inet_diag_msg",
			nlh->nlmsg_len);
	memcpy(&m, NLMSG_DATA(nlh), sizeof(m));
	if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6)
		return 0;
	c = result_push(res);
	if (!c)
		return te_fail(ENOMEM, "out of memory");
	memset(c, 0, sizeof(*c));
	fill_from_msg(c, &m);

	/* nlmsg_len <= datagram length <= INT_MAX, checked by the caller */
	alen = (int)nlh->nlmsg_len - hdr;
	rta = (const struct rtattr *)((const char *)nlh + hdr);
	for (; RTA_OK(rta, alen); rta = RTA_NEXT(rta, alen)) {
		r = parse_attr(c, rta);
		if (r < 0)
			goto drop;
	}
	if (alen > 0) {
		/* RTA_OK stopped before the end: a bad rta_len */
		if (alen >= (int)sizeof(*rta))
			r = te_fail(EINVAL,
				"malformed sock_diag reply: attribute %u has bad length %u (%d bytes left in its message)",
				rta->rta_type, rta->rta_len, alen);
		else
			r = te_fail(EINVAL,
				"malformed sock_diag reply: %d stray bytes after the attributes",
				alen);
		goto drop;
	}
	if (!port_wanted(res, c))
		res->count--;
	return 0;
drop:
	res->count--;
	return r;
}

/* The extended-ack text of an NLMSG_ERROR, if the kernel sent one. */
static void extack_text(const struct nlmsghdr *nlh, char *out, size_t outlen)
{
	const struct nlmsgerr *e = NLMSG_DATA(nlh);
	const struct rtattr *rta;
	size_t off = sizeof(*e);
	int alen;

	out[0] = '\0';
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS) ||
	    nlh->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		/* the request is echoed whole before the TLVs */
		if (e->msg.nlmsg_len < NLMSG_HDRLEN)
			return;
		off += (size_t)e->msg.nlmsg_len - NLMSG_HDRLEN;
	}
	off = NLMSG_HDRLEN + NLMSG_ALIGN(off);
	if (off >= nlh->nlmsg_len)
		return;
	alen = (int)(nlh->nlmsg_len - off);
	rta = (const struct rtattr *)((const char *)nlh + off);
	for (; RTA_OK(rta, alen); rta = RTA_NEXT(rta, alen)) {
		const char *s = RTA_DATA(rta);
		size_t len = RTA_PAYLOAD(rta);

		if ((rta->rta_type & NLA_TYPE_MASK) != NLMSGERR_ATTR_MSG ||
		    !len || memchr(s, '\0', len) == NULL)
			continue;
		snprintf(out, outlen, " (%s)", s);
		return;
	}
}

static int parse_error(const struct nlmsghdr *nlh)
{
	char ext[128];
	int err;

	if (nlh->nlmsg_len < NLMSG_LENGTH(sizeof(int)))
		return te_fail(EINVAL,
			"malformed sock_diag reply: NLMSG_ERROR of %u bytes",
			nlh->nlmsg_len);
	memcpy(&err, NLMSG_DATA(nlh), sizeof(err));
	if (err == 0)
		return 1;	/* an ACK: nothing wrong */
	if (err > 0 || err < -4095)
		return te_fail(EPROTO,
			"malformed sock_diag reply: NLMSG_ERROR code %d", err);
	extack_text(nlh, ext, sizeof(ext));
	return te_fail(-err, "sock_diag request failed: %s%s",
				  strerror(-err), ext);
}

/* NLMSG_DONE of a dump carries the dump's own status (an int). */
static int parse_done(const struct nlmsghdr *nlh)
{
	int err = 0;

	if (nlh->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
		memcpy(&err, NLMSG_DATA(nlh), sizeof(err));
	if (err < 0 && err >= -4095)
		return te_fail(-err, "sock_diag dump failed: %s",
					  strerror(-err));
	return 0;
}

/* NLMSG_OK, in size_t: the macro mixes int and u32 (clang -Wsign-compare) */
static int nlmsg_ok(const struct nlmsghdr *nlh, size_t rem)
{
	return rem >= sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) &&
	       nlh->nlmsg_len <= rem;
}

/* NLMSG_NEXT: a last message without its alignment padding ends the
 * buffer (the macro would drive rem negative) */
static const struct nlmsghdr *nlmsg_next(const struct nlmsghdr *nlh,
					 size_t *rem)
{
	size_t step = NLMSG_ALIGN(nlh->nlmsg_len);

	if (step >= *rem) {
		*rem = 0;
		return nlh;
	}
	*rem -= step;
	return (const struct nlmsghdr *)((const char *)nlh + step);
}

int sockdiag_parse(const void *buf, size_t len, struct sockdiag_result *res)
{
	const struct nlmsghdr *nlh = buf;
	size_t rem = len;
	int n = 0, r;

	if (!len || len > INT_MAX || ((uintptr_t)buf & (NLMSG_ALIGNTO - 1)))
		return te_fail(EINVAL,
			"sock_diag: bad receive buffer (%zu bytes at %p)", len, buf);
	for (; nlmsg_ok(nlh, rem); nlh = nlmsg_next(nlh, &rem)) {
		n++;
		if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
			return te_fail(EAGAIN,
				"sock_diag dump interrupted (NLM_F_DUMP_INTR): socket table changed");
		switch (nlh->nlmsg_type) {
		case NLMSG_DONE:
			return parse_done(nlh);
		case NLMSG_ERROR:
			r = parse_error(nlh);
			break;
		case SOCK_DIAG_BY_FAMILY:
			r = parse_conn(nlh, res);
			break;
		default:
			r = 0;	/* NLMSG_NOOP and anything unknown */
			break;
		}
		if (r < 0)
			return r;
	}
	if (rem > 0) {
		if (rem >= sizeof(*nlh))
			return te_fail(EINVAL,
				"malformed sock_diag reply: message length %u with %zu bytes left in the datagram",
				nlh->nlmsg_len, rem);
		return te_fail(EINVAL,
			"malformed sock_diag reply: %zu stray bytes after the last message",
			rem);
	}
	return n;
}

/* ---- Dump loop -------------------------------------------------------- */

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
		if (n == -EAGAIN)	/* SO_RCVTIMEO */
			return te_fail(ETIMEDOUT,
				"sock_diag: no reply from the kernel in time");
		if (n < 0)
			return te_fail((int)-n,
				"sock_diag: recv failed: %s", strerror((int)-n));
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
				"sock_diag: %zd-byte datagram truncated", n);
		}
		r = sockdiag_parse(*buf, (size_t)n, res);
		if (r <= 0)
			return r;
	}
}

int sockdiag_dump(const struct sockdiag_io *io, uint8_t family,
		  uint32_t states, struct sockdiag_result *res)
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
			result_truncate(res, mark);
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
		result_truncate(res, mark);
	free(buf);
	return r < 0 ? r : 0;
}

/* ---- Netlink transport ------------------------------------------------ */

/* A socket made in another network namespace, by a thread of its own. */
struct netns_socket {
	int netns_fd;
	int fd;			/* the socket, or -1 */
	int err;		/* errno of the step that failed */
	int entered;		/* setns() succeeded */
};

static void *netns_socket_thread(void *arg)
{
	struct netns_socket *job = arg;

	/* a network namespace is per thread: only this one enters it, and
	 * it ends right after, so no other code ever runs in there */
	if (setns(job->netns_fd, CLONE_NEWNET) < 0) {
		job->err = errno;
		return NULL;
	}
	job->entered = 1;
	job->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
			 NETLINK_SOCK_DIAG);
	if (job->fd < 0)
		job->err = errno;
	return NULL;
}

static int netns_socket(const struct sockdiag_nl *nl)
{
	struct netns_socket job = { .netns_fd = nl->netns_fd, .fd = -1 };
	pthread_t thread;
	int r;

	r = te_thread_start_masked(&thread, netns_socket_thread, &job);
	if (r)
		return te_fail(r,
			"connections: cannot start a thread to enter network namespace %s: %s",
			nl->netns, strerror(r));
	pthread_join(thread, NULL);
	if (job.fd >= 0)
		return job.fd;
	if (job.entered)
		return te_fail(job.err,
			"cannot open a NETLINK_SOCK_DIAG socket in network namespace %s: %s",
			nl->netns, strerror(job.err));
	if (job.err == EINVAL)
		return te_fail(EINVAL,
			"connections: %s is not a network namespace", nl->netns);
	if (job.err == EPERM)
		return te_fail(EPERM,
			"connections: entering network namespace %s needs CAP_SYS_ADMIN: %s",
			nl->netns, strerror(job.err));
	return te_fail(job.err,
		"connections: cannot enter network namespace %s: %s",
		nl->netns, strerror(job.err));
}

static int nl_socket(const struct sockdiag_nl *nl)
{
	struct timeval tv = { .tv_sec = 5 };
	int fd, one = 1;

	if (nl->netns_fd >= 0) {
		fd = netns_socket(nl);
		if (fd < 0)
			return fd;
	} else {
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
			    NETLINK_SOCK_DIAG);
		if (fd < 0)
			return te_fail(errno,
				"cannot open a NETLINK_SOCK_DIAG socket: %s",
				strerror(errno));
	}
	/* never hang the poller thread on a kernel that does not answer */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* best effort: error replies then say what was wrong */
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	return fd;
}

int sockdiag_nl_open(struct sockdiag_nl *nl)
{
	nl->fd = nl_socket(nl);
	return nl->fd < 0 ? nl->fd : 0;
}

void sockdiag_nl_close(struct sockdiag_nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

static int nl_reset(void *ctx)
{
	struct sockdiag_nl *nl = ctx;

	sockdiag_nl_close(nl);
	return sockdiag_nl_open(nl);
}

static int nl_send(void *ctx, const void *msg, size_t len)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct sockdiag_nl *nl = ctx;
	ssize_t n;

	do
		n = sendto(nl->fd, msg, len, 0, (struct sockaddr *)&kernel,
			   sizeof(kernel));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static ssize_t nl_recv(void *ctx, void *buf, size_t cap)
{
	struct sockdiag_nl *nl = ctx;
	struct sockaddr_nl from;
	socklen_t fromlen;
	ssize_t n;

	for (;;) {
		fromlen = sizeof(from);
		/* MSG_TRUNC: return the real length, so truncation shows */
		n = recvfrom(nl->fd, buf, cap, MSG_TRUNC,
			     (struct sockaddr *)&from, &fromlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (fromlen >= sizeof(from) && from.nl_pid != 0)
			continue;	/* not from the kernel: ignore */
		return n;
	}
}

void sockdiag_nl_io(struct sockdiag_nl *nl, struct sockdiag_io *io)
{
	io->reset = nl_reset;
	io->send = nl_send;
	io->recv = nl_recv;
	io->ctx = nl;
}

/* ---- Public API ------------------------------------------------------- */

void tcpevent_conn_query_init(struct tcpevent_conn_query *q)
{
	memset(q, 0, sizeof(*q));
	q->size = sizeof(*q);
}

/* The query before netns was appended: still accepted. */
#define QUERY_SIZE_V1	offsetof(struct tcpevent_conn_query, netns)

static int check_query(const struct tcpevent_conn_query *q)
{
	if (q->size != sizeof(*q) && q->size != QUERY_SIZE_V1)
		return te_fail(EINVAL,
			"connections: query size %zu, expected %zu (use tcpevent_conn_query_init)",
			q->size, sizeof(*q));
	if (q->family && q->family != AF_INET && q->family != AF_INET6)
		return te_fail(EINVAL,
			"connections: family %u is neither AF_INET nor AF_INET6",
			q->family);
	if ((q->n_ports && !q->ports) || (q->n_pids && !q->pids))
		return te_fail(EINVAL,
			"connections: a port or pid count without its array");
	return 0;
}

/* Fill pid/task/cmdline; with q->pids keep only the sockets found. */
static int attribute(struct sockdiag_result *res,
		     const struct tcpevent_conn_query *q)
{
	struct procowner po;
	size_t i, kept = 0;
	int r;

	r = procowner_init(&po, res->count, q->with_cmdline);
	for (i = 0; !r && i < res->count; i++)
		r = procowner_want(&po, res->conns[i].inode);
	if (r)
		goto out_nomem;
	r = procowner_scan(&po, q->pids, q->n_pids);
	if (r) {
		procowner_free(&po);
		return r;
	}
	for (i = 0; i < res->count; i++) {
		const struct procowner_proc *p;
		struct tcpevent_conn *c;

		p = procowner_lookup(&po, res->conns[i].inode);
		if (!p && q->n_pids)
			continue;
		c = &res->conns[kept];
		if (kept++ != i)
			*c = res->conns[i];
		if (!p)
			continue;
		c->pid = p->pid;
		memcpy(c->task, p->comm, sizeof(c->task));
		c->task[sizeof(c->task) - 1] = '\0';
		if (q->with_cmdline) {
			c->cmdline = strdup(p->cmdline ? p->cmdline : "");
			if (!c->cmdline) {
				res->count = kept;
				goto out_nomem;
			}
		}
	}
	res->count = kept;
	procowner_free(&po);
	return 0;
out_nomem:
	procowner_free(&po);
	return te_fail(ENOMEM, "out of memory");
}

/* nl->netns_fd: the namespace at path (NULL: -1, the caller's). */
static int open_netns(struct sockdiag_nl *nl, const char *path)
{
	nl->fd = -1;
	nl->netns_fd = -1;
	nl->netns = path;
	if (!path)
		return 0;
	if (!*path)
		return te_fail(EINVAL,
			"connections: the network namespace path is empty");
	nl->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (nl->netns_fd < 0)
		return te_fail(errno, "connections: network namespace %s: %s",
			       path, strerror(errno));
	return 0;
}

int tcpevent_connections(const struct tcpevent_conn_query *uq,
			 struct tcpevent_conn **out, size_t *count)
{
	struct sockdiag_result res = { 0 };
	struct tcpevent_conn_query q;
	struct sockdiag_nl nl;
	struct sockdiag_io io;
	uint32_t states;
	int r;

	if (!out || !count)
		return te_fail(EINVAL, "connections: NULL output");
	*out = NULL;
	*count = 0;
	tcpevent_conn_query_init(&q);
	if (uq) {
		r = check_query(uq);
		if (r)
			return r;
		/* a caller's older, smaller query leaves the rest as init */
		memcpy(&q, uq, uq->size);
		q.size = sizeof(q);
	}
	states = q.states ? q.states : TCPEVENT_STATES_CONNECTED;
	res.ports = q.ports;
	res.n_ports = q.n_ports;

	r = open_netns(&nl, q.netns);
	if (r)
		return r;
	r = sockdiag_nl_open(&nl);
	if (!r) {
		sockdiag_nl_io(&nl, &io);
		if (q.family != AF_INET6)
			r = sockdiag_dump(&io, AF_INET, states, &res);
		if (!r && q.family != AF_INET)
			r = sockdiag_dump(&io, AF_INET6, states, &res);
		sockdiag_nl_close(&nl);
	}
	if (nl.netns_fd >= 0)
		close(nl.netns_fd);

	if (!r && (q.with_process || q.with_cmdline || q.n_pids))
		r = attribute(&res, &q);
	if (r) {
		sockdiag_result_free(&res);
		return r;
	}
	if (!res.count)
		sockdiag_result_free(&res);
	*out = res.conns;
	*count = res.count;
	te_error_clear();
	return 0;
}

void tcpevent_connections_free(struct tcpevent_conn *conns, size_t count)
{
	size_t i;

	if (!conns)
		return;
	for (i = 0; i < count; i++)
		free(conns[i].cmdline);
	free(conns);
}

void sockdiag_conn_to_record(const struct tcpevent_conn *c, uint64_t ts_ns,
			     struct tcpevent_record *r)
{
	/* absent tcp_info fields are 0 in c->info by construction */
	memset(r, 0, sizeof(*r));
	r->ts_ns = ts_ns;
	r->rx_bytes = c->info.tcpi_bytes_received;
	r->tx_bytes = c->info.tcpi_bytes_acked;
	r->pid = c->pid;
	r->uid = c->uid;
	r->segs_out = c->info.tcpi_data_segs_out;
	r->segs_in = c->info.tcpi_data_segs_in;
	r->rtt_us = c->info.tcpi_rtt;
	r->retrans = c->info.tcpi_total_retrans;
	r->family = c->family;
	r->sport = c->sport;
	r->dport = c->dport;
	r->state = c->state;
	r->flags = TCPEVENT_F_SNAPSHOT | (c->pid ? TCPEVENT_F_OWNER : 0);
	r->kind = TCPEVENT_KIND_SNAPSHOT;
	r->cgroup_id = c->cgroup_id;
	/* the text came from inet_ntop of these very bytes */
	inet_pton(c->family, c->saddr, r->saddr);
	inet_pton(c->family, c->daddr, r->daddr);
	memcpy(r->comm, c->task, sizeof(r->comm));
}
