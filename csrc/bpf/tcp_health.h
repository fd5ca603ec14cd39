/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * What a connection went through (docs/health.md): the per-socket health
 * table and how a record gets it. Included by tcp.bpf.c before emit(); the
 * programs that fill the table are in tcp_health.bpf.c. With none of the
 * retransmit, reset or drop events asked for, health_on is false, the
 * verifier removes every use of the table, and user space sizes it to one
 * entry and leaves the programs unloaded.
 */
#ifndef TCPEVENT_TCP_HEALTH_H
#define TCPEVENT_TCP_HEALTH_H

/* Set by user space before load. */
const volatile _Bool emit_retransmit = 0;
const volatile _Bool emit_reset = 0;
const volatile _Bool emit_drop = 0;
const volatile _Bool health_on = 0; /* any of the three */
/* Least time between two retransmit events of one connection; 0: none. */
const volatile __u64 retransmit_interval_ns = 0;
/* Drop reasons below this value are no drop (SKB_NOT_DROPPED_YET,
 * SKB_CONSUMED): from the running kernel's BTF (health.c). */
const volatile __u32 drop_reason_first = 2;
/* The hooks' later arguments, where the kernel has them (health.c reads
 * them from its BTF): kfree_skb's rx_sk (6.12+), tcp_send_reset's reason
 * (6.10+), tcp_retransmit_skb's err (6.13+). */
const volatile _Bool drop_has_rx_sk = 0;
const volatile _Bool reset_has_reason = 0;
const volatile _Bool retransmit_has_err = 0;

/* One socket's counts, from its first retransmission, reset or drop on. */
struct sock_health {
	__u64 birth_ns;	     /* its sock_owner's: an entry of an earlier
				 * socket at this address does not match */
	__u64 last_event_ns; /* its last retransmit event (rate limit) */
	__u64 first_retrans_ns;
	__u64 last_retrans_ns;
	__u32 retrans_segs;
	__u32 by_cause[TCPEVENT_CAUSE_SYN]; /* [cause - 1], TIMEOUT..SYN */
	__u32 resets_sent;
	__u32 resets_received;
	__u32 drops;
	__u32 skipped;
};

/* Sized by user space: max_sockets with health_on, else 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, struct sock_health);
} health SEC(".maps");

/*
 * The sockets that just reached TCP_CLOSE on this CPU, and their owners:
 * the kernel sends an abortive close's reset (SO_LINGER 0, data after
 * close) right after that transition, when the socket has left the table;
 * on loopback the peer's own close may come in between (the reset's
 * delivery runs first), so a few are kept.
 */
#define JUST_CLOSED 4

struct last_closed {
	__u64 key;
	__u64 birth_ns;
	__u32 netns;	      /* a socket of another namespace made at the
				 * same address since is not this one */
	struct task_id owner; /* as the socket's entry had it */
	struct task_id origin;
	__u8 flags;
};

struct just_closed {
	struct last_closed slot[JUST_CLOSED];
	__u32 next;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct just_closed);
} just_closed SEC(".maps");

/* What one health event adds to its record. */
struct health_note {
	struct sock_health *h; /* the socket's counts, or NULL */
	__u16 reason;
	__u8 cause;
	__u8 segs;
};

#define HEALTH_OFFSET \
	__builtin_offsetof(struct tcpevent_record, first_retrans_ns)

/* The record's health part: zero, or the socket's counts and the note. */
static __always_inline void health_fill(__u64 key, __u64 birth_ns,
					struct tcpevent_record *r,
					const struct health_note *n)
{
	struct sock_health *h;

	__builtin_memset((char *)r + HEALTH_OFFSET, 0,
			 sizeof(*r) - HEALTH_OFFSET);
	if (!health_on)
		return;
	if (n) {
		r->reason = n->reason;
		r->cause = n->cause;
		r->segs = n->segs;
	}
	h = n && n->h ? n->h : bpf_map_lookup_elem(&health, &key);
	if (!h || h->birth_ns != birth_ns)
		return;
	r->first_retrans_ns = h->first_retrans_ns;
	r->last_retrans_ns = h->last_retrans_ns;
	r->retrans_segs = h->retrans_segs;
	r->retrans_timeout = h->by_cause[TCPEVENT_CAUSE_TIMEOUT - 1];
	r->retrans_loss = h->by_cause[TCPEVENT_CAUSE_LOSS - 1];
	r->retrans_fast = h->by_cause[TCPEVENT_CAUSE_FAST - 1];
	r->retrans_probe = h->by_cause[TCPEVENT_CAUSE_PROBE - 1];
	r->retrans_syn = h->by_cause[TCPEVENT_CAUSE_SYN - 1];
	r->resets_sent = h->resets_sent;
	r->resets_received = h->resets_received;
	r->drops = h->drops;
	r->skipped = h->skipped;
}

/* A tracked socket reached TCP_CLOSE: its health entry goes; its owner is
 * kept on this CPU for the reset that may follow at once. */
static __always_inline void health_closed(__u64 key, const struct sock_owner *o)
{
	__u32 zero = 0;
	struct just_closed *j = bpf_map_lookup_elem(&just_closed, &zero);
	struct last_closed *c;

	bpf_map_delete_elem(&health, &key);
	if (!j)
		return;
	c = &j->slot[j->next++ % JUST_CLOSED];
	c->key = key;
	c->netns = sock_netns(KPTR(struct sock, key));
	c->birth_ns = o->birth_ns;
	c->owner = o->owner;
	c->origin = o->origin;
	c->flags = o->flags;
}

#endif /* TCPEVENT_TCP_HEALTH_H */
