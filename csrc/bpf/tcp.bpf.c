// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * tcp.bpf.c - the built-in program: TCP connections' events as ring-buffer
 * records (tcpevent_record.h), of the kinds user space asks for (emit_*):
 * a connection's close, its connect (the active side reaching ESTABLISHED)
 * and its accept (accept() handing the passive side out), each at most
 * once, for a socket whose birth the program saw and that passes the
 * filters.
 *
 * The sock:inet_sock_set_state tracepoint fires on every TCP state change,
 * about five times per socket, so the common hit must cost almost nothing:
 * only the first sighting (SYN_SENT, SYN_RECV), the owner-capture points
 * (FIN_WAIT1, LAST_ACK: close()/shutdown() in process context) and TCP_CLOSE
 * do any work; ESTABLISHED does only when connect or accept events were
 * asked for (its time is their handshake's end); every other transition
 * returns at the switch.
 *
 * The owner (pid, uid, comm) is taken where the kernel runs in the owning
 * process, never from whatever task runs the softirq at close: the process
 * that ends the connection (its close(), shutdown() or exit: the release
 * hook, FIN_WAIT1/LAST_ACK, an abortive close), else the last one seen
 * holding it (connect(), accept()). The origin is the process that set it
 * up: connect()'s caller, or the one that made the listener listen().
 * (docs/attribution.md.)
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tcpevent_record.h"
#include "kernel_read.h"

/* Set by user space before load. */
const volatile __u16 filter_family = 0;
const volatile _Bool filter_pids = 0;
const volatile _Bool filter_ports = 0;
const volatile _Bool filter_cgroups = 0;
const volatile _Bool filter_cgroup_subtree = 0;
const volatile _Bool filter_netns = 0;
const volatile _Bool emit_close = 1;
const volatile _Bool emit_connect = 0;
const volatile _Bool emit_accept = 0;

/* Deepest cgroup a subtree filter looks up from (the kernel nests at most
 * as deep as cgroup.max.depth allows; real hierarchies are a few levels). */
#define CGROUP_MAX_DEPTH 16

/* sock_owner.flags of ours, beside the record's TCPEVENT_F_ACTIVE/PASSIVE
 * (the record's other flags are set at each event, never kept here). */
#define OWNER_RELEASED 0x01 /* its release ran: its file is gone */
#define OWNER_CLOSER   0x10 /* pid/uid/comm are the closer's: final */
#define OWNER_HELD     0x20 /* closed; its record waits for the release */
#define OWNER_ACCEPTED 0x40 /* its accept event was made */
#define OWNER_TOLD     0x80 /* closed and told; kept until its release */

/* A held close nobody releases is flushed, ownerless, by the sweep once it
 * is this old (so 1 to 2 sweep periods after the close). */
#define HOLD_MAX_NS 1000000000ULL

/* Who a process was, at one moment in process context. */
struct task_id {
	__u32 pid; /* tgid; 0: unknown */
	__u32 uid;
	char comm[TCPEVENT_COMM_LEN];
};

/* What we remember about a socket between its birth and its close. */
struct sock_owner {
	__u64 birth_ns;
	__u64 established_ns; /* when it reached ESTABLISHED, if timed; or 0 */
	__u64 closed_ns;      /* OWNER_HELD: when it reached TCP_CLOSE */
	struct task_id owner; /* the last process seen with it, or its closer */
	struct task_id origin; /* connect()'s caller, or the listener's */
	__u16 error;	       /* OWNER_HELD: sk_err at the close */
	__u8 close_state;      /* OWNER_HELD: the state before TCP_CLOSE */
	__u8 flags;	       /* TCPEVENT_F_ACTIVE or _PASSIVE, OWNER_* */
};

/* A listening socket's port, where its SYN_RECV children find its owner. */
struct listener_key {
	__u32 netns;
	__u16 port; /* host order */
	__u16 family;
};

struct listener {
	__u64 sk; /* the listening socket: only its close forgets it */
	struct task_id owner; /* who called listen() */
	/* 0: owner called listen(). Else the census guessed the owner, a
	 * process holding the listener that started at this time. */
	__u64 census_start;
};

/* A plain hash, not an LRU: when it is full a new socket is not tracked and
 * that is counted, instead of silently evicting a live one. Sized by user
 * space (max_sockets). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TCPEVENT_DEFAULT_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, struct sock_owner);
} sockets SEC(".maps");

/* Several listeners on one port (SO_REUSEPORT, distinct addresses) share
 * an entry: the latest listen() names the origin. A listener beyond the
 * table's size gives its connections no origin (origin_pid 0). */
#define MAX_LISTENERS 4096

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_LISTENERS);
	__type(key, struct listener_key);
	__type(value, struct listener);
} listeners SEC(".maps");

