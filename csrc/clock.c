// SPDX-License-Identifier: MIT
#include <stdint.h>
#include <time.h>

#include "clock.h"

static int64_t now_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t te_clock_boottime_ns(void)
{
	return now_ns(CLOCK_BOOTTIME);
}

/*
 * The offset's error is at most half the wall readings' distance. A
 * preemption between two readings (milliseconds on a loaded or emulated
 * CPU) would shift every time converted until the next refresh, so that a
 * young UDP flow's start, converted once, could come after its report's
 * time. So the narrowest of a few brackets is kept.
 */
#define TE_CLOCK_BRACKETS 3

void te_clock_refresh(struct te_clock *c)
{
	int64_t narrowest = INT64_MAX, offset = 0;

	for (int i = 0; i < TE_CLOCK_BRACKETS; i++) {
		/* Bracket the boot-time reading: the midpoint of two wall
		 * readings is within a few tens of ns of the instant it was
		 * taken, unless the thread was preempted in between. */
		int64_t wall1 = now_ns(CLOCK_REALTIME);
		int64_t boot = now_ns(CLOCK_BOOTTIME);
		int64_t wall2 = now_ns(CLOCK_REALTIME);

		if (wall2 - wall1 < narrowest) {
			narrowest = wall2 - wall1;
			offset = wall1 + (wall2 - wall1) / 2 - boot;
		}
	}
	atomic_store_explicit(&c->realtime_minus_boottime, offset,
			      memory_order_relaxed);
}
