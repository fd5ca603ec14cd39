/* SPDX-License-Identifier: MIT */
/*
 * tcpevent_legacy.h - the original libtcpEvent.so ABI, byte-exact: the
 * packed 430-byte event DequeuePerfEvent() returns by value, and the types
 * of the six calls exported with C linkage. Declared once, here: common.h
 * (what the original examples include; they dlsym() the calls into
 * pointers named like them, e.g. tcpevent_AddProbe_fn *AddProbe) takes
 * the types, tcpevent.h declares the calls with them.
 */
#ifndef TCPEVENT_LEGACY_H
#define TCPEVENT_LEGACY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#pragma pack(push, 1)
struct tcp_event_t {	    /* sizeof == 430 */
	uint64_t EventTime; /* close time, ns since the Unix epoch */
	uint32_t pid;
	uint32_t UserId;
	uint64_t rx_b;		/* tcp_sock->bytes_received */
	uint64_t tx_b;		/* tcp_sock->bytes_acked */
	uint32_t tcpi_segs_out; /* tcp_sock->data_segs_out */
	uint32_t tcpi_segs_in;	/* tcp_sock->data_segs_in */
	uint16_t family;	/* AF_INET, AF_INET6; 0 means "no event" */
	uint16_t SPT;		/* local port, host byte order */
	uint16_t DPT;		/* remote port, host byte order */
	char task[128];
	char SADDR[128];
	char DADDR[128];
};
#pragma pack(pop)

/* Load and attach the tracer. program: NULL, "", any text (e.g. the original
 * BCC source; it is not compiled) -> the built-in program; the path of a BPF
 * ELF object -> that object (see docs/custom-programs.md). Never exits. */
typedef void tcpevent_AddProbe_fn(const char *program);
/* The original's synchronous AddProbe: attach as AddProbe does (or find the
 * tracer attached: it is never loaded twice), then block until cleanup() is
 * called, from any thread or a signal handler, and return 0. On failure,
 * return -errno at once (the reason on stderr and in tcpevent_last_error()
 * of this thread). */
typedef int tcpevent_setupBPF_fn(const char *program);
/* Block until an event; after cleanup(), return a zeroed struct at once. */
typedef struct tcp_event_t tcpevent_DequeuePerfEvent_fn(void);
/* Print "Array: <text>" and a newline on stdout, and flush it. */
typedef void tcpevent_printCharArray_fn(const char *text);
/* Detach and free everything; wakes blocked callers (setupBPF returns).
 * Idempotent; async-signal-safe. */
typedef void tcpevent_cleanup_fn(void);
/* 0 until the probe is attached and events flow, 1 after. */
typedef unsigned tcpevent_getStatus_fn(void);

#ifdef __cplusplus
}
#endif

#endif /* TCPEVENT_LEGACY_H */