/* [0] is set by user space once tcpevent_release is attached to the cgroup
 * v2 root (cgroup_link.c): only then may a close wait for the release. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} release_hooked SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TCPEVENT_DEFAULT_RING_SIZE);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TCPEVENT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TCPEVENT_MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TCPEVENT_MAX_FILTER);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TCPEVENT_MAX_FILTER);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TCPEVENT_MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} netns_filter SEC(".maps");

/*
 * Set by the poller while it sleeps in epoll (user space writes it through
 * the mmap'ed .bss). Records are committed without a wake-up, which would
 * cost an IRQ work per record; only an idle poller is woken, by a small
 * wake-up record. The commit is a full barrier (xchg) before the flag is
 * read, and the poller sets the flag before looking at the ring once more:
 * one of the two sides always sees the other.
 */
__u32 poller_idle;

/* After a commit without a wake-up: wake the poller if it sleeps. */
static __always_inline void wake_if_idle(void)
{
	__u64 wakeup = 0;

	if (*(volatile __u32 *)&poller_idle) {
		poller_idle = 0;
		bpf_ringbuf_output(&events, &wakeup, TCPEVENT_WAKEUP_SIZE,
				   BPF_RB_FORCE_WAKEUP);
	}
}

static __always_inline void submit(struct tcpevent_record *r)
{
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	wake_if_idle();
}

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline _Bool pid_allowed(__u32 pid)
{
	return !filter_pids || bpf_map_lookup_elem(&pid_filter, &pid);
}

static __always_inline void take_task(struct task_id *t)
{
	t->pid = bpf_get_current_pid_tgid() >> 32;
	t->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(t->comm, sizeof(t->comm));
}

static __always_inline _Bool ports_allowed(__u16 sport, __u16 dport)
{
	if (!filter_ports)
		return 1;
	return bpf_map_lookup_elem(&port_filter, &sport) ||
	       bpf_map_lookup_elem(&port_filter, &dport);
}

/* The cgroup the socket was made in (inherited by an accepted socket from
 * its listener): it stays when the process moves. NULL if unknown. */
static __always_inline struct cgroup *sock_cgroup(struct sock *sk)
{
	__u64 val;

	if (bpf_core_field_exists(sk->sk_cgrp_data.cgroup))
		return (struct cgroup *)KREAD(sk, sk_cgrp_data.cgroup);
	/* Before 5.15: a cgroup pointer unless bit 0 says it holds net_cls
	 * or net_prio data instead (then the cgroup is unknown). */
	val = KREAD(sk, sk_cgrp_data.val);
	return (val & 1) ? 0 : (struct cgroup *)val;
}

static __always_inline __u64 cgroup_id(struct cgroup *cg)
{
	struct kernfs_node *kn;

	if (!cg)
		return 0;
	kn = KREAD(KPTR(struct cgroup, cg), kn);
	return KREAD(KPTR(struct kernfs_node, kn), id);
}

/* The inode number of the socket's network namespace (/proc/PID/ns/net). */
static __always_inline __u32 sock_netns(struct sock *sk)
{
	struct net *net = KREAD(sk, __sk_common.skc_net.net);

	return KREAD(KPTR(struct net, net), ns.inum);
}

#include "tcp_health.h"

