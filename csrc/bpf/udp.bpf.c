// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * udp.bpf.c - per-flow UDP counters, and a record when a socket goes.
 *
 * cgroup_skb/egress and cgroup_skb/ingress, attached to the cgroup v2 root,
 * see every packet of every socket in the host's cgroups, TCP included, so
 * they return at once for anything that is not a UDP full socket, and
 * otherwise do one socket-storage lookup, one flow-table lookup and atomic
 * adds. Egress runs for the sending socket (in its sendmsg()); ingress runs
 * from the receiving socket's filter (sk_filter() in udp_queue_rcv_skb()),
 * where skb->sk is that socket: each socket counts its own direction, so a
 * datagram between two sockets of this host (loopback) is counted once each
 * way, tx for its sender and rx for its receiver.
 *
 * cgroup/sock_create takes the owner (pid, uid, comm) in the creating
 * process; a socket born before the tracer gets it at its first send.
 * cgroup/sock_release tells user space that the socket's flows are final.
 * The udp:udp_fail_queue_rcv_skb tracepoint counts what the socket's
 * receive queue refused (buffer full) against the flow that sent it.
 *
 * The counters are cumulative; user space reads the table every export
 * interval and reports deltas (docs/udp.md).
 */
#include "vmlinux_min.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "udp_kernel.h"
#include "udpevent_record.h"

/* Set by user space before load. */
const volatile __u16 filter_family = 0;
const volatile _Bool filter_pids = 0;
const volatile _Bool filter_ports = 0;
const volatile _Bool filter_cgroups = 0;
const volatile _Bool filter_netns = 0;

/* sock_info.flags */
#define SI_OWNER   0x1 /* pid/uid/comm known */
#define SI_IGNORED 0x2 /* the filters refuse it: never counted */
#define SI_PENDING 0x4 /* a pid filter waits for its owner */
#define SI_FLOWS   0x8 /* it has flows: its release is reported */

/* Per socket, in the socket itself (freed with it). */
struct sock_info {
	__u64 cgroup_id;
	__u32 pid;
	__u32 uid;
	__u32 netns;
	__u8 flags;
	char comm[TCPEVENT_COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sock_info);
} socks SEC(".maps");

/* A plain hash, sized by user space (max_flows): a flow that does not fit
 * is not tracked and its datagrams are counted (UDPEVENT_CNT_UNTRACKED). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UDPEVENT_DEFAULT_MAX_FLOWS);
	__type(key, struct udpevent_flow_key);
	__type(value, struct udpevent_flow_value);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, UDPEVENT_DEFAULT_RING_SIZE);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UDPEVENT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UDPEVENT_MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UDPEVENT_MAX_FILTER);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UDPEVENT_MAX_FILTER);
	__type(key, __u64);
	__type(value, __u8);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UDPEVENT_MAX_FILTER);
	__type(key, __u32);
	__type(value, __u8);
} netns_filter SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		*c += 1;
}

/*
 * The inode of the socket's network namespace, read through the kernel's
 * struct sock (a bpf_sock has no such field). Once per socket (its storage
 * is made), never per packet. The default build casts with the
 * bpf_rdonly_cast() kfunc (6.2+); the portable one (-DTCPEVENT_PORTABLE,
 * loaded where the default is refused, as tcp.bpf.c's: kernel_read.h)
 * reads with bpf_probe_read_kernel(). The verifier allows no arithmetic on
 * a bpf_sock pointer, so its value is first copied as a plain number (a
 * probe read of the stack slot that holds it: the copy is a scalar).
 */
#ifdef TCPEVENT_PORTABLE
static __always_inline __u32 netns_of(const void *sk)
{
	struct sock *s;

	if (bpf_probe_read_kernel(&s, sizeof(s), &sk))
		return 0;
	return BPF_CORE_READ(s, __sk_common.skc_net.net, ns.inum);
}
#else
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

