// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * tcp_health.bpf.c - retransmit, reset and drop events (docs/health.md).
 * Included at the end of tcp.bpf.c: one object, one socket table. None of
 * these programs is loaded unless its kind of event was asked for
 * (health.c), so the default close-only tracer runs none of this.
 *
 * They run in softirq or timer context mostly: the owner comes from the
 * socket table (recorded at connect(), accept() or close()), never from the
 * current task. A socket the table does not hold (born before the tracer,
 * filtered out, a listener, a request or time-wait socket, or none at all)
 * gives a record of its own endpoints, or the packet's, without an owner.
 */
#include "vmlinux_health.h"

#ifdef TCPEVENT_PORTABLE
#define KREAD_BITS(p, field) BPF_CORE_READ_BITFIELD_PROBED(p, field)
#else
#define KREAD_BITS(p, field) BPF_CORE_READ_BITFIELD(p, field)
#endif

/* A socket's health counts; made at its first health event. NULL if the
 * table is full (counted: stats.untracked). */
static __always_inline struct sock_health *health_of(__u64 key,
						     struct sock_owner *o)
{
	struct sock_health *h = bpf_map_lookup_elem(&health, &key);
	struct sock_health fresh = {};

	if (h && h->birth_ns == o->birth_ns)
		return h;
	/* None, or an earlier socket's whose close was not seen. */
	fresh.birth_ns = o->birth_ns;
	if (bpf_map_update_elem(&health, &key, &fresh, BPF_ANY)) {
		count(TCPEVENT_CNT_UNTRACKED);
		return 0;
	}
	return bpf_map_lookup_elem(&health, &key);
}

/*
 * The owner of a full socket: its table entry (*closed false), or, for one
 * that reached TCP_CLOSE on this CPU just now, what the entry said (copied
 * into *tmp, *closed true: its close event is made, its counts gone).
 */
static __always_inline struct sock_owner *
owner_of(__u64 sk, struct sock_owner *tmp, _Bool *closed)
{
	struct sock_owner *o = bpf_map_lookup_elem(&sockets, &sk);
	struct last_closed *c = 0;
	struct just_closed *j;
	__u32 zero = 0;

	*closed = 0;
	if (o)
		return o;
	j = bpf_map_lookup_elem(&just_closed, &zero);
	if (!j)
		return 0;
	for (int i = 0; i < JUST_CLOSED; i++)
		if (j->slot[i].key == sk)
			c = &j->slot[i];
	if (c && c->netns != sock_netns(KPTR(struct sock, sk)))
		c = 0; /* another socket at the same address */
	if (!c)
		return 0;
	tmp->birth_ns = c->birth_ns;
	tmp->established_ns = 0;
	tmp->owner = c->owner;
	tmp->origin = c->origin;
	tmp->flags = c->flags;
	*closed = 1;
	return tmp;
}

/* A full socket, not a request or time-wait mini-socket (whose struct is
 * only a sock_common): only a full one has sk_uid, a cgroup, a tcp_sock. */
static __always_inline _Bool full_sock(__u64 sk)
{
	int state = KREAD(KPTR(struct sock, sk), __sk_common.skc_state);

	return sk && state != TCP_TIME_WAIT && state != TCP_NEW_SYN_RECV;
}

/* Where a record of no tracked socket says it is from. */
struct bare_ends {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u32 netns;
};

/* The endpoints of a packet (its IP and TCP headers), as seen from this
 * host: local is its destination if it came in, its source if it went out.
 * 0 if it is not TCP over IPv4/IPv6. */
static __always_inline int packet_endpoints(__u64 skb, _Bool *outgoing,
					    struct bare_ends *e)
{
	struct sk_buff *s = KPTR(struct sk_buff, skb);
	unsigned char *head = KREAD(s, head);
	__u16 nh = KREAD(s, network_header), th = KREAD(s, transport_header);
	__be16 proto = KREAD(s, protocol);
	__u8 ip[40], *src, *dst;
	__be16 ports[2];
	__u8 l4;
	int alen;