/* In one of the filter's cgroups, or (subtree) below one. */
static __always_inline _Bool cgroup_allowed(struct sock *sk)
{
	struct cgroup *cg = sock_cgroup(sk);
	__u64 id;

	for (int depth = 0; depth < CGROUP_MAX_DEPTH && cg; depth++) {
		id = cgroup_id(cg);
		if (bpf_map_lookup_elem(&cgroup_filter, &id))
			return 1;
		if (!filter_cgroup_subtree)
			return 0;
		cg = (struct cgroup *)KREAD(KPTR(struct cgroup, cg),
					    self.parent);
	}
	return 0;
}

static __always_inline _Bool netns_allowed(struct sock *sk)
{
	__u32 inum = sock_netns(sk);

	return bpf_map_lookup_elem(&netns_filter, &inum) != 0;
}

/*
 * Drop the entry of a socket whose close was never seen, counting the loss
 * if it had an owner. A birth and the sweep may both find it: only the one
 * whose delete works counts.
 */
static __always_inline void forget_lost(__u64 key, _Bool counted)
{
	if (!bpf_map_delete_elem(&sockets, &key) && counted)
		count(TCPEVENT_CNT_UNSEEN_CLOSE);
	if (health_on)
		bpf_map_delete_elem(&health, &key);
}

/* Owned, or closed and held, and not told yet: an event would have come
 * from it. */
static __always_inline _Bool was_event(const struct sock_owner *o)
{
	return !(o->flags & OWNER_TOLD) &&
	       (o->owner.pid || (o->flags & OWNER_HELD));
}

/*
 * A socket is born at this address (connect(), a SYN_RECV child, listen()):
 * an entry still there belongs to an earlier socket whose close we never
 * saw. Unowned: a child that lost the race for its request and was freed
 * without a close, never a connection. Owned: a close the kernel never
 * showed us (docs/reliability.md): counted, never silent. Either way it
 * goes, or the new socket's close would be reported as the old one's.
 */
static __always_inline void evict_stale(__u64 key)
{
	struct sock_owner *stale = bpf_map_lookup_elem(&sockets, &key);

	if (stale)
		forget_lost(key, was_event(stale));
}

static __always_inline struct listener_key listener_of(__u64 key)
{
	struct sock *sk = KPTR(struct sock, key);
	struct listener_key lk = {
		.netns = sock_netns(sk),
		.port = bpf_ntohs(
			KREAD(KPTR(struct inet_sock, key), inet_sport)),
		.family = KREAD(sk, __sk_common.skc_family),
	};

	return lk;
}

/* listen(), in the process that calls it: the origin of its children. */
static __always_inline void on_listen(__u64 key)
{
	struct listener l = { .sk = key };
	struct listener_key lk;

	/* Never tracked; its close must not find an earlier entry. */
	evict_stale(key);
	if (KREAD_PROTOCOL(KPTR(struct sock, key)) != IPPROTO_TCP)
		return;
	lk = listener_of(key);
	take_task(&l.owner);
	bpf_map_update_elem(&listeners, &lk, &l, BPF_ANY);
}

static __always_inline void forget_listener(__u64 key)
{
	struct listener_key lk = listener_of(key);
	struct listener *l = bpf_map_lookup_elem(&listeners, &lk);

	if (l && l->sk == key)
		bpf_map_delete_elem(&listeners, &lk);
}

