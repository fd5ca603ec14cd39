// SPDX-License-Identifier: MIT
/*
 * Kernel records into the events callers receive, in the consumer's thread
 * at dequeue (convert.h), and those into the original struct. Runs once per
 * event delivered: nothing here may call into stdio or allocate.
 */
#include <string.h>
#include <sys/socket.h>

#include "convert.h"

/*
 * Address text, exactly as glibc's inet_ntop() writes it (tests compare the
 * two), but without its trip through vfprintf(), which runs for every
 * event delivered (what it cost: docs/performance.md, "What was changed
 * to get there").
 */
static char *put_dec(char *p, unsigned int v)
{
	if (v >= 100)
		*p++ = '0' + v / 100;
	if (v >= 10)
		*p++ = '0' + v / 10 % 10;
	*p++ = '0' + v % 10;
	return p;
}

static char *put_ipv4(char *p, const uint8_t *a)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			*p++ = '.';
		p = put_dec(p, a[i]);
	}
	return p;
}

static char *put_hex(char *p, unsigned int v)
{
	static const char digits[] = "0123456789abcdef";
	int shift = 12;

	while (shift > 0 && !(v >> shift))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		*p++ = digits[(v >> shift) & 0xf];
	return p;
}

/* RFC 5952 as glibc does it: the first longest run of two or more zero
 * words becomes "::"; ::a.b.c.d and ::ffff:a.b.c.d keep the IPv4 tail. */
static char *put_ipv6(char *p, const uint8_t *a)
{
	int best = -1, best_len = 0, cur = -1, cur_len = 0;
	unsigned int w[8];

	for (int i = 0; i < 8; i++) {
		w[i] = a[2 * i] << 8 | a[2 * i + 1];
		if (!w[i]) {
			if (cur < 0)
				cur = i, cur_len = 0;
			if (++cur_len > best_len)
				best = cur, best_len = cur_len;
		} else {
			cur = -1;
		}
	}
	if (best_len < 2)
		best = -1;
	for (int i = 0; i < 8; i++) {
		if (best >= 0 && i >= best && i < best + best_len) {
			if (i == best)
				*p++ = ':';
			continue;
		}
		if (i)
			*p++ = ':';
		if (i == 6 && best == 0 &&
		    (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
			return put_ipv4(p, a + 12);
		p = put_hex(p, w[i]);
	}
	if (best >= 0 && best + best_len == 8)
		*p++ = ':';
	return p;
}

void te_format_addr(int family, const uint8_t *raw, char *out)
{
	char *end = out;

	if (family == AF_INET)
		end = put_ipv4(out, raw);
	else if (family == AF_INET6)
		end = put_ipv6(out, raw);
	*end = '\0';
}

void te_record_to_event(const struct tcpevent_record *r, struct te_clock *c,
			struct tcpevent_event *ev)
{
	size_t comm_len = strnlen(r->comm, sizeof(r->comm) - 1);

	ev->time_ns = te_clock_to_wall(c, r->ts_ns);
	ev->lifetime_ns = r->lifetime_ns;
	ev->rx_bytes = r->rx_bytes;
	ev->tx_bytes = r->tx_bytes;
	ev->pid = r->pid;
	ev->uid = r->uid;
	ev->segs_out = r->segs_out;
	ev->segs_in = r->segs_in;
	ev->rtt_us = r->rtt_us;
	ev->retrans = r->retrans;
	ev->family = r->family;
	ev->sport = r->sport;
	ev->dport = r->dport;
	ev->cgroup_id = r->cgroup_id;
	ev->handshake_ns = r->handshake_ns;
	ev->accept_wait_ns = r->accept_wait_ns;
	ev->netns = r->netns;
	ev->error = r->error;
	ev->kind = (r->flags & TCPEVENT_F_SNAPSHOT) ? TCPEVENT_KIND_SNAPSHOT :
						      r->kind;
	ev->state = r->state;
	ev->direction =
		(r->flags & TCPEVENT_F_ACTIVE)	? TCPEVENT_DIRECTION_OUTBOUND :
		(r->flags & TCPEVENT_F_PASSIVE) ? TCPEVENT_DIRECTION_INBOUND :
						  TCPEVENT_DIRECTION_UNKNOWN;
	/* The record's comm may come unterminated from a custom program. */
	memcpy(ev->task, r->comm, comm_len);
	memset(ev->task + comm_len, 0, sizeof(ev->task) - comm_len);
	te_format_addr(r->family, r->saddr, ev->saddr);
	te_format_addr(r->family, r->daddr, ev->daddr);
	memset(ev->reserved, 0, sizeof(ev->reserved));
	ev->origin_pid = r->origin_pid;
	ev->origin_uid = r->origin_uid;
	comm_len = strnlen(r->origin_comm, sizeof(r->origin_comm) - 1);
	memcpy(ev->origin_task, r->origin_comm, comm_len);
	memset(ev->origin_task + comm_len, 0,
	       sizeof(ev->origin_task) - comm_len);
	ev->first_retrans_ns =
		r->first_retrans_ns ? te_clock_to_wall(c, r->first_retrans_ns) :
				      0;
	ev->last_retrans_ns = r->last_retrans_ns ?
				      te_clock_to_wall(c, r->last_retrans_ns) :
				      0;
	ev->retrans_segs = r->retrans_segs;
	ev->retrans_timeout = r->retrans_timeout;
	ev->retrans_loss = r->retrans_loss;
	ev->retrans_fast = r->retrans_fast;
	ev->retrans_probe = r->retrans_probe;
	ev->retrans_syn = r->retrans_syn;
	ev->resets_sent = r->resets_sent;
	ev->resets_received = r->resets_received;
	ev->drops = r->drops;
	ev->skipped = r->skipped;
	ev->reason = r->reason;
	ev->cause = r->cause;
	ev->segs = r->segs;
	memset(ev->reserved2, 0, sizeof(ev->reserved2));
}

void tcpevent_event_to_abi(const struct tcpevent_event *ev,
			   struct tcp_event_t *out)
{
	memset(out, 0, sizeof(*out));
	out->EventTime = ev->time_ns;
	out->pid = ev->pid;
	out->UserId = ev->uid;
	out->rx_b = ev->rx_bytes;
	out->tx_b = ev->tx_bytes;
	out->tcpi_segs_out = ev->segs_out;
	out->tcpi_segs_in = ev->segs_in;
	out->family = ev->family;
	out->SPT = ev->sport;
	out->DPT = ev->dport;
	/* Sources are NUL-terminated and shorter than the zeroed targets. */
	memcpy(out->task, ev->task, strnlen(ev->task, sizeof(ev->task) - 1));
	memcpy(out->SADDR, ev->saddr,
	       strnlen(ev->saddr, sizeof(ev->saddr) - 1));
	memcpy(out->DADDR, ev->daddr,
	       strnlen(ev->daddr, sizeof(ev->daddr) - 1));
}
