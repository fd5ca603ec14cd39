// SPDX-License-Identifier: MIT
/*
 * The health programs (tcp_health.bpf.c): loaded only for the events asked
 * for, each only where the running kernel has its hook, with the hook's
 * arguments read from the kernel's BTF; whatever is asked for and missing
 * here becomes a warning (docs/kernels.md).
 */
#include <bpf/libbpf.h>
#include <stdio.h>
#include <string.h>

#include "health.h"
#include "kernel_btf.h"
#include "tracer.h"

static const struct {
	const char *prog;  /* in tcp_health.bpf.c */
	const char *tp;	   /* its raw tracepoint */
	uint32_t event;	   /* TCPEVENT_EVENT_* it makes */
	const char *since; /* the kernel that has the hook */
} hooks[] = {
	{ "tcpevent_retransmit", "tcp_retransmit_skb",
	  TCPEVENT_EVENT_RETRANSMIT, "4.16" },
	{ "tcpevent_retransmit_synack", "tcp_retransmit_synack",
	  TCPEVENT_EVENT_RETRANSMIT, "4.16" },
	{ "tcpevent_reset_sent", "tcp_send_reset", TCPEVENT_EVENT_RESET,
	  "4.16" },
	{ "tcpevent_reset_received", "tcp_receive_reset", TCPEVENT_EVENT_RESET,
	  "4.16" },
	{ "tcpevent_drop", "kfree_skb", TCPEVENT_EVENT_DROP, "5.17" },
};

#define N_HOOKS (sizeof(hooks) / sizeof(hooks[0]))

bool te_health_program(const struct bpf_program *prog)
{
	for (size_t i = 0; i < N_HOOKS; i++)
		if (!strcmp(bpf_program__name(prog), hooks[i].prog))
			return true;
	return false;
}

static void warn_more(char *warn, size_t len, const char *fmt, const char *a,
		      const char *b)
{
	size_t used = strlen(warn);

	if (used && used + 2 < len) {
		strcpy(warn + used, "; ");
		used += 2;
	}
	if (used < len)
		snprintf(warn + used, len - used, fmt, a, b);
}

/*
 * The least enum skb_drop_reason value that is a drop, or -1 without the
 * enum (before 5.17). A normal free is SKB_CONSUMED where the enum has it
 * (6.12 does); before, consume_skb() has a tracepoint of its own and every
 * kfree_skb is a drop: above SKB_NOT_DROPPED_YET where the enum has that
 * (6.1 does), else any value (5.17's NOT_SPECIFIED is 0).
 */
static int64_t drop_reason_first(void)
{
	int64_t v;

	if (!te_btf_enum_value("skb_drop_reason", "SKB_CONSUMED", &v) ||
	    !te_btf_enum_value("skb_drop_reason", "SKB_NOT_DROPPED_YET", &v))
		return v + 1;
	if (!te_btf_enum_value("skb_drop_reason",
			       "SKB_DROP_REASON_NOT_SPECIFIED", &v))
		return 0;
	return -1;
}

/* Whether hook i can run here; false with a warning if it cannot. */
static bool hook_usable(size_t i, char *warn, size_t len)
{
	int nargs = te_btf_tracepoint_args(hooks[i].tp);

	if (nargs < 0) {
		warn_more(warn, len, "%s: this kernel has no tracepoint %s",
			  hooks[i].prog, hooks[i].tp);
		return false;
	}
	/* kfree_skb(skb, location) before 5.17: no reason to tell a drop. */
	if (!strcmp(hooks[i].tp, "kfree_skb") &&
	    (nargs < 3 || drop_reason_first() < 0)) {
		warn_more(warn, len,
			  "drop events are off: this kernel's %s has no drop reason (Linux %s+)",
			  hooks[i].tp, hooks[i].since);
		return false;
	}
	return true;
}

void te_health_plan(struct bpf_object *obj, const struct tcpevent_options *o,
		    const struct te_filter *f, struct te_health_config *c,
		    char *warn, size_t warn_len)
{
	struct bpf_program *prog;
	int64_t first;
	bool on;

	memset(c, 0, sizeof(*c));
	warn[0] = '\0';
	for (size_t i = 0; i < N_HOOKS; i++) {
		prog = bpf_object__find_program_by_name(obj, hooks[i].prog);
		if (!prog)
			continue; /* a custom program without it */
		on = (f->events & hooks[i].event) &&
		     hook_usable(i, warn, warn_len);
		bpf_program__set_autoload(prog, on);
		if (!on)
			continue;
		c->health_on = true;
		c->emit_retransmit |= hooks[i].event ==
				      TCPEVENT_EVENT_RETRANSMIT;
		c->emit_reset |= hooks[i].event == TCPEVENT_EVENT_RESET;
		c->emit_drop |= hooks[i].event == TCPEVENT_EVENT_DROP;
	}
	first = drop_reason_first();
	c->drop_reason_first = first < 0 ? 0 : (uint32_t)first;
	c->drop_has_rx_sk = te_btf_tracepoint_args("kfree_skb") >= 4;
	c->reset_has_reason = te_btf_tracepoint_args("tcp_send_reset") >= 3;
	c->retransmit_has_err = te_btf_tracepoint_args("tcp_retransmit_skb") >=
				3;
	c->retransmit_interval_ns = (uint64_t)o->retransmit_interval_us * 1000;
}
