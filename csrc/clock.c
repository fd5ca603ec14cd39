// SPDX-License-Identifier: MIT
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

void te_clock_refresh(struct te_clock *c)
{
	/* Bracket the boot-time reading: the midpoint of two wall readings is
	 * within a few tens of ns of the instant it was taken. */
	int64_t wall1 = now_ns(CLOCK_REALTIME);
	int64_t boot = now_ns(CLOCK_BOOTTIME);
	int64_t wall2 = now_ns(CLOCK_REALTIME);

	atomic_store_explicit(&c->realtime_minus_boottime,
			      wall1 + (wall2 - wall1) / 2 - boot,
			      memory_order_relaxed);
}