static __always_inline __u32 netns_of(const void *sk)
{
	struct sock *s =
		bpf_rdonly_cast(sk, bpf_core_type_id_kernel(struct sock));

	return s->__sk_common.skc_net.net->ns.inum;
}
#endif

static __always_inline void take_owner(struct sock_info *si)
{
	si->pid = bpf_get_current_pid_tgid() >> 32;
	si->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(si->comm, sizeof(si->comm));
	si->flags |= SI_OWNER;
}

/*
 * The same in a cgroup_skb program (egress, in the sender's process). The
 * portable build reads the current task instead: 6.1's cgroup_skb programs
 * have no bpf_get_current_pid_tgid(), _uid_gid() nor _comm() (its verifier:
 * "unknown func"), 6.12's no _uid_gid(); their cgroup/sock programs have
 * all three. The same values:
 * the thread group's pid, the uid of the init namespace (a kuid), the comm.
 */
#ifdef TCPEVENT_PORTABLE
static __always_inline void take_owner_skb(struct sock_info *si)
{
	struct task_struct___udp *t = (void *)bpf_get_current_task();

	si->pid = BPF_CORE_READ(t, tgid);
	si->uid = BPF_CORE_READ(t, cred, uid.val);
	bpf_core_read_str(si->comm, sizeof(si->comm), &t->comm);
	si->flags |= SI_OWNER;
}
#else
#define take_owner_skb take_owner
#endif

/* The filters a socket is judged by once: family, cgroup, netns, pid. */
static __always_inline void judge(struct sock_info *si, __u16 family)
{
	if ((filter_family && family != filter_family) ||
	    (filter_cgroups &&
	     !bpf_map_lookup_elem(&cgroup_filter, &si->cgroup_id)) ||
	    (filter_netns && !bpf_map_lookup_elem(&netns_filter, &si->netns))) {
		si->flags |= SI_IGNORED;
		return;
	}
	if (!filter_pids)
		return;
	if (!(si->flags & SI_OWNER))
		si->flags |= SI_PENDING;
	else if (!bpf_map_lookup_elem(&pid_filter, &si->pid))
		si->flags |= SI_IGNORED;
}

SEC("cgroup/sock_create")
int udpevent_sock_create(struct bpf_sock *ctx)
{
	struct sock_info *si;

	if (ctx->protocol != IPPROTO_UDP)
		return 1;
	si = bpf_sk_storage_get(&socks, ctx, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!si)
		return 1;
	si->cgroup_id = bpf_get_current_cgroup_id();
	si->netns = netns_of(ctx);
	take_owner(si);
	judge(si, ctx->family);
	return 1;
}

SEC("cgroup/sock_release")
int udpevent_sock_release(struct bpf_sock *ctx)
{
	struct udpevent_release *r;
	struct sock_info *si;

	if (ctx->protocol != IPPROTO_UDP)
		return 1;
	si = bpf_sk_storage_get(&socks, ctx, 0, 0);
	if (!si || !(si->flags & SI_FLOWS))
		return 1;
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(UDPEVENT_CNT_RINGBUF_FULL);
		return 1;
	}
	r->ts_ns = bpf_ktime_get_boot_ns();
	r->cookie = bpf_get_socket_cookie(ctx);
	bpf_ringbuf_submit(r, 0);
	return 1;
}

/* The socket's storage, made at its first datagram if it was born before
 * us; NULL if it is not to be counted. Egress runs in the sender's
 * process: the owner is taken there if unknown. */
static __always_inline struct sock_info *
sock_info_of(struct __sk_buff *skb, struct bpf_sock *sk, _Bool egress)
{
	struct sock_info *si = bpf_sk_storage_get(&socks, sk, 0, 0);

	if (!si) {
		si = bpf_sk_storage_get(&socks, sk, 0,
					BPF_SK_STORAGE_GET_F_CREATE);
		if (!si) {
			count(UDPEVENT_CNT_NO_STORAGE);
			return 0;
		}
		si->cgroup_id = bpf_skb_cgroup_id(skb);
		si->netns = netns_of(sk);
		if (egress)
			take_owner_skb(si);
		judge(si, sk->family);
	} else if (egress && !(si->flags & SI_OWNER)) {
		take_owner_skb(si);
		if (si->flags & SI_PENDING) {
			si->flags &= ~SI_PENDING;
			if (!bpf_map_lookup_elem(&pid_filter, &si->pid))
				si->flags |= SI_IGNORED;
		}
	}
	if (si->flags & (SI_IGNORED | SI_PENDING))
		return 0;
	return si;
}