static __always_inline int on_birth(__u64 key, int newstate)
{
	struct sock *sk = KPTR(struct sock, key);
	struct sock_owner o = {};
	/* int, not long: before 6.4 the kernel's map operations returned int
	 * and the verifier calls them directly, so the upper half of the
	 * helper's 64-bit result is zero (-EEXIST reads 0xffffffef). */
	int err;

	if (KREAD_PROTOCOL(sk) != IPPROTO_TCP)
		return 0;
	if (filter_family && KREAD(sk, __sk_common.skc_family) != filter_family)
		goto filtered;
	/* An unbound client's port is picked after SYN_SENT: 0 here. */
	if (filter_ports &&
	    !ports_allowed(bpf_ntohs(KREAD(KPTR(struct inet_sock, key),
					   inet_sport)),
			   bpf_ntohs(KREAD(sk, __sk_common.skc_dport))))
		goto filtered;
	if ((filter_netns && !netns_allowed(sk)) ||
	    (filter_cgroups && !cgroup_allowed(sk)))
		goto filtered;
	o.birth_ns = bpf_ktime_get_boot_ns();
	o.flags = newstate == TCP_SYN_SENT ? TCPEVENT_F_ACTIVE :
					     TCPEVENT_F_PASSIVE;
	/* connect() runs in the owner; a SYN_RECV child is born in softirq,
	 * its origin the owner of the listener on its port. */
	if (newstate == TCP_SYN_SENT) {
		take_task(&o.owner);
		if (!pid_allowed(o.owner.pid))
			goto filtered;
		o.origin = o.owner;
	} else {
		struct listener_key lk = listener_of(key);
		struct listener *l = bpf_map_lookup_elem(&listeners, &lk);

		if (l)
			o.origin = l->owner;
	}
	/* Most births find the address free: one update, no lookup. */
	err = bpf_map_update_elem(&sockets, &key, &o, BPF_NOEXIST);
	if (err == -EEXIST) {
		evict_stale(key);
		err = bpf_map_update_elem(&sockets, &key, &o, BPF_ANY);
	}
	if (err)
		count(TCPEVENT_CNT_UNTRACKED);
	return 0;
filtered:
	/* Not tracked, but the address may hold a tracked socket's entry. */
	evict_stale(key);
	return 0;
}

/* The process acting on a tracked socket whose owner we do not know yet. */
static __always_inline void claim_owner(__u64 key)
{
	struct sock_owner *o = bpf_map_lookup_elem(&sockets, &key);

	if (!o || o->owner.pid)
		return;
	take_task(&o->owner);
	if (!pid_allowed(o->owner.pid))
		bpf_map_delete_elem(&sockets, &key);
}

/* The process ending the connection (in process context): the owner from
 * now on, whoever held it before. Once per socket. */
static __always_inline void take_closer(__u64 key, struct sock_owner *o)
{
	if (o->flags & OWNER_CLOSER)
		return;
	o->flags |= OWNER_CLOSER;
	take_task(&o->owner);
	if (!pid_allowed(o->owner.pid))
		bpf_map_delete_elem(&sockets, &key);
}

static __always_inline void claim_closer(__u64 key)
{
	struct sock_owner *o = bpf_map_lookup_elem(&sockets, &key);

	if (o)
		take_closer(key, o);
}

static __always_inline void read_addrs(struct sock *sk, __u16 family,
				       struct tcpevent_record *r)
{
	if (family == AF_INET) {
		KREAD_BYTES(r->saddr, 4, sk, __sk_common.skc_rcv_saddr);
		KREAD_BYTES(r->daddr, 4, sk, __sk_common.skc_daddr);
	} else {
		KREAD_BYTES(r->saddr, 16, sk, __sk_common.skc_v6_rcv_saddr);
		KREAD_BYTES(r->daddr, 16, sk, __sk_common.skc_v6_daddr);
	}
}

/* Filters that can only be checked at an event: the owner (a passive
 * socket's is known only from accept() or close() on), and the local port
 * (an unbound client's is chosen after its birth). */
static __always_inline _Bool event_allowed(__u64 key, struct sock_owner *o)
{
	struct sock *sk = KPTR(struct sock, key);

	if (filter_pids && (!o->owner.pid || !pid_allowed(o->owner.pid)))
		return 0;
	return ports_allowed(bpf_ntohs(KREAD(KPTR(struct inet_sock, key),
					     inet_sport)),
			     bpf_ntohs(KREAD(sk, __sk_common.skc_dport)));
}

/* One record of this socket, as it is now, into the ring buffer; n: what a
 * health event adds (tcp_health.h), or NULL. */
