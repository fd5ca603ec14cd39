/* SPDX-License-Identifier: MIT */
/*
 * What user space last reported of each flow: the kernel's counters are
 * cumulative, a report carries the difference from this. An open-addressing
 * table (linear probing, backward-shift deletion) touched by the poller
 * thread only.
 */
#ifndef UDPEVENT_UDP_SHADOW_H
#define UDPEVENT_UDP_SHADOW_H

#include <stdbool.h>
#include <stdint.h>

#include "udpevent_record.h"

struct te_udp_seen {
	struct udpevent_flow_key key;
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	uint64_t reported_ns; /* boot time of its last report; 0: none */
	uint64_t start_wall; /* its start on the wall clock, as first reported */
	uint32_t rx_datagrams;
	uint32_t tx_datagrams;
	uint32_t rx_drops;
	uint16_t idle; /* export intervals without a change */
	bool used;
};

struct te_udp_shadow {
	struct te_udp_seen *slots;
	uint64_t mask;
	uint64_t count;
};

int te_udp_shadow_init(struct te_udp_shadow *s, uint32_t max_flows);
void te_udp_shadow_destroy(struct te_udp_shadow *s);
/* The entry of key, made (zeroed) if it has none; NULL if full. */
struct te_udp_seen *te_udp_shadow_get(struct te_udp_shadow *s,
				      const struct udpevent_flow_key *key);
void te_udp_shadow_remove(struct te_udp_shadow *s, struct te_udp_seen *e);

#endif /* UDPEVENT_UDP_SHADOW_H */
