// SPDX-License-Identifier: MIT
#include <arpa/inet.h>
#include <string.h>

#include "format.h"

static void format_addr(int family, const __u8 *raw, char *out, size_t len)
{
	if (!inet_ntop(family, raw, out, len))
		out[0] = '\0';
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
	ev->kind = (r->flags & TCPEVENT_F_SNAPSHOT) ? TCPEVENT_KIND_SNAPSHOT :
						TCPEVENT_KIND_CLOSE;
	ev->state = r->state;
	/* The record's comm may come unterminated from a custom program. */
	memcpy(ev->task, r->comm, comm_len);
	memset(ev->task + comm_len, 0, sizeof(ev->task) - comm_len);
	format_addr(r->family, r->saddr, ev->saddr, sizeof(ev->saddr));
	format_addr(r->family, r->daddr, ev->daddr, sizeof(ev->daddr));
	memset(ev->reserved, 0, sizeof(ev->reserved));
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
	/* Sources are NUL-terminated and shorter than the targets. */
	strncpy(out->task, ev->task, sizeof(out->task) - 1);
	strncpy(out->SADDR, ev->saddr, sizeof(out->SADDR) - 1);
	strncpy(out->DADDR, ev->daddr, sizeof(out->DADDR) - 1);
}
