// SPDX-License-Identifier: MIT
/*
 * Event filters. The built-in program applies them in the kernel; user space
 * applies them again to every record, so that a custom program that ignores
 * them still delivers only what was asked for.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "tracer.h"

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

int te_filter_init(struct te_filter *f, const struct tcpevent_options *o)
{
	memset(f, 0, sizeof(*f));
	if (o->family != 0 && o->family != 2 && o->family != 10)
		return te_fail(EINVAL, "family must be 0 (both), AF_INET (2) or AF_INET6 (10), not %u",
			       o->family);
	if (o->n_pids > TCPEVENT_MAX_FILTER || o->n_ports > TCPEVENT_MAX_FILTER)
		return te_fail(EINVAL, "at most %d pids and %d ports can be filtered",
			       TCPEVENT_MAX_FILTER, TCPEVENT_MAX_FILTER);
	if ((o->n_pids && !o->pids) || (o->n_ports && !o->ports))
		return te_fail(EINVAL, "n_pids/n_ports set but pids/ports is NULL");
	for (uint32_t i = 0; i < o->n_pids; i++)
		if (!o->pids[i])
			return te_fail(EINVAL, "pid 0 cannot be filtered on");
	f->family = o->family;
	f->n_pids = o->n_pids;
	if (o->n_pids)	/* pids may be NULL then: memcpy(, NULL, 0) is UB */
		memcpy(f->pids, o->pids, o->n_pids * sizeof(*o->pids));
	qsort(f->pids, f->n_pids, sizeof(*f->pids), cmp_u32);
	f->n_ports = o->n_ports;
	if (o->n_ports)
		memcpy(f->ports, o->ports, o->n_ports * sizeof(*o->ports));
	qsort(f->ports, f->n_ports, sizeof(*f->ports), cmp_u16);
	return 0;
}

static bool has_port(const struct te_filter *f, uint16_t port)
{
	return bsearch(&port, f->ports, f->n_ports, sizeof(port), cmp_u16);
}

bool te_filter_match(const struct te_filter *f,
		     const struct tcpevent_record *r)
{
	if (f->family && r->family != f->family)
		return false;
	if (f->n_pids && !bsearch(&r->pid, f->pids, f->n_pids,
				  sizeof(r->pid), cmp_u32))
		return false;
	if (f->n_ports && !has_port(f, r->sport) && !has_port(f, r->dport))
		return false;
	return true;
}
