// SPDX-License-Identifier: MIT
/*
 * Reports from the flow table. The kernel's counters only grow; a scan
 * reads the whole table (BPF_MAP_LOOKUP_BATCH, TE_UDP_BATCH entries per
 * system call) and reports, per flow, what changed since its last report
 * (udp_shadow.h): on an export every flow that moved, and at any scan the
 * flows of sockets released since (final, taken out of the table with
 * BPF_MAP_LOOKUP_AND_DELETE_ELEM, so nothing counted after the read is
 * lost). A flow unchanged for TE_UDP_IDLE exports is retired the same way
 * (its socket lives on: the table must not fill with old peers of a
 * server), with a last report flagged UDPEVENT_REPORT_IDLE. Sums over a
 * flow's reports are its counters, exactly. Before Linux 5.14 a flow is
 * taken out by a read and a delete: exact for a released socket's, which
 * counts nothing more; an idle one's datagram in between is lost (the
 * tracer's warnings say so).
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "sorted.h"
#include "sync.h"
#include "udp_tracer.h"

#define TE_UDP_IDLE 3 /* exports without a change before a flow retires */

static int remember(struct te_udp_released *s, uint64_t cookie)
{
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? 2 * s->cap : 64;
		uint64_t *c = realloc(s->cookies, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		s->cookies = c;
		s->cap = cap;
	}
	s->cookies[s->n++] = cookie;
	return 0;
}

int te_udp_on_release(void *ctx, void *data, size_t size)
{
	const struct udpevent_release *r = data;
	struct udpevent *u = ctx;

	if (size != sizeof(*r))
		return 0;
	/* Out of memory: its flows are still reported, at the next export
	 * and when they retire, only not flagged final. */
	remember(&u->released, r->cookie);
	return 0;
}

static bool released(struct te_udp_released *s, uint64_t cookie)
{
	return te_sorted_has(s->cookies, s->n, sizeof(cookie), &cookie,
			     te_cmp_u64);
}

static void text(int family, const uint8_t *addr, char *out, size_t len)
{
	if (!inet_ntop(family == AF_INET6 ? AF_INET6 : AF_INET, addr, out, len))
		out[0] = 0;
}

static bool moved(const struct te_udp_seen *s,
		  const struct udpevent_flow_value *v)
{
	return v->rx_datagrams != s->rx_datagrams ||
	       v->tx_datagrams != s->tx_datagrams ||
	       v->rx_drops != s->rx_drops || v->rx_bytes != s->rx_bytes ||
	       v->tx_bytes != s->tx_bytes;
}

static void report(struct udpevent *u, const struct udpevent_flow_key *k,
		   const struct udpevent_flow_value *v, struct te_udp_seen *s,
		   int64_t now, uint16_t flags)
{
	struct udpevent_report r = { 0 }, *slot;
	uint64_t since = s->reported_ns ? s->reported_ns : v->start_ns;

	r.time_ns = te_clock_to_wall(&u->clock, now);
	/* Converted once: the clock offset is re-measured at every scan. */
	if (!s->start_wall)
		s->start_wall = te_clock_to_wall(&u->clock, v->start_ns);
	r.start_ns = s->start_wall;
	r.interval_ns = (uint64_t)now > since ? now - since : 0;
	r.rx_bytes = v->rx_bytes - s->rx_bytes;
	r.tx_bytes = v->tx_bytes - s->tx_bytes;
	r.rx_datagrams = v->rx_datagrams - s->rx_datagrams;
	r.tx_datagrams = v->tx_datagrams - s->tx_datagrams;
	r.rx_drops = v->rx_drops - s->rx_drops;
	r.cgroup_id = v->cgroup_id;
	r.cookie = k->cookie;
	r.pid = v->pid;
	r.uid = v->uid;
	r.netns = v->netns;
	r.family = v->family;
	r.sport = v->lport;
	r.dport = k->rport;
	r.flags = flags |
		  ((v->flags & UDPEVENT_F_OWNER) ? UDPEVENT_REPORT_OWNER : 0);
	memcpy(r.task, v->comm, sizeof(r.task) - 1);
	text(v->family, v->laddr, r.saddr, sizeof(r.saddr));
	text(v->family, k->raddr, r.daddr, sizeof(r.daddr));

	s->rx_bytes = v->rx_bytes;
	s->tx_bytes = v->tx_bytes;
	s->rx_datagrams = v->rx_datagrams;
	s->tx_datagrams = v->tx_datagrams;
	s->rx_drops = v->rx_drops;
	s->reported_ns = now;

	te_bump(&u->reports, 1);
	if (!te_udp_filter_match(&u->filter, &r)) {
		te_bump(&u->filtered, 1);
		return;
	}
	slot = te_queue_stage(&u->queue);
	if (!slot) {
		te_bump(&u->dropped_queue, 1);
		return;
	}
	*slot = r;
}