struct packet {
	__u8 laddr[16];
	__u32 payload;
	__u32 datagrams;
	__u16 lport;
};

/*
 * The remote endpoint (into the key) and the local one of the datagram,
 * from its headers: skb data starts at the network header in both hooks.
 * An IPv4 datagram of an AF_INET6 socket gets v4-mapped addresses.
 * An IPv6 datagram whose next header is not UDP (extension headers) is
 * counted with port 0 and its payload estimated from the packet length.
 */
static __always_inline int parse(struct __sk_buff *skb, __u16 sk_family,
				 _Bool egress, struct udpevent_flow_key *k,
				 struct packet *p)
{
	struct udphdr_min uh = {};
	__u32 l3;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr_min ip;
		__be32 local, remote;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return -1;
		l3 = (ip.ver_ihl & 0xf) * 4;
		if (ip.protocol != IPPROTO_UDP ||
		    bpf_skb_load_bytes(skb, l3, &uh, sizeof(uh)))
			return -1;
		remote = egress ? ip.daddr : ip.saddr;
		local = egress ? ip.saddr : ip.daddr;
		if (sk_family == AF_INET6) {
			k->raddr[10] = k->raddr[11] = 0xff;
			p->laddr[10] = p->laddr[11] = 0xff;
			__builtin_memcpy(&k->raddr[12], &remote, 4);
			__builtin_memcpy(&p->laddr[12], &local, 4);
		} else {
			__builtin_memcpy(k->raddr, &remote, 4);
			__builtin_memcpy(p->laddr, &local, 4);
		}
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr_min ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return -1;
		l3 = sizeof(ip6);
		if (ip6.nexthdr == IPPROTO_UDP &&
		    bpf_skb_load_bytes(skb, l3, &uh, sizeof(uh)))
			return -1;
		__builtin_memcpy(k->raddr, egress ? ip6.daddr : ip6.saddr, 16);
		__builtin_memcpy(p->laddr, egress ? ip6.saddr : ip6.daddr, 16);
	} else {
		return -1;
	}
	k->rport = bpf_ntohs(egress ? uh.dest : uh.source);
	p->lport = bpf_ntohs(egress ? uh.source : uh.dest);
	/* A GSO send (UDP_SEGMENT) is one skb here, split later. */
	p->datagrams = skb->gso_segs > 1 ? skb->gso_segs : 1;
	if (uh.len && p->datagrams == 1)
		p->payload = bpf_ntohs(uh.len) - sizeof(uh);
	else
		p->payload = skb->len - l3 - sizeof(uh);
	return 0;
}

static __always_inline struct udpevent_flow_value *
new_flow(struct __sk_buff *skb, struct bpf_sock *sk, struct sock_info *si,
	 struct udpevent_flow_key *k, struct packet *p)
{
	struct udpevent_flow_value v = {};
	/* int: before 6.4 the upper half of a map helper's result is 0. */
	int err;

	if (filter_ports && !bpf_map_lookup_elem(&port_filter, &p->lport) &&
	    !bpf_map_lookup_elem(&port_filter, &k->rport))
		return 0;
	v.start_ns = bpf_ktime_get_boot_ns();
	v.cgroup_id = si->cgroup_id;
	v.netns = si->netns;
	v.family = sk->family;
	v.lport = p->lport;
	__builtin_memcpy(v.laddr, p->laddr, sizeof(v.laddr));
	if (si->flags & SI_OWNER) {
		v.pid = si->pid;
		v.uid = si->uid;
		__builtin_memcpy(v.comm, si->comm, sizeof(v.comm));
		v.flags = UDPEVENT_F_OWNER;
	}
	err = bpf_map_update_elem(&flows, k, &v, BPF_NOEXIST);
	if (err == -E2BIG) {
		count(UDPEVENT_CNT_UNTRACKED);
		return 0;
	}
	si->flags |= SI_FLOWS;
	return bpf_map_lookup_elem(&flows, k);
}

