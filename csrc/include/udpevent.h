/* SPDX-License-Identifier: MIT */
/*
 * udpevent.h - public API of libudpEvent.so.
 *
 * Two layers, as for TCP:
 *  - the original ABI (AddProbe, getStatus, DequeuePerfEvent, cleanup and
 *    the packed struct udp_event_t of udpevent_legacy.h), byte-exact,
 *    driving one default tracer;
 *  - the extended, handle-based API (udpevent_*), which the legacy calls
 *    and the Python package (tcpevent.UdpTracer) are built on.
 *
 * One report per flow (socket, remote address, remote port) per export
 * interval in which it moved, and a final one when its socket is released;
 * each carries the interval's counts, so sums over reports are exact
 * (docs/udp.md).
 */
#ifndef UDPEVENT_H
#define UDPEVENT_H

#include <stddef.h>
#include <stdint.h>

#include "udpevent_legacy.h"
#include "udpevent_record.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UDPEVENT_ADDR_LEN 46 /* INET6_ADDRSTRLEN */

#define UDPEVENT_DEFAULT_FLUSH_INTERVAL_MS 10000
#define UDPEVENT_MIN_FLUSH_INTERVAL_MS	   100
#define UDPEVENT_DEFAULT_QUEUE_SIZE	   16384
#define UDPEVENT_MAX_QUEUE_SIZE		   (1 << 24)
#define UDPEVENT_MAX_FLOWS		   (1 << 22)

/* udpevent_report.flags */
#define UDPEVENT_REPORT_FINAL 0x1 /* its socket was released: the last */
#define UDPEVENT_REPORT_OWNER 0x2 /* pid/uid/task are the owner's */
#define UDPEVENT_REPORT_IDLE \
	0x4 /* retired after idle intervals: the
					 * socket lives, a later datagram
					 * starts a new flow */

/* One flow report, naturally aligned. */
struct udpevent_report {
	uint64_t time_ns;      /* wall clock of the report */
	uint64_t start_ns;     /* wall clock of the flow's first datagram */
	uint64_t interval_ns;  /* what the counts cover: since the
					 * previous report, or since start */
	uint64_t rx_bytes;     /* payload bytes received in the interval */
	uint64_t tx_bytes;     /* payload bytes sent */
	uint64_t cgroup_id;    /* the socket's cgroup v2 id */
	uint64_t cookie;       /* the socket's cookie (its identity) */
	uint32_t rx_datagrams; /* reached the socket (incl. rx_drops) */
	uint32_t tx_datagrams;
	uint32_t rx_drops; /* of those, refused by its full queue */
	uint32_t pid;	   /* owner (tgid); 0 if unknown */
	uint32_t uid;
	uint32_t netns;		      /* the socket's network namespace inode */
	uint16_t family;	      /* AF_INET or AF_INET6 (the socket's) */
	uint16_t sport;		      /* local port, host byte order */
	uint16_t dport;		      /* remote port, host byte order */
	uint16_t flags;		      /* UDPEVENT_REPORT_* */
	char task[TCPEVENT_COMM_LEN]; /* NUL-terminated */
	char saddr[UDPEVENT_ADDR_LEN]; /* local address, inet_ntop text */
	char daddr[UDPEVENT_ADDR_LEN]; /* remote address */
	uint8_t reserved[4];
};

struct udpevent_options {
	uint32_t flush_interval_ms; /* 0: the default (10 s) */
	uint32_t queue_size;	    /* reports queued at most; 0: default */
	uint32_t max_flows;	    /* flow table size; 0: default */
	uint16_t family;	    /* 0: both */
	uint16_t reserved;
	/* Filters: a report passes if its field is in the list (empty: any).
	 * Ports: the local or the remote one. */
	const uint32_t *pids;
	uint32_t n_pids;
	const uint16_t *ports;
	uint32_t n_ports;
	const uint64_t *cgroups;
	uint32_t n_cgroups;
	const uint32_t *netns;
	uint32_t n_netns;
};

/* Every loss is a counter. */
struct udpevent_stats {
	uint64_t reports;	/* made */
	uint64_t delivered;	/* dequeued */
	uint64_t dropped_queue; /* lost: the queue was full */
	uint64_t filtered;	/* left out by a user-space filter */
	uint64_t queued;	/* in the queue now */
	uint64_t flows;		/* tracked now */
	uint64_t untracked;	/* datagrams of flows the full table refused */
	uint64_t no_storage;	/* datagrams of sockets without storage */
	uint64_t releases_lost; /* release records lost (ring full) */
	uint64_t scans;		/* reads of the flow table */
};

struct udpevent;

void udpevent_options_init(struct udpevent_options *opts);
/* 0 and *out set, or -errno (udpevent_last_error() says why). */
int udpevent_open(const struct udpevent_options *opts, struct udpevent **out);
/* 1: one report in *out; 0: timeout (timeout_ms < 0: wait for ever);
 * -EBADF once closed and empty. */
int udpevent_dequeue(struct udpevent *u, struct udpevent_report *out,
		     int timeout_ms);
/* Up to max reports: how many (0: timeout), or -EBADF. */
int udpevent_dequeue_batch(struct udpevent *u, struct udpevent_report *out,
			   unsigned int max, int timeout_ms);
/* An eventfd readable while reports may be queued (for poll/asyncio). */
int udpevent_fd(struct udpevent *u);
/* 1 while attached. */
unsigned int udpevent_status(struct udpevent *u);
int udpevent_stats(struct udpevent *u, struct udpevent_stats *out);
/* Make the final reports of every flow, detach, stop; reports queued stay
 * dequeueable. Async-signal-safe after the first call. */
void udpevent_close(struct udpevent *u);
void udpevent_free(struct udpevent *u);
const char *udpevent_last_error(void);
/* What works less well than it could on this kernel ("" if nothing). */
const char *udpevent_warnings(struct udpevent *u);
/* The default tracer of AddProbe(): its counters. */
int udpevent_default_stats(struct udpevent_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* UDPEVENT_H */
