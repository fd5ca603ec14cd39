// SPDX-License-Identifier: MIT
/*
 * Event filters. The built-in program applies them in the kernel; user space
 * applies them again to every record, so that a custom program that ignores
 * them still delivers only what was asked for.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "error.h"
#include "sorted.h"
#include "tracer.h"

#define TE_EVENT_KINDS                                       \
	(TCPEVENT_EVENT_CLOSE | TCPEVENT_EVENT_CONNECT |     \
	 TCPEVENT_EVENT_ACCEPT | TCPEVENT_EVENT_RETRANSMIT | \
	 TCPEVENT_EVENT_RESET | TCPEVENT_EVENT_DROP)

int te_filter_init(struct te_filter *f, const struct tcpevent_options *o)
{
	memset(f, 0, sizeof(*f));
	if (o->family != 0 && o->family != AF_INET && o->family != AF_INET6)
		return te_fail(EINVAL,
			       "family must be 0 (both), AF_INET (2) or AF_INET6 (10), not %u",
			       o->family);
	if (o->n_pids > TCPEVENT_MAX_FILTER ||
	    o->n_ports > TCPEVENT_MAX_FILTER ||
	    o->n_cgroups > TCPEVENT_MAX_FILTER ||
	    o->n_netns > TCPEVENT_MAX_FILTER)
		return te_fail(EINVAL,
			       "at most %d pids, ports, cgroups and network namespaces each can be filtered",
			       TCPEVENT_MAX_FILTER);
	if ((o->n_pids && !o->pids) || (o->n_ports && !o->ports) ||
	    (o->n_cgroups && !o->cgroups) || (o->n_netns && !o->netns))
		return te_fail(EINVAL,
			       "a filter count (n_pids, n_ports, n_cgroups, n_netns) is set but its array is NULL");
	for (uint32_t i = 0; i < o->n_pids; i++)
		if (!o->pids[i])
			return te_fail(EINVAL, "pid 0 cannot be filtered on");
	for (uint32_t i = 0; i < o->n_cgroups; i++)
		if (!o->cgroups[i])
			return te_fail(EINVAL,
				       "cgroup id 0 cannot be filtered on");
	for (uint32_t i = 0; i < o->n_netns; i++)
		if (!o->netns[i])
			return te_fail(EINVAL,
				       "network namespace 0 cannot be filtered on");
	if (o->events & ~TE_EVENT_KINDS)
		return te_fail(EINVAL,
			       "options.events 0x%x has unknown bits 0x%x (TCPEVENT_EVENT_CLOSE, _CONNECT, _ACCEPT, _RETRANSMIT, _RESET, _DROP)",
			       o->events, o->events & ~TE_EVENT_KINDS);
	if ((o->events & TCPEVENT_EVENT_ACCEPT) &&
	    (o->flags & TCPEVENT_OPT_NO_ACCEPT_HOOKS))
		return te_fail(EINVAL,
			       "accept events come from the accept() hooks: they cannot be asked for with TCPEVENT_OPT_NO_ACCEPT_HOOKS");
	f->family = o->family;
	f->events = o->events ? o->events : TCPEVENT_EVENT_CLOSE;
	f->cgroup_subtree = o->flags & TCPEVENT_OPT_CGROUP_SUBTREE;
	f->n_pids = o->n_pids;
	te_take_sorted(f->pids, o->pids, o->n_pids, sizeof(*f->pids),
		       te_cmp_u32);
	f->n_ports = o->n_ports;
	te_take_sorted(f->ports, o->ports, o->n_ports, sizeof(*f->ports),
		       te_cmp_u16);
	f->n_cgroups = o->n_cgroups;
	te_take_sorted(f->cgroups, o->cgroups, o->n_cgroups,
		       sizeof(*f->cgroups), te_cmp_u64);
	f->n_netns = o->n_netns;
	te_take_sorted(f->netns, o->netns, o->n_netns, sizeof(*f->netns),
		       te_cmp_u32);
	return 0;
}

static bool has_port(const struct te_filter *f, uint16_t port)
{
	return te_sorted_has(f->ports, f->n_ports, sizeof(port), &port,
			     te_cmp_u16);
}

/*
 * A snapshot passes whatever the kinds; a cgroup below a filtered one can
 * only be told by the kernel (the built-in program walks the ancestry):
 * with cgroup_subtree, user space leaves that check to the program.
 */
bool te_filter_match(const struct te_filter *f, const struct tcpevent_record *r)
{
	if (r->kind != TCPEVENT_KIND_SNAPSHOT && !(f->events & (1u << r->kind)))
		return false;
	if (f->family && r->family != f->family)
		return false;
	if (f->n_cgroups && !f->cgroup_subtree &&
	    !te_sorted_has(f->cgroups, f->n_cgroups, sizeof(r->cgroup_id),
			   &r->cgroup_id, te_cmp_u64))
		return false;
	if (f->n_netns && !te_sorted_has(f->netns, f->n_netns, sizeof(r->netns),
					 &r->netns, te_cmp_u32))
		return false;
	if (f->n_pids && !te_sorted_has(f->pids, f->n_pids, sizeof(r->pid),
					&r->pid, te_cmp_u32))
		return false;
	if (f->n_ports && !has_port(f, r->sport) && !has_port(f, r->dport))
		return false;
	return true;
}