	if (proto == bpf_htons(ETH_P_IP)) {
		if (bpf_probe_read_kernel(ip, 20, head + nh) ||
		    (ip[0] >> 4) != 4)
			return 0;
		l4 = ip[9];
		src = ip + 12;
		dst = ip + 16;
		alen = 4;
		e->family = AF_INET;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		if (bpf_probe_read_kernel(ip, 40, head + nh) ||
		    (ip[0] >> 4) != 6)
			return 0;
		l4 = ip[6];
		src = ip + 8;
		dst = ip + 24;
		alen = 16;
		e->family = AF_INET6;
	} else {
		return 0;
	}
	if (l4 != IPPROTO_TCP || bpf_probe_read_kernel(ports, 4, head + th))
		return 0;
	/* Sent by this socket: the packet's source port is its own. */
	if (*outgoing) {
		struct sock *owner = KREAD(s, sk);

		*outgoing = owner &&
			    KREAD(KPTR(struct sock, owner),
				  __sk_common.skc_num) == bpf_ntohs(ports[0]);
	}
	if (*outgoing) {
		__builtin_memcpy(e->saddr, src, 16);
		__builtin_memcpy(e->daddr, dst, 16);
		e->sport = bpf_ntohs(ports[0]);
		e->dport = bpf_ntohs(ports[1]);
	} else {
		__builtin_memcpy(e->saddr, dst, 16);
		__builtin_memcpy(e->daddr, src, 16);
		e->sport = bpf_ntohs(ports[1]);
		e->dport = bpf_ntohs(ports[0]);
	}
	if (alen == 4) {
		__builtin_memset(e->saddr + 4, 0, 12);
		__builtin_memset(e->daddr + 4, 0, 12);
	}
	return 1;
}

/* Is this TCP? From the socket if there is one, else the packet. */
static __always_inline _Bool tcp_packet(__u64 skb, __u64 sk)
{
	struct bare_ends probe = {};
	_Bool outgoing = 0;

	if (sk)
		return KREAD_PROTOCOL(KPTR(struct sock, sk)) == IPPROTO_TCP;
	return packet_endpoints(skb, &outgoing, &probe);
}

/* The network namespace of a packet without a socket: its device's. */
static __always_inline __u32 skb_netns(__u64 skb)
{
	struct net_device *dev = KREAD(KPTR(struct sk_buff, skb), dev);
	struct net *net = 0;

	if (dev)
		net = KREAD(KPTR(struct net_device, dev), nd_net.net);
	return net ? KREAD(KPTR(struct net, net), ns.inum) : 0;
}

/*
 * A record of a socket the table does not hold, or of no socket: its
 * endpoints from the packet if there is one (skb), else from sk (any kind
 * of socket: only its sock_common is read). No owner; the uid and cgroup of
 * sk if it is a full socket. Filtered here, before the ring buffer is
 * touched, as a tracked socket would be at its birth: a flood elsewhere
 * (another namespace's resets) costs no ring space.
 */
static __always_inline void emit_bare(__u64 sk, __u64 skb, __u8 kind,
				      __u8 cause, __u16 reason, _Bool outgoing,
				      __u8 flags)
{
	struct sock_common *c = KPTR(struct sock_common, sk);
	struct tcpevent_record *r;
	_Bool full = sk && full_sock(sk);
	struct bare_ends e = {};

	if (filter_pids || (filter_cgroups &&
			    !(full && cgroup_allowed(KPTR(struct sock, sk)))))
		return; /* no owner; no cgroup known */
	e.netns = sk ? sock_netns(KPTR(struct sock, sk)) : skb_netns(skb);
	if (filter_netns && !bpf_map_lookup_elem(&netns_filter, &e.netns))
		return;
	if (!skb || !packet_endpoints(skb, &outgoing, &e)) {
		if (!sk)
			return;
		e.family = KREAD(c, skc_family);
		/* skc_num is 0 once a full socket closed: inet_sport is not. */
		e.sport = full ? bpf_ntohs(KREAD(KPTR(struct inet_sock, sk),
						 inet_sport)) :
				 KREAD(c, skc_num);
		e.dport = bpf_ntohs(KREAD(c, skc_dport));
		if (e.family == AF_INET) {
			KREAD_BYTES(e.saddr, 4, c, skc_rcv_saddr);
			KREAD_BYTES(e.daddr, 4, c, skc_daddr);
		} else {
			KREAD_BYTES(e.saddr, 16, c, skc_v6_rcv_saddr);
			KREAD_BYTES(e.daddr, 16, c, skc_v6_daddr);
		}
	}
	if ((filter_family && e.family != filter_family) ||
	    !ports_allowed(e.sport, e.dport))
		return;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(TCPEVENT_CNT_RINGBUF_FULL);
		return;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->ts_ns = bpf_ktime_get_boot_ns();
	r->kind = kind;
	r->cause = cause;
	r->reason = reason;
	r->flags = flags;
	if (kind == TCPEVENT_KIND_RETRANSMIT)
		r->segs = 1;
	r->family = e.family;
	r->sport = e.sport;
	r->dport = e.dport;
	r->netns = e.netns;
	__builtin_memcpy(r->saddr, e.saddr, 16);
	__builtin_memcpy(r->daddr, e.daddr, 16);
	if (sk)
		r->state = KREAD(c, skc_state);
	if (full) {
		r->uid = KREAD(KPTR(struct sock, sk), sk_uid.val);
		r->cgroup_id = cgroup_id(sock_cgroup(KPTR(struct sock, sk)));
	}
	submit(r);
}

