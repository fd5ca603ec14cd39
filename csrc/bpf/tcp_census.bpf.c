// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * Included by tcp.bpf.c. A passive socket released with no entry in the
 * table was born before the tracer, or filtered out at its birth, or born
 * where the kernel ran no program (a SYN_RECV child made in softirq in a
 * task that runs none: docs/reliability.md). Only the last one is a lost
 * close event, and it is counted (TCPEVENT_CNT_UNSEEN_BIRTH, in
 * stats.missed).
 *
 * Telling the first from the last takes a census: once every hook is
 * attached, user space runs tcpevent_census once (census.c) over every open
 * file of every task. It notes each passive TCP socket that has no entry,
 * and each child waiting in a listener's accept queue, in born_before. A
 * socket born after that has an entry, or is not there. Only then does
 * user space set TCPEVENT_CENSUS_TAKEN, and only then is anything counted.
 * (An active socket's birth is connect(), in its process: always seen.)
 */

#define S_IFMT	 00170000
#define S_IFSOCK 0140000

/* Sized by user space (max_sockets): sockets born before the tracer. Not
 * preallocated: it holds what the census found, and only shrinks. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TCPEVENT_DEFAULT_MAX_SOCKETS);
	__type(key, __u64);
	__type(value, __u8);
} born_before SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, TCPEVENT_CENSUS_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} census SEC(".maps");

static __always_inline void census_set(__u32 slot)
{
	__u32 one = 1;

	bpf_map_update_elem(&census, &slot, &one, BPF_ANY);
}

/* A passive socket's sk_max_ack_backlog is its listener's backlog, copied
 * at its birth (so 0 only under listen(fd, 0)); an active one's is 0. */
static __always_inline _Bool born_passive(__u64 key)
{
	return KREAD(KPTR(struct sock, key), sk_max_ack_backlog) != 0;
}

static __always_inline void census_note(__u64 key)
{
	__u8 one = 1;

	if (!key || !born_passive(key) || bpf_map_lookup_elem(&sockets, &key))
		return;
	if (bpf_map_update_elem(&born_before, &key, &one, BPF_ANY))
		census_set(TCPEVENT_CENSUS_INCOMPLETE);
}

/*
 * One child in a listener's accept queue: noted, and the next request
 * returned (0 at the end). Global and not inlined, so that the verifier
 * checks it once rather than once for each turn of the caller's loop
 * (inlined, that loop was most of a tracer's open: docs/performance.md).
 */
__noinline __u64 tcpevent_census_queued(__u64 req)
{
	struct request_sock *r = KPTR(struct request_sock, req);
	__u64 next = 0;

	if (!req)
		return 0;
	census_note((__u64)KREAD(r, sk));
	/* Read as a number: a global function takes and returns no pointer
	 * (the default build's direct read would give one). */
	bpf_core_read(&next, sizeof(next), &r->dl_next);
	return next;
}

/*
 * A listener made before the tracer has had no listen() seen: its origin
 * is guessed as the process holding it that started first. A listener is
 * shared by fork(), so that is the one that made it, or the oldest still
 * holding it once that one has exited (or one it was passed to, over a
 * Unix socket, if older). A listen() seen since the hooks were attached
 * is kept: it is no guess.
 */
static __always_inline void census_listener(struct task_struct *task, __u64 key)
{
	struct cred *cred = KPTR(struct cred, KREAD(task, cred));
	struct listener_key lk = listener_of(key);
	struct listener l = {
		.sk = key,
		.census_start = KREAD(task, start_time),
	}, *seen = bpf_map_lookup_elem(&listeners, &lk);

	if (seen &&
	    (!seen->census_start || seen->census_start <= l.census_start))
		return;
	l.owner.pid = KREAD(task, tgid);
	l.owner.uid = KREAD(cred, uid.val);
	KREAD_BYTES(l.owner.comm, sizeof(l.owner.comm), task, comm);
	/* start_time 0 (a task of the boot) must still read as a guess. */
	l.census_start |= !l.census_start;
	bpf_map_update_elem(&listeners, &lk, &l, BPF_ANY);
}

SEC("iter/task_file")
int tcpevent_census(struct bpf_iter__task_file *ctx)
{
	__u32 zero = 0, *hooked = bpf_map_lookup_elem(&release_hooked, &zero);
	struct task_struct *task = ctx->task;
	__u64 file = (__u64)ctx->file, sk, req;
	/* Only the release hook counts what born_before tells apart. */
	_Bool counting = hooked && *hooked;
	struct inode *inode;
	struct socket *sock;
	__u16 family;

	if (!file || !task)
		return 0;
	inode = KREAD(KPTR(struct file, file), f_inode);
	if (!inode ||
	    (KREAD(KPTR(struct inode, inode), i_mode) & S_IFMT) != S_IFSOCK)
		return 0;
	/* A sockfs file's private_data is its struct socket. */
	sock = KPTR(struct socket,
		    KREAD(KPTR(struct file, file), private_data));
	sk = (__u64)KREAD(sock, sk);
	if (!sk)
		return 0;
	family = KREAD(KPTR(struct sock, sk), __sk_common.skc_family);
	if ((family != AF_INET && family != AF_INET6) ||
	    KREAD_PROTOCOL(KPTR(struct sock, sk)) != IPPROTO_TCP)
		return 0;
	if (KREAD(KPTR(struct sock, sk), __sk_common.skc_state) != TCP_LISTEN) {
		if (counting)
			census_note(sk);
		return 0;
	}
	census_listener(task, sk);
	if (!counting)
		return 0;
	req = 0;
	bpf_core_read(&req, sizeof(req),
		      &KPTR(struct inet_connection_sock, sk)
			       ->icsk_accept_queue.rskq_accept_head);
	for (int i = 0; i < TCPEVENT_CENSUS_QUEUE_MAX && req; i++)
		req = tcpevent_census_queued(req);
	if (req)
		census_set(TCPEVENT_CENSUS_INCOMPLETE);
	return 0;
}

/* The release of a socket with no entry (tcpevent_release): counted if it
 * is a passive connection born since the census that the filters let
 * through (its owner is the releasing process, as at any release). */
static __always_inline void census_released(__u64 key)
{
	struct sock *sk = KPTR(struct sock, key);
	__u32 slot = TCPEVENT_CENSUS_TAKEN, *taken;

	if (!born_passive(key) ||
	    KREAD(sk, __sk_common.skc_state) == TCP_LISTEN ||
	    KREAD_PROTOCOL(sk) != IPPROTO_TCP)
		return;
	taken = bpf_map_lookup_elem(&census, &slot);
	if (!taken || !*taken || !bpf_map_delete_elem(&born_before, &key))
		return;
	if (filter_family && KREAD(sk, __sk_common.skc_family) != filter_family)
		return;
	if (!ports_allowed(bpf_ntohs(KREAD(KPTR(struct inet_sock, key),
					   inet_sport)),
			   bpf_ntohs(KREAD(sk, __sk_common.skc_dport))))
		return;
	if ((filter_netns && !netns_allowed(sk)) ||
	    (filter_cgroups && !cgroup_allowed(sk)) ||
	    !pid_allowed(bpf_get_current_pid_tgid() >> 32))
		return;
	count(TCPEVENT_CNT_UNSEEN_BIRTH);
}
