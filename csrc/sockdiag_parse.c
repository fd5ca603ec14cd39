// SPDX-License-Identifier: MIT
/*
 * The parser of sock_diag replies (SOCK_DIAG_BY_FAMILY dumps of
 * inet_diag_msg, with tcp_info, congestion control, shutdown state and
 * socket memory), and the growing array it fills.
 *
 * Every length coming from the kernel is checked before it is used: netlink
 * headers with nlmsg_ok(), attributes with RTA_OK, payloads against the
 * size of what is read from them. Fixed structs are memcpy'd out of the
 * buffer since attribute payloads are only 4-byte aligned.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>

#include "error.h"
#include "sockdiag.h"

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

/* Room for one more socket (count grows by one); NULL: out of memory. */
static struct tcpevent_conn *result_push(struct sockdiag_result *res)
{
	if (res->count == res->cap) {
		size_t ncap = res->cap ? res->cap * 2 : 64;
		struct sockdiag_addr *a;
		struct tcpevent_conn *p;

		if (ncap > SIZE_MAX / sizeof(*p))
			return NULL;
		p = realloc(res->conns, ncap * sizeof(*p));
		if (!p)
			return NULL;
		res->conns = p;
		/* cap grows only once both arrays have the room */
		a = realloc(res->addrs, ncap * sizeof(*a));
		if (!a)
			return NULL;
		res->addrs = a;
		res->cap = ncap;
	}
	return &res->conns[res->count++];
}

void sockdiag_result_truncate(struct sockdiag_result *res, size_t mark)
{
	size_t i;

	for (i = mark; i < res->count; i++)
		free(res->conns[i].cmdline);
	if (mark < res->count)
		res->count = mark;
}

void sockdiag_result_free(struct sockdiag_result *res)
{
	sockdiag_result_truncate(res, 0);
	free(res->conns);
	free(res->addrs);
	res->conns = NULL;
	res->addrs = NULL;
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
		memcpy(&c->skmem, p,
		       MIN(n * sizeof(uint32_t), sizeof(c->skmem)));
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
		break; /* not needed: skipped */
	}
	return 0;
}

static void fill_from_msg(struct tcpevent_conn *c, struct sockdiag_addr *a,
			  const struct inet_diag_msg *m)
{
	/* AF_INET uses the first word of the address */
	size_t alen = m->idiag_family == AF_INET ? 4 : 16;

	c->family = m->idiag_family;
	c->state = m->idiag_state;
	c->timer = m->idiag_timer;
	c->retrans = m->idiag_retrans;
	c->sport = ntohs(m->id.idiag_sport);
	c->dport = ntohs(m->id.idiag_dport);
	c->ifindex = m->id.idiag_if;
	c->cookie = (uint64_t)m->id.idiag_cookie[1] << 32 |
		    m->id.idiag_cookie[0];
	c->expires_ms = m->idiag_expires;
	c->rqueue = m->idiag_rqueue;
	c->wqueue = m->idiag_wqueue;
	c->uid = m->idiag_uid;
	c->inode = m->idiag_inode;
	c->shutdown = TCPEVENT_SHUTDOWN_ABSENT;
	/* cannot fail for these families */
	inet_ntop(c->family, m->id.idiag_src, c->saddr, sizeof(c->saddr));
	inet_ntop(c->family, m->id.idiag_dst, c->daddr, sizeof(c->daddr));
	memset(a, 0, sizeof(*a));
	memcpy(a->saddr, m->id.idiag_src, alen);
	memcpy(a->daddr, m->id.idiag_dst, alen);
}

/* One SOCK_DIAG_BY_FAMILY message: inet_diag_msg, then attributes. */
static int parse_conn(const struct nlmsghdr *nlh, struct sockdiag_result *res)
{
	const int hdr =
		NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct inet_diag_msg));
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
	fill_from_msg(c, &res->addrs[res->count - 1], &m);

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
		return 1; /* an ACK: nothing wrong */
	if (err > 0 || err < -4095)
		return te_fail(EPROTO,
			       "malformed sock_diag reply: NLMSG_ERROR code %d",
			       err);
	extack_text(nlh, ext, sizeof(ext));
	return te_fail(-err, "sock_diag request failed: %s%s", strerror(-err),
		       ext);
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
			       "sock_diag: bad receive buffer (%zu bytes at %p)",
			       len, buf);
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
			r = 0; /* NLMSG_NOOP and anything unknown */
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
