/* SPDX-License-Identifier: MIT */
/* Turning kernel records into the events callers receive (convert.c). */
#ifndef TCPEVENT_CONVERT_H
#define TCPEVENT_CONVERT_H

#include <stdbool.h>
#include <sys/socket.h>

#include "clock.h"
#include "tcpevent.h"
#include "tcpevent_record.h"

/* Only AF_INET and AF_INET6 records describe a connection. */
static inline bool te_record_valid(const struct tcpevent_record *r)
{
	return (r->family == AF_INET || r->family == AF_INET6) &&
	       r->kind <= TCPEVENT_KIND_DROP;
}

/* inet_ntop()'s text of an AF_INET or AF_INET6 address; out has
 * room for TCPEVENT_ADDR_LEN bytes; "" for any other family. */
void te_format_addr(int family, const uint8_t *raw, char *out);

void te_record_to_event(const struct tcpevent_record *r, struct te_clock *c,
			struct tcpevent_event *ev);

#endif /* TCPEVENT_CONVERT_H */
