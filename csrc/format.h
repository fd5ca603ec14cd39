/* SPDX-License-Identifier: MIT */
/* Turning kernel records into the events callers receive. */
#ifndef TCPEVENT_FORMAT_H
#define TCPEVENT_FORMAT_H

#include <stdbool.h>

#include "clock.h"
#include "tcpevent.h"
#include "tcpevent_record.h"

/* Only AF_INET and AF_INET6 records describe a connection. */
static inline bool te_record_valid(const struct tcpevent_record *r)
{
	return r->family == 2 || r->family == 10;
}

void te_record_to_event(const struct tcpevent_record *r, struct te_clock *c,
			struct tcpevent_event *ev);

#endif /* TCPEVENT_FORMAT_H */
