/* SPDX-License-Identifier: MIT */
/*
 * udpevent_legacy.h - the original libudpEvent.so ABI, byte-exact: the
 * packed 190-byte event DequeuePerfEvent() returns by value, and the types
 * of its four calls. Declared once, here: udp/common.h (what the original
 * test client includes) takes the struct, udpevent.h declares the calls.
 */
#ifndef UDPEVENT_LEGACY_H
#define UDPEVENT_LEGACY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma pack(push, 1)
struct udp_event_t {	 /* sizeof == 190 */
	uint16_t family; /* AF_INET, AF_INET6; 0 means "no event" */
	uint32_t pid;	 /* the socket's owner */
	uint32_t UserId;
	uint64_t EventTime; /* the report's time, ns since the Unix epoch */
	uint16_t SPT;	    /* local port, host byte order */
	uint16_t DPT;	    /* remote port, host byte order */
	char task[16];	    /* NUL-terminated */
	uint64_t rx_b;	    /* payload bytes received in the interval */
	uint64_t tx_b;	    /* payload bytes sent in the interval */
	uint32_t rxPkts;    /* datagrams received (incl. dropped ones) */
	uint32_t txPkts;    /* datagrams sent */
	char SADDR[64];	    /* local address, NUL-terminated */
	char DADDR[64];	    /* remote address */
};
#pragma pack(pop)

/* Load and attach the built-in UDP flow tracer. Never exits: a failure is
 * one line on stderr, and getStatus() stays 0. */
typedef void udpevent_AddProbe_fn(void);
/* Block until a flow report; after cleanup(), a zeroed struct at once. */
typedef struct udp_event_t udpevent_DequeuePerfEvent_fn(void);
/* 0 until the probe is attached, 1 after. */
typedef unsigned udpevent_getStatus_fn(void);
/* Detach and free; wakes blocked callers. Idempotent; async-signal-safe. */
typedef void udpevent_cleanup_fn(void);

#ifdef __cplusplus
}
#endif

#endif /* UDPEVENT_LEGACY_H */