static __always_inline void emit(__u64 key, struct sock_owner *o, __u8 kind,
				 int state, const struct health_note *n)
{
	struct tcp_sock *tp = KPTR(struct tcp_sock, key);
	struct sock *sk = KPTR(struct sock, key);
	struct tcpevent_record *r;

	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(TCPEVENT_CNT_RINGBUF_FULL);
		return;
	}
	/* A held close too is timed when it is told (its release): records
	 * enter the ring in time order. Its state and error are the close's. */
	r->ts_ns = bpf_ktime_get_boot_ns();
	r->lifetime_ns = r->ts_ns - o->birth_ns;
	r->pid = o->owner.pid;
	r->flags = o->flags & (TCPEVENT_F_ACTIVE | TCPEVENT_F_PASSIVE);
	if (o->owner.pid) {
		r->uid = o->owner.uid;
		r->flags |= TCPEVENT_F_OWNER;
		__builtin_memcpy(r->comm, o->owner.comm, sizeof(r->comm));
	} else {
		/* Nobody claimed it (reset before accept): the socket's uid. */
		r->uid = KREAD(sk, sk_uid.val);
		__builtin_memset(r->comm, 0, sizeof(r->comm));
	}
	r->rx_bytes = KREAD(tp, bytes_received);
	r->tx_bytes = KREAD(tp, bytes_acked);
	r->segs_out = KREAD(tp, data_segs_out);
	r->segs_in = KREAD(tp, data_segs_in);
	r->rtt_us = KREAD(tp, srtt_us) >> 3;
	r->retrans = KREAD(tp, total_retrans);
	r->family = KREAD(sk, __sk_common.skc_family);
	r->sport = bpf_ntohs(KREAD(KPTR(struct inet_sock, key), inet_sport));
	r->dport = bpf_ntohs(KREAD(sk, __sk_common.skc_dport));
	r->state = state;
	__builtin_memset(r->saddr, 0, sizeof(r->saddr));
	__builtin_memset(r->daddr, 0, sizeof(r->daddr));
	read_addrs(sk, r->family, r);
	r->cgroup_id = cgroup_id(sock_cgroup(sk));
	r->netns = sock_netns(sk);
	r->handshake_ns = o->established_ns ? o->established_ns - o->birth_ns :
					      0;
	r->accept_wait_ns = kind == TCPEVENT_KIND_ACCEPT && o->established_ns ?
				    r->ts_ns - o->established_ns :
				    0;
	r->error = kind != TCPEVENT_KIND_CLOSE ? 0 :
		   (o->flags & OWNER_HELD)     ? o->error :
						 KREAD(sk, sk_err);
	r->kind = kind;
	r->reserved = 0;
	r->origin_pid = o->origin.pid;
	r->origin_uid = o->origin.uid;
	__builtin_memcpy(r->origin_comm, o->origin.comm,
			 sizeof(r->origin_comm));
	if (o->origin.pid)
		r->flags |= TCPEVENT_F_ORIGIN;
	health_fill(key, o->birth_ns, r, n);
	submit(r);
}

/*
 * A passive socket whose release is still to come and will be seen: a
 * process holds its file, the release hook is attached, and it is not the
 * kernel's own socket (the hook does not run for those).
 */
static __always_inline _Bool waits_for_release(struct sock *sk,
					       struct sock_owner *o)
{
	__u32 zero = 0, *hooked;

	if ((o->flags & (OWNER_RELEASED | TCPEVENT_F_PASSIVE)) !=
		    TCPEVENT_F_PASSIVE ||
	    !KREAD(sk, sk_socket))
		return 0;
	hooked = bpf_map_lookup_elem(&release_hooked, &zero);
	return hooked && *hooked &&
	       !BPF_CORE_READ_BITFIELD_PROBED(sk, sk_kern_sock);
}

/*
 * Such a socket ended by the network (a reset, a timeout: softirq), with
 * no closer yet: its record waits in the table for that release
 * (tcpevent_release), which names it. The sweep flushes what waits too
 * long, but for what a pid filter would drop for want of its owner.
 */
static __always_inline _Bool hold_for_release(struct sock *sk,
					      struct sock_owner *o)
{
	return !(o->flags & OWNER_CLOSER) && waits_for_release(sk, o);
}

