/* SPDX-License-Identifier: MIT */
/*
 * The health programs (retransmit, reset and drop events, docs/health.md):
 * which to load on this kernel, and how to configure them.
 */
#ifndef TCPEVENT_HEALTH_H
#define TCPEVENT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bpf_object;
struct bpf_program;
struct tcpevent_options;
struct te_filter;

/* The program's .rodata settings of the health programs. */
struct te_health_config {
	bool emit_retransmit, emit_reset, emit_drop;
	bool health_on;
	bool drop_has_rx_sk, reset_has_reason, retransmit_has_err;
	uint32_t drop_reason_first;
	uint64_t retransmit_interval_ns;
};

/*
 * Choose the health programs of obj to load (none unless their events are
 * asked for; none of a hook this kernel lacks) and fill *c. What is off on
 * this kernel though asked for is said in warn (";"-separated, "" if
 * nothing).
 */
void te_health_plan(struct bpf_object *obj, const struct tcpevent_options *o,
		    const struct te_filter *f, struct te_health_config *c,
		    char *warn, size_t warn_len);
/* One of the health programs (attached if it can be; else a warning). */
bool te_health_program(const struct bpf_program *prog);

#endif /* TCPEVENT_HEALTH_H */
