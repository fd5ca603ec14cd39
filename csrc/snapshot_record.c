// SPDX-License-Identifier: MIT
/*
 * A live socket, as sock_diag listed it, in the record a snapshot event is
 * queued as (snapshot.c): the same struct the kernel's events come in, so
 * that filters and conversion treat both alike.
 */
#include <string.h>

#include "sockdiag.h"

#define FIELD_SIZE(type, field) sizeof(((type *)0)->field)
_Static_assert(FIELD_SIZE(struct sockdiag_addr, saddr) ==
		       FIELD_SIZE(struct tcpevent_record, saddr),
	       "the parser's addresses are the record's");

void sockdiag_conn_to_record(const struct tcpevent_conn *c,
			     const struct sockdiag_addr *a, uint64_t ts_ns,
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
	memcpy(r->saddr, a->saddr, sizeof(r->saddr));
	memcpy(r->daddr, a->daddr, sizeof(r->daddr));
	memcpy(r->comm, c->task, sizeof(r->comm));
}