/* TCP's control block of skb (TCP_SKB_CB()). */
static __always_inline struct tcp_skb_cb *tcp_cb(__u64 skb)
{
	__u64 cb = skb + bpf_core_field_offset(struct sk_buff, cb);

	return KPTR(struct tcp_skb_cb, cb);
}

/* Why the kernel retransmits skb now (docs/health.md has the reasoning). */
static __always_inline __u8 retrans_cause(__u64 sk, __u64 skb)
{
	struct inet_connection_sock *icsk =
		KPTR(struct inet_connection_sock, sk);
	struct tcp_skb_cb *cb = tcp_cb(skb);
	__u8 pending = KREAD(icsk, icsk_pending);
	__u8 ca_state = KREAD_BITS(icsk, icsk_ca_state);

	if ((__u8)KREAD(cb, tcp_flags) & TCPHDR_SYN)
		return TCPEVENT_CAUSE_SYN;
	/* The RTO handler clears icsk_pending before it retransmits; any
	 * other retransmission happens with a timer armed. */
	if (!pending)
		return TCPEVENT_CAUSE_TIMEOUT;
	if (ca_state == TCP_CA_Loss)
		return TCPEVENT_CAUSE_LOSS;
	/* A probe goes out from the probe timer, in Open or Disorder, while
	 * no earlier probe is outstanding (tlp_high_seq 0). */
	if (pending == ICSK_TIME_LOSS_PROBE && ca_state <= TCP_CA_Disorder &&
	    !KREAD(KPTR(struct tcp_sock___health, sk), tlp_high_seq))
		return TCPEVENT_CAUSE_PROBE;
	return TCPEVENT_CAUSE_FAST;
}

/* tcp_retransmit_skb(sk, skb, err): one skb retransmitted (err 0), of
 * tcp_skb_pcount() segments. */
SEC("raw_tracepoint/tcp_retransmit_skb")
int tcpevent_retransmit(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 key = ctx->args[0], skb = ctx->args[1];
	struct health_note n = {};
	struct sock_owner *o;
	struct sock_health *h;
	__u64 now;
	__u16 segs;

	if (retransmit_has_err && (int)ctx->args[2])
		return 0; /* not sent: the kernel's TCPRetransFail */
	o = bpf_map_lookup_elem(&sockets, &key);
	if (!o)
		return 0; /* birth not seen, or filtered out */
	n.cause = retrans_cause(key, skb);
	segs = KREAD(tcp_cb(skb), tcp_gso_segs);
	n.segs = segs ? (segs > 255 ? 255 : segs) : 1;
	now = bpf_ktime_get_boot_ns();
	h = health_of(key, o);
	if (h) {
		if (!h->first_retrans_ns)
			h->first_retrans_ns = now;
		h->last_retrans_ns = now;
		__sync_fetch_and_add(&h->retrans_segs, segs ? segs : 1);
		if (n.cause >= TCPEVENT_CAUSE_TIMEOUT &&
		    n.cause <= TCPEVENT_CAUSE_SYN)
			__sync_fetch_and_add(&h->by_cause[n.cause - 1], 1);
		if (!emit_retransmit)
			return 0;
		if (retransmit_interval_ns && h->last_event_ns &&
		    now - h->last_event_ns < retransmit_interval_ns) {
			__sync_fetch_and_add(&h->skipped, 1);
			return 0;
		}
		h->last_event_ns = now;
		n.h = h;
	}
	if (emit_retransmit && event_allowed(key, o))
		emit(key, o, TCPEVENT_KIND_RETRANSMIT,
		     KREAD(KPTR(struct sock, key), __sk_common.skc_state), &n);
	if (h)
		h->skipped = 0;
	return 0;
}