static __always_inline void on_skb(struct __sk_buff *skb, _Bool egress)
{
	struct udpevent_flow_key k = {};
	struct udpevent_flow_value *v;
	struct packet p = {};
	struct sock_info *si;
	struct bpf_sock *sk;

	sk = skb->sk;
	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_UDP)
		return;
	si = sock_info_of(skb, sk, egress);
	if (!si || parse(skb, sk->family, egress, &k, &p))
		return;
	k.cookie = bpf_get_socket_cookie(skb);
	v = bpf_map_lookup_elem(&flows, &k);
	if (!v) {
		v = new_flow(skb, sk, si, &k, &p);
		if (!v)
			return;
	}
	if (egress) {
		__sync_fetch_and_add(&v->tx_bytes, p.payload);
		__sync_fetch_and_add(&v->tx_datagrams, p.datagrams);
		if (!(v->flags & UDPEVENT_F_OWNER) && (si->flags & SI_OWNER)) {
			v->pid = si->pid;
			v->uid = si->uid;
			__builtin_memcpy(v->comm, si->comm, sizeof(v->comm));
			v->flags |= UDPEVENT_F_OWNER;
		}
	} else {
		__sync_fetch_and_add(&v->rx_bytes, p.payload);
		__sync_fetch_and_add(&v->rx_datagrams, p.datagrams);
	}
}

SEC("cgroup_skb/egress")
int udpevent_egress(struct __sk_buff *skb)
{
	on_skb(skb, 1);
	return 1;
}

SEC("cgroup_skb/ingress")
int udpevent_ingress(struct __sk_buff *skb)
{
	on_skb(skb, 0);
	return 1;
}

/*
 * udp:udp_fail_queue_rcv_skb(rc, sk, skb): the receive queue refused a
 * datagram that ingress counted (-ENOMEM: the buffer is full, the
 * RcvbufErrors of /proc/net/snmp; else MemErrors). Only here, not on any
 * other packet. The skb still has its headers (network_header,
 * transport_header); the socket's cookie was made at ingress.
 */
SEC("raw_tp/udp_fail_queue_rcv_skb")
int BPF_PROG(udpevent_rcv_fail, int rc, struct sock___udp *sk,
	     struct sk_buff___udp *skb)
{
	struct udpevent_flow_key k = {};
	struct udpevent_flow_value *v;
	struct udphdr_min uh;
	unsigned char *head;
	__u16 nh, th;
	__u8 ver;

	if (!sk || !skb)
		return 0;
	k.cookie = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	head = BPF_CORE_READ(skb, head);
	nh = BPF_CORE_READ(skb, network_header);
	th = BPF_CORE_READ(skb, transport_header);
	if (bpf_probe_read_kernel(&ver, 1, head + nh) ||
	    bpf_probe_read_kernel(&uh, sizeof(uh), head + th))
		return 0;
	k.rport = bpf_ntohs(uh.source);
	if ((ver >> 4) == 4) {
		if (BPF_CORE_READ(sk, __sk_common.skc_family) == AF_INET6) {
			k.raddr[10] = k.raddr[11] = 0xff;
			bpf_probe_read_kernel(&k.raddr[12], 4, head + nh + 12);
		} else {
			bpf_probe_read_kernel(k.raddr, 4, head + nh + 12);
		}
	} else {
		bpf_probe_read_kernel(k.raddr, 16, head + nh + 8);
	}
	v = bpf_map_lookup_elem(&flows, &k);
	if (v)
		__sync_fetch_and_add(&v->rx_drops, 1);
	return 0;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
