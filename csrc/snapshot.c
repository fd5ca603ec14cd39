// SPDX-License-Identifier: MIT
/*
 * Snapshot events: every snapshot_interval_ms the poller lists the live
 * established connections through sock_diag (with their owners) and queues
 * one TCPEVENT_KIND_SNAPSHOT event per connection, after the close events
 * already drained, under the same filters.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "error.h"
#include "sockdiag.h"
#include "sync.h"
#include "tracer.h"

int te_snapshot_start(struct tcpevent *t)
{
	uint32_t ms = t->snapshot_interval_ms;
	struct stat ns;
	struct itimerspec its = {
		.it_interval = { ms / 1000, (ms % 1000) * 1000000L },
	};

	if (!ms)
		return 0;
	if (!stat("/proc/thread-self/ns/net", &ns))
		t->own_netns = ns.st_ino;
	its.it_value = its.it_interval;
	t->timer_fd =
		timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (t->timer_fd < 0 || timerfd_settime(t->timer_fd, 0, &its, NULL))
		return te_fail(errno, "cannot start the snapshot timer: %s",
			       strerror(errno));
	return 0;
}

void te_snapshot_tick(struct tcpevent *t)
{
	const struct te_filter *f = &t->filter;
	struct sockdiag_result res = { 0 };
	struct tcpevent_conn_query q;
	uint64_t expirations, queued = 0, dropped = 0;
	uint64_t now;

	if (read(t->timer_fd, &expirations, sizeof(expirations)) < 0)
		return; /* not due yet */
	tcpevent_conn_query_init(&q);
	q.family = f->family;
	q.states = TCPEVENT_STATE_BIT(TCPEVENT_TCP_ESTABLISHED);
	q.n_ports = f->n_ports;
	q.ports = f->ports;
	q.n_pids = f->n_pids;
	q.pids = f->pids;
	q.with_process = 1;
	if (sockdiag_connections(&q, &res)) {
		te_bump(&t->snapshot_errors, 1);
		return;
	}
	now = te_clock_boottime_ns();
	for (size_t i = 0; i < res.count; i++) {
		struct tcpevent_record r, *slot;

		sockdiag_conn_to_record(&res.conns[i], &res.addrs[i], now, &r);
		r.netns = t->own_netns; /* sock_diag lists this namespace */
		if (!te_filter_match(f, &r))
			continue; /* cgroups, namespaces */
		slot = te_queue_stage(&t->queue);
		if (!slot) {
			dropped++;
			continue;
		}
		memcpy(slot, &r, sizeof(r));
		queued++;
	}
	sockdiag_result_free(&res);
	/* Like received for records: all produced, whatever became of them. */
	te_bump(&t->snapshots, queued + dropped);
	te_bump(&t->dropped_queue, dropped);
}