/* tcp_retransmit_synack(listener, req): a request's SYN-ACK again. The
 * request is no socket of the table (its child is made at the last ACK). */
SEC("raw_tracepoint/tcp_retransmit_synack")
int tcpevent_retransmit_synack(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 req = ctx->args[1];

	if (emit_retransmit)
		emit_bare(req, 0, TCPEVENT_KIND_RETRANSMIT,
			  TCPEVENT_CAUSE_SYNACK, 0, 0, TCPEVENT_F_PASSIVE);
	return 0;
}

static __always_inline void on_reset(__u64 sk, __u64 skb, __u8 cause,
				     __u16 reason)
{
	struct health_note n = { .cause = cause, .reason = reason };
	struct sock_owner *o = 0, tmp;
	_Bool closed = 0;

	if (sk && full_sock(sk))
		o = owner_of(sk, &tmp, &closed);
	if (o) {
		n.h = closed ? 0 : health_of(sk, o);
		if (n.h)
			__sync_fetch_and_add(cause == TCPEVENT_CAUSE_SENT ?
						     &n.h->resets_sent :
						     &n.h->resets_received,
					     1);
		if (emit_reset && event_allowed(sk, o))
			emit(sk, o, TCPEVENT_KIND_RESET,
			     KREAD(KPTR(struct sock, sk),
				   __sk_common.skc_state),
			     &n);
		return;
	}
	/* A reset sent in answer to a packet: that packet's endpoints. */
	if (emit_reset)
		emit_bare(sk, skb, TCPEVENT_KIND_RESET, cause, reason, 0, 0);
}

/* tcp_send_reset(sk, skb, reason): sk may be NULL (no socket for skb, the
 * packet answered), skb NULL (an active reset: close(), abort). */
SEC("raw_tracepoint/tcp_send_reset")
int tcpevent_reset_sent(struct bpf_raw_tracepoint_args *ctx)
{
	on_reset(ctx->args[0], ctx->args[1], TCPEVENT_CAUSE_SENT,
		 reset_has_reason ? (__u16)ctx->args[2] : 0);
	return 0;
}

/* tcp_receive_reset(sk): a full socket, from tcp_reset(). */
SEC("raw_tracepoint/tcp_receive_reset")
int tcpevent_reset_received(struct bpf_raw_tracepoint_args *ctx)
{
	on_reset(ctx->args[0], 0, TCPEVENT_CAUSE_RECEIVED, 0);
	return 0;
}

/* kfree_skb(skb, location, reason[, rx_sk]): a packet freed as dropped
 * (a normal free is consume_skb, or reason SKB_CONSUMED). */
SEC("raw_tracepoint/kfree_skb")
int tcpevent_drop(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 skb = ctx->args[0], sk = 0;
	__u32 reason = ctx->args[2];
	struct health_note n = {};
	struct sock_owner *o = 0, tmp;
	_Bool closed = 0;

	if (reason < drop_reason_first)
		return 0;
	if (drop_has_rx_sk)
		sk = ctx->args[3];
	if (!sk)
		sk = (__u64)KREAD(KPTR(struct sk_buff, skb), sk);
	if (!tcp_packet(skb, sk))
		return 0;
	if (sk && full_sock(sk))
		o = owner_of(sk, &tmp, &closed);
	if (o) {
		n.reason = reason;
		n.h = closed ? 0 : health_of(sk, o);
		if (n.h)
			__sync_fetch_and_add(&n.h->drops, 1);
		if (emit_drop && event_allowed(sk, o))
			emit(sk, o, TCPEVENT_KIND_DROP,
			     KREAD(KPTR(struct sock, sk),
				   __sk_common.skc_state),
			     &n);
		return 0;
	}
	if (emit_drop)
		emit_bare(sk, skb, TCPEVENT_KIND_DROP, 0, reason, 1, 0);
	return 0;
}
