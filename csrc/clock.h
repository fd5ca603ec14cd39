/* SPDX-License-Identifier: MIT */
/*
 * Wall-clock conversion. BPF timestamps are CLOCK_BOOTTIME (monotonic, counts
 * suspend); the offset to CLOCK_REALTIME is re-measured by the poller on every
 * batch, so a settimeofday() or NTP step shows up in the next events.
 */
#ifndef TCPEVENT_CLOCK_H
#define TCPEVENT_CLOCK_H

#include <stdatomic.h>
#include <stdint.h>

struct te_clock {
	_Atomic int64_t realtime_minus_boottime;
};

int64_t te_clock_boottime_ns(void);
void te_clock_refresh(struct te_clock *c);

static inline uint64_t te_clock_to_wall(struct te_clock *c, uint64_t boot_ns)
{
	return boot_ns + atomic_load_explicit(&c->realtime_minus_boottime,
					      memory_order_relaxed);
}

#endif /* TCPEVENT_CLOCK_H */
