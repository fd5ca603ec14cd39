/* SPDX-License-Identifier: MIT */
/*
 * tcp_event.h - the event of the original libtcpEvent.so ABI, byte-exact:
 * packed, 430 bytes, returned by value from DequeuePerfEvent().
 */
#ifndef TCPEVENT_TCP_EVENT_H
#define TCPEVENT_TCP_EVENT_H

#include <stdint.h>

#pragma pack(push, 1)
struct tcp_event_t {		/* sizeof == 430 */
	uint64_t EventTime;	/* close time, ns since the Unix epoch */
	uint32_t pid;
	uint32_t UserId;
	uint64_t rx_b;		/* tcp_sock->bytes_received */
	uint64_t tx_b;		/* tcp_sock->bytes_acked */
	uint32_t tcpi_segs_out;	/* tcp_sock->data_segs_out */
	uint32_t tcpi_segs_in;	/* tcp_sock->data_segs_in */
	uint16_t family;	/* AF_INET, AF_INET6; 0 means "no event" */
	uint16_t SPT;		/* local port, host byte order */
	uint16_t DPT;		/* remote port, host byte order */
	char task[128];
	char SADDR[128];
	char DADDR[128];
};
#pragma pack(pop)

#endif /* TCPEVENT_TCP_EVENT_H */