static __always_inline int on_close(__u64 key, int oldstate)
{
	struct sock *sk = KPTR(struct sock, key);
	struct sock_owner *o = bpf_map_lookup_elem(&sockets, &key);

	if (!o) {
		/* Birth not seen, or filtered out at birth; or a listener. */
		if (oldstate == TCP_LISTEN)
			forget_listener(key);
		return 0;
	}
	/*
	 * An abortive close (SO_LINGER 0, unread data, close() before the
	 * handshake's end) goes here straight from tcp_close(), in the
	 * closing process: __tcp_close() sets SHUTDOWN_MASK before this state
	 * change, tcp_done() (a reset or a timeout, softirq) only after it.
	 */
	if (!(o->flags & OWNER_CLOSER) &&
	    (oldstate == TCP_ESTABLISHED || oldstate == TCP_CLOSE_WAIT ||
	     oldstate == TCP_SYN_SENT) &&
	    KREAD_SHUTDOWN(sk) == SHUTDOWN_MASK) {
		take_closer(key, o);
		/* take_closer() may have deleted it (pid filter): look again. */
		o = bpf_map_lookup_elem(&sockets, &key);
		if (!o)
			return 0;
	}
	if (emit_close && hold_for_release(sk, o)) {
		o->flags |= OWNER_HELD;
		o->closed_ns = bpf_ktime_get_boot_ns();
		o->error = KREAD(sk, sk_err);
		o->close_state = oldstate;
		return 0;
	}
	if (emit_close && event_allowed(key, o))
		emit(key, o, TCPEVENT_KIND_CLOSE, oldstate, 0);
	if (health_on)
		health_closed(key, o);
	/* A passive socket told while its file is open (its process shut it
	 * down first): kept until its release, which would otherwise find no
	 * entry and take it for a birth never seen (tcp_census.bpf.c). */
	if (emit_close && waits_for_release(sk, o)) {
		o->flags |= OWNER_TOLD;
		return 0;
	}
	bpf_map_delete_elem(&sockets, &key);
	return 0;
}

/*
 * The handshake's end (asked for only with connect or accept events): the
 * time it took, and for the active side, the connect event. The owner of
 * an active socket is known since connect().
 */
static __always_inline int on_established(__u64 key, int oldstate)
{
	struct sock_owner *o;

	if (oldstate != TCP_SYN_SENT && oldstate != TCP_SYN_RECV)
		return 0;
	o = bpf_map_lookup_elem(&sockets, &key);
	if (!o)
		return 0;
	o->established_ns = bpf_ktime_get_boot_ns();
	if (oldstate == TCP_SYN_SENT && emit_connect && event_allowed(key, o))
		emit(key, o, TCPEVENT_KIND_CONNECT, TCP_ESTABLISHED, 0);
	return 0;
}

/*
 * A test build can hide closes from the program (tests/support/bpf/hidden_close.bpf.c),
 * as some kernels hide the state changes they run in some tasks' context
 * (docs/reliability.md), to check that such a loss is counted.
 */
#ifndef TCPEVENT_CLOSE_HIDDEN
#define TCPEVENT_CLOSE_HIDDEN(sk) 0
#endif
/* And a build blind to passive births (tests/support/bpf/hidden_birth.bpf.c). */
#ifndef TCPEVENT_BIRTH_HIDDEN
#define TCPEVENT_BIRTH_HIDDEN(sk) 0
#endif

static __always_inline int on_state(struct bpf_raw_tracepoint_args *ctx)
{
	__u64 sk = ctx->args[0]; /* struct sock *, the table's key */
	int oldstate = ctx->args[1];
	int newstate = ctx->args[2];

	switch (newstate) {
	case TCP_SYN_RECV:
		if (TCPEVENT_BIRTH_HIDDEN(sk))
			return 0;
		return on_birth(sk, newstate);
	case TCP_SYN_SENT:
		return on_birth(sk, newstate);
	case TCP_ESTABLISHED:
		if (emit_connect || emit_accept)
			return on_established(sk, oldstate);
		return 0;
	case TCP_LISTEN:
		on_listen(sk);
		return 0;
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		/* Only close() and shutdown() move here: process context,
		 * the process ending the connection. */
		claim_closer(sk);
		return 0;
	case TCP_CLOSE:
		if (TCPEVENT_CLOSE_HIDDEN(sk))
			return 0;
		return on_close(sk, oldstate);
	}
	return 0;
}

