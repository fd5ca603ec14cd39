// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * tcp_cgroup_names.bpf.c - the names of cgroups as they are made
 * (docs/containers.md). Included at the end of tcp.bpf.c: one object, one
 * ring buffer. A container's cgroup may be gone before anyone reads its
 * events' cgroup id back into a path; told here at its mkdir, the library
 * keeps the name (cgroup_names.c) for as long as its bounded table allows.
 *
 * It runs only when a cgroup directory is made, of any hierarchy: the v1
 * ones are left out at once (a socket's cgroup id is always of v2's).
 */

/* cgroup_mkdir(struct cgroup *cgrp, const char *path): path is the
 * kernel's text of the new cgroup's path from its hierarchy's root, in a
 * buffer of TCPEVENT_CGROUP_PATH_LEN bytes (kernel memory, held while the
 * tracepoint runs). */
SEC("raw_tracepoint/cgroup_mkdir")
int tcpevent_cgroup_mkdir(struct bpf_raw_tracepoint_args *ctx)
{
	struct cgroup *cgrp = KPTR(struct cgroup, ctx->args[0]);
	struct cgroup_root *root = KPTR(struct cgroup_root, KREAD(cgrp, root));
	struct kernfs_node *kn = KPTR(struct kernfs_node, KREAD(cgrp, kn));
	struct tcpevent_cgroup_record *r;
	long len;

	if (KREAD(root, hierarchy_id) != 0)
		return 0; /* a cgroup v1 hierarchy's */
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r)
		return 0; /* the library then resolves it as before */
	r->cgroup_id = KREAD(kn, id);
	r->reserved = 0;
	len = bpf_probe_read_kernel_str(r->path, sizeof(r->path),
					(const void *)ctx->args[1]);
	if (len <= 0) {
		bpf_ringbuf_discard(r, BPF_RB_NO_WAKEUP);
		return 0;
	}
	r->len = len - 1;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	wake_if_idle();
	return 0;
}