/* Take the flow out of the table; its counters as they were then. Where
 * the kernel cannot do both at once, a read and a delete (udp_bpf.c). */
static void take_out(struct udpevent *u, const struct udpevent_flow_key *k,
		     struct udpevent_flow_value *v)
{
	struct udpevent_flow_value last;
	int fd = u->bpf.flows_fd;

	if (u->bpf.read_then_delete) {
		if (!bpf_map_lookup_elem(fd, k, &last))
			*v = last;
		bpf_map_delete_elem(fd, k);
		return;
	}
	if (!bpf_map_lookup_and_delete_elem(fd, k, &last))
		*v = last;
}

static void one(struct udpevent *u, const struct udpevent_flow_key *k,
		struct udpevent_flow_value *v, int64_t now, bool export,
		bool last)
{
	struct te_udp_seen *s = te_udp_shadow_get(&u->shadow, k);
	struct te_udp_seen none = { 0 };

	if (!s)
		s = &none; /* cannot happen: the table is twice the kernel's */
	if (released(&u->released, k->cookie) ||
	    released(&u->released_prev, k->cookie)) {
		take_out(u, k, v);
		report(u, k, v, s, now, UDPEVENT_REPORT_FINAL);
		if (s != &none)
			te_udp_shadow_remove(&u->shadow, s);
		return;
	}
	if (!export && !last)
		return;
	if (moved(s, v)) {
		report(u, k, v, s, now, 0);
		s->idle = 0;
		return;
	}
	if (last || ++s->idle < TE_UDP_IDLE)
		return;
	/* Its last report, like a final one: every flow ends with one. */
	take_out(u, k, v);
	report(u, k, v, s, now, UDPEVENT_REPORT_IDLE);
	if (s != &none)
		te_udp_shadow_remove(&u->shadow, s);
}

void te_udp_scan(struct udpevent *u, bool export, bool last)
{
	int64_t now; /* read after each batch's copy, below */
	struct te_udp_released tmp;
	uint64_t batch = 0;
	bool first = true;

	te_clock_refresh(&u->clock);
	if (u->released.n) /* cookies is NULL until the first release */
		qsort(u->released.cookies, u->released.n, sizeof(uint64_t),
		      te_cmp_u64);
	for (;;) {
		uint32_t n = TE_UDP_BATCH;
		int err;

		err = bpf_map_lookup_batch(u->bpf.flows_fd,
					   first ? NULL : &batch, &batch,
					   u->keys, u->values, &n, NULL);
		/* After the copy: a report's time is never before what it
		 * holds (a flow born while the scan began included). */
		now = te_clock_boottime_ns();
		first = false;
		/* ENOSPC: a bucket larger than a batch; the rest waits. */
		if (err && errno != ENOENT)
			break;
		for (uint32_t i = 0; i < n; i++)
			one(u, &u->keys[i], &u->values[i], now, export, last);
		if (err)
			break; /* ENOENT: that was the last batch */
	}
	atomic_store(&u->flows, u->shadow.count);
	te_bump(&u->scans, 1);
	/* This scan's releases are looked for once more at the next. */
	tmp = u->released_prev;
	u->released_prev = u->released;
	u->released = tmp;
	u->released.n = 0;
	u->last_scan = now;
	if (te_queue_publish(&u->queue)) {
		int fd = atomic_load(&u->notify_fd);

		if (fd >= 0)
			eventfd_write(fd, 1);
	}
}