/*
 * A kernel may not run a program that is already running on the same CPU:
 * a softirq that changes a socket's state while tcpevent_state runs in
 * process context would be skipped, and its event lost. So a second
 * program can go on the same hook: it does nothing unless tcpevent_state
 * is running on this CPU, i.e. exactly when the kernel skipped it. User
 * space attaches it only once the kernel reports such a skip (upkeep.c):
 * attached, it costs a second dispatch on every hit.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} running SEC(".maps");

SEC("raw_tracepoint/inet_sock_set_state")
int tcpevent_state(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0, *busy = bpf_map_lookup_elem(&running, &zero);

	if (!busy)
		return 0;
	*busy = 1;
	barrier();
	on_state(ctx);
	barrier();
	*busy = 0;
	return 0;
}

SEC("raw_tracepoint/inet_sock_set_state")
int tcpevent_state_nested(struct bpf_raw_tracepoint_args *ctx)
{
	__u32 zero = 0, *busy = bpf_map_lookup_elem(&running, &zero);

	if (!busy || !*busy)
		return 0;
	count(TCPEVENT_CNT_NESTED);
	return on_state(ctx);
}

/*
 * A close we never saw leaves its entry behind. tcp_set_state() runs the
 * tracepoint before it stores the new state, and on_close() deletes the
 * entry there: so an entry whose socket now reads TCP_CLOSE is one whose
 * close we missed (its memory free, or taken by a socket not connected
 * yet). Except for an instant at connect(): the entry is made at SYN_SENT
 * while the socket still reads TCP_CLOSE; entries under a second old are
 * left alone. Counted if it had an owner, and removed so that it holds no
 * slot.
 */
#define SWEEP_MIN_AGE_NS 1000000000ULL

static long sweep_entry(void *map, __u64 *key, struct sock_owner *unused,
			__u64 *now)
{
	/* The walk does not hold the entry (a close may delete it, a birth
	 * reuse it): copy the key, look it up again. */
	__u64 sk = *key;
	struct sock_owner *o = bpf_map_lookup_elem(&sockets, &sk);

	if (o && (o->flags & OWNER_TOLD)) {
		/* Its release deletes it; or it is gone with its file. */
		if (!KREAD(KPTR(struct sock, sk), sk_socket))
			bpf_map_delete_elem(&sockets, &sk);
		return 0;
	}
	if (o && (o->flags & OWNER_HELD)) {
		_Bool waits;

		/* Closed, waiting for a release that has not come: told
		 * with the owner known so far (the acceptor, with accept
		 * hooks; else none), but told. Unless a pid filter needs
		 * the owner: then only the release can tell it. */
		if ((__s64)(*now - o->closed_ns) < (__s64)HOLD_MAX_NS)
			return 0;
		waits = waits_for_release(KPTR(struct sock, sk), o);
		if (event_allowed(sk, o))
			emit(sk, o, TCPEVENT_KIND_CLOSE, o->close_state, 0);
		else if (waits && filter_pids && !o->owner.pid)
			return 0;
		if (waits)
			o->flags = (o->flags & ~OWNER_HELD) | OWNER_TOLD;
		else
			bpf_map_delete_elem(&sockets, &sk);
		return 0;
	}
	/* Signed: an entry born after the sweep read its clock (a connect()
	 * met mid-walk, reading TCP_CLOSE for that instant) is young. */
	if (!o || (__s64)(*now - o->birth_ns) < (__s64)SWEEP_MIN_AGE_NS ||
	    KREAD(KPTR(struct sock, sk), __sk_common.skc_state) != TCP_CLOSE)
		return 0;
	/* A close seen just now deleted the entry before the state read
	 * TCP_CLOSE: then this delete fails, and nothing was missed. An
	 * unowned passive socket with a file was accepted (its owner is
	 * named at its release): a connection too, not a race's loser. */
	forget_lost(sk,
		    was_event(o) || KREAD(KPTR(struct sock, sk), sk_socket));
	return 0;
}

