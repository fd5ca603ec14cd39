// SPDX-License-Identifier: MIT
/* The UDP tracer's filters, kept sorted for user space's own check of
 * every report (the kernel applies them too, as early as it can). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "error.h"
#include "sorted.h"
#include "udp_tracer.h"

static int copy(void *dst, uint32_t *n_dst, const void *src, uint32_t n,
		size_t size, int (*cmp)(const void *, const void *),
		const char *what)
{
	if (n > UDPEVENT_MAX_FILTER)
		return te_fail(EINVAL, "at most %d %s in a filter, not %u",
			       UDPEVENT_MAX_FILTER, what, n);
	if (n && !src)
		return te_fail(EINVAL, "%u %s but a NULL list", n, what);
	te_take_sorted(dst, src, n, size, cmp);
	*n_dst = n;
	return 0;
}

int te_udp_filter_set(struct te_udp_filter *f, const struct udpevent_options *o)
{
	memset(f, 0, sizeof(*f));
	if (o->family && o->family != AF_INET && o->family != AF_INET6)
		return te_fail(EINVAL,
			       "family %u is neither AF_INET nor AF_INET6",
			       o->family);
	f->family = o->family;
	return copy(f->pids, &f->n_pids, o->pids, o->n_pids, sizeof(uint32_t), te_cmp_u32, "pids") ?:
		       copy(f->ports, &f->n_ports, o->ports, o->n_ports, sizeof(uint16_t), te_cmp_u16, "ports") ?:
		       copy(f->cgroups, &f->n_cgroups, o->cgroups, o->n_cgroups, sizeof(uint64_t), te_cmp_u64, "cgroups") ?:
		       copy(f->netns, &f->n_netns, o->netns, o->n_netns,
			    sizeof(uint32_t), te_cmp_u32, "network namespaces");
}

bool te_udp_filter_match(const struct te_udp_filter *f,
			 const struct udpevent_report *r)
{
	if (f->family && r->family != f->family)
		return false;
	if (f->n_pids &&
	    !te_sorted_has(f->pids, f->n_pids, 4, &r->pid, te_cmp_u32))
		return false;
	if (f->n_ports &&
	    !te_sorted_has(f->ports, f->n_ports, 2, &r->sport, te_cmp_u16) &&
	    !te_sorted_has(f->ports, f->n_ports, 2, &r->dport, te_cmp_u16))
		return false;
	if (f->n_cgroups && !te_sorted_has(f->cgroups, f->n_cgroups, 8,
					   &r->cgroup_id, te_cmp_u64))
		return false;
	if (f->n_netns &&
	    !te_sorted_has(f->netns, f->n_netns, 4, &r->netns, te_cmp_u32))
		return false;
	return true;
}
