/* SPDX-License-Identifier: MIT */
/* The UDP tracer handle behind udpevent.h, shared by its parts. */
#ifndef UDPEVENT_UDP_TRACER_H
#define UDPEVENT_UDP_TRACER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "clock.h"
#include "udp_queue.h"
#include "udp_shadow.h"
#include "udpevent.h"

#define TE_UDP_LINKS 5
#define TE_UDP_BATCH 1024 /* flow-table entries read per system call */

/* Everything loaded into the kernel (udp_bpf.c). */
struct te_udp_bpf {
	struct bpf_object *obj;
	struct bpf_link *links[TE_UDP_LINKS];
	int n_links;
	struct ring_buffer *rb;
	int flows_fd;
	int counters_fd;
	int cgroup_fd;
	char warning[1024];    /* what works less well than it could */
	bool portable;	       /* the portable build is loaded (udp_bpf.c) */
	bool read_then_delete; /* no BPF_MAP_LOOKUP_AND_DELETE_ELEM (udp_bpf.c) */
};

/* The user-space copy of the filters, applied to every report. */
struct te_udp_filter {
	uint16_t family;
	uint32_t n_pids, n_ports, n_cgroups, n_netns;
	uint32_t pids[UDPEVENT_MAX_FILTER];
	uint16_t ports[UDPEVENT_MAX_FILTER];
	uint64_t cgroups[UDPEVENT_MAX_FILTER];
	uint32_t netns[UDPEVENT_MAX_FILTER];
};

/* Cookies of released sockets: their flows are final at the next scan,
 * and a datagram that raced the release is caught at the one after. */
struct te_udp_released {
	uint64_t *cookies;
	uint32_t n, cap;
};

struct udpevent {
	struct te_queue queue;
	struct te_clock clock;
	struct te_udp_bpf bpf;
	struct te_udp_filter filter;
	struct te_udp_shadow shadow;
	struct te_udp_released released, released_prev;
	uint64_t flush_ns;
	int64_t next_flush; /* boot time of the next export */
	int64_t last_scan;
	struct udpevent_flow_key *keys; /* TE_UDP_BATCH each */
	struct udpevent_flow_value *values;

	pthread_t poller;
	bool poller_running;
	int epoll_fd;
	int stop_fd;
	_Atomic int notify_fd;
	_Atomic int stopping;
	_Atomic int closed;
	_Atomic int detached;
	struct udpevent *retired_next; /* legacy: freed once unused */

	/* Written by the poller only. */
	_Atomic uint64_t reports;
	_Atomic uint64_t dropped_queue;
	_Atomic uint64_t filtered;
	_Atomic uint64_t scans;
	_Atomic uint64_t flows;
	/* Written by consumers. */
	_Atomic uint64_t delivered;
};

/* udp_bpf.c */
int te_udp_bpf_open(struct te_udp_bpf *b, const struct udpevent_options *o,
		    const struct te_udp_filter *f, void *ctx,
		    int (*on_release)(void *, void *, size_t));
void te_udp_bpf_detach(struct te_udp_bpf *b);
void te_udp_bpf_release(struct te_udp_bpf *b);
/* The kernel's counter idx summed over CPUs. */
uint64_t te_udp_bpf_counter(struct te_udp_bpf *b, unsigned int idx);

/* udp_scan.c: read the flow table, make the reports it owes. */
int te_udp_on_release(void *ctx, void *data, size_t size);
/* What a scan reports: on an export, every flow that moved; always, the
 * released sockets' flows (final). last: the tracer is closing, every flow
 * that moved is reported. */
void te_udp_scan(struct udpevent *u, bool export, bool last);

/* udp_filter.c */
bool te_udp_filter_match(const struct te_udp_filter *f,
			 const struct udpevent_report *r);
int te_udp_filter_set(struct te_udp_filter *f,
		      const struct udpevent_options *o);

/* udp_poller.c */
int te_udp_poller_start(struct udpevent *u);
void te_udp_poller_stop(struct udpevent *u);

#endif /* UDPEVENT_UDP_TRACER_H */