/* Never attached: user space runs it (BPF_PROG_TEST_RUN), about once a
 * second, and does not load it where the kernel lacks
 * bpf_for_each_map_elem() (before 5.13; loader.c). */
SEC("raw_tracepoint/inet_sock_set_state")
int tcpevent_sweep(void *ctx)
{
	__u64 now = bpf_ktime_get_boot_ns();

	bpf_for_each_map_elem(&sockets, sweep_entry, &now, 0);
	return 0;
}

/* The layout of a syscalls:sys_exit_* tracepoint record (tracefs format). */
struct syscall_exit_args {
	__u64 common;
	int nr;
	long ret;
};

/* accept() handed the socket to the current process: its owner, and (if
 * asked) its accept event, once. */
static __always_inline void on_accepted(__u64 key)
{
	struct sock_owner *o;

	claim_owner(key);
	if (!emit_accept)
		return;
	o = bpf_map_lookup_elem(&sockets, &key);
	if (!o || (o->flags & OWNER_ACCEPTED))
		return;
	o->flags |= OWNER_ACCEPTED;
	if (event_allowed(key, o))
		emit(key, o, TCPEVENT_KIND_ACCEPT,
		     KREAD(KPTR(struct sock, key), __sk_common.skc_state), 0);
}

/*
 * accept() returns in the accepting process: the new fd leads to the socket,
 * so the passive side is attributed even if the peer resets it later in
 * softirq, before this process ever calls close().
 */
static __always_inline int on_accept(long fd)
{
	struct task_struct *task =
		KPTR(struct task_struct, bpf_get_current_task());
	struct files_struct *files;
	struct fdtable *fdt;
	struct socket *sock;
	struct file **fds;
	struct file *file;
	void *data;

	if (fd < 0)
		return 0;
	files = KPTR(struct files_struct, KREAD(task, files));
	fdt = KPTR(struct fdtable, KREAD(files, fdt));
	if (fd >= KREAD(fdt, max_fds))
		return 0;
	fds = KREAD(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	data = KREAD(KPTR(struct file, file), private_data);
	sock = KPTR(struct socket, data);
	/* A socket's file points back at it; anything else is not a socket. */
	if (!data || KREAD(sock, file) != file)
		return 0;
	on_accepted((__u64)KREAD(sock, sk));
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tcpevent_accept4(struct syscall_exit_args *ctx)
{
	return on_accept(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tcpevent_accept(struct syscall_exit_args *ctx)
{
	return on_accept(ctx->ret);
}

#include "tcp_census.bpf.c"

/*
 * The last close of a socket's file, or its process's exit (inet_release(),
 * before tcp_close()): process context, the releasing process, for every
 * inet socket of every cgroup below the v2 root it is attached to, and
 * nothing anywhere else. The kernel passes the struct sock itself as ctx:
 * its address is the table's key. It names the closer of every socket
 * that has a file, and gives a held close (reset while the file was open)
 * its owner.
 */
SEC("cgroup/sock_release")
int tcpevent_release(struct bpf_sock *ctx)
{
	__u64 key = (__u64)ctx;
	struct sock_owner *o = bpf_map_lookup_elem(&sockets, &key);

	if (!o) {
		if (emit_close)
			census_released(key);
		return 1;
	}
	if (o->flags & OWNER_TOLD) {
		bpf_map_delete_elem(&sockets, &key);
		return 1;
	}
	if (!(o->flags & OWNER_HELD)) {
		o->flags |= OWNER_RELEASED;
		take_closer(key, o); /* tcp_close() follows, here */
		return 1;
	}
	take_task(&o->owner);
	if (event_allowed(key, o))
		emit(key, o, TCPEVENT_KIND_CLOSE, o->close_state, 0);
	bpf_map_delete_elem(&sockets, &key);
	return 1;
}
#include "tcp_health.bpf.c"
#include "tcp_cgroup_names.bpf.c"

char LICENSE[] SEC("license") = "Dual MIT/GPL";
