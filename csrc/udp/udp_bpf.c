// SPDX-License-Identifier: MIT
/*
 * Load the UDP program and attach it: its four cgroup programs to the
 * cgroup v2 root, through bpf_links (always BPF_F_ALLOW_MULTI: the
 * cgroup's other programs stay as they are; nothing is pinned, so closing
 * the links, or the process ending, detaches them), and its tracepoint.
 */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "udp_object.h"
#include "udp_tracer.h"

/* Where cgroup v2 is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified
 * on a hybrid host): from mountinfo, so any layout works. */
static int cgroup2_root(char *path, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		char mnt[1024], root[1024];

		if (!sep || strncmp(sep + 3, "cgroup2 ", 8))
			continue;
		if (sscanf(line, "%*s %*s %*s %1023s %1023s", root, mnt) != 2)
			continue;
		snprintf(path, len, "%s", mnt);
		err = 0;
		break;
	}
	fclose(f);
	return err;
}

static void warn(struct te_udp_bpf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	te_warning_vadd(b->warning, sizeof(b->warning), fmt, ap);
	va_end(ap);
}

/*
 * Whether a flow can be taken out of the table in one command
 * (BPF_MAP_LOOKUP_AND_DELETE_ELEM, on hash maps since Linux 5.14; before,
 * only on queues and stacks: ENOTSUPP). Asked before the programs are
 * attached, while the table is empty: where the command exists, a key is
 * then not found.
 */
static bool takes_out_at_once(int flows_fd)
{
	struct udpevent_flow_key key = { 0 };
	struct udpevent_flow_value value;

	return !bpf_map_lookup_and_delete_elem(flows_fd, &key, &value) ||
	       errno == ENOENT;
}

static int set_rodata(struct bpf_object *obj, const char *name, const void *val,
		      size_t size)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	struct bpf_map *map;
	const void *init;
	size_t init_size;
	int id;

	id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) :
		   -1;
	if (id < 0)
		return te_fail(EINVAL, "the UDP program has no .rodata");
	bpf_object__for_each_map(map, obj)
		if (bpf_map__is_internal(map) &&
		    strstr(bpf_map__name(map), ".rodata"))
			break;
	if (!map)
		return te_fail(EINVAL, "the UDP program has no .rodata map");
	init = bpf_map__initial_value(map, &init_size);
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);
		char *copy;
		int err;

		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->size != size || vs->offset + size > init_size)
			return te_fail(EINVAL,
				       "UDP program variable %s: bad size",
				       name);
		copy = malloc(init_size);
		if (!copy)
			return te_fail(ENOMEM, "out of memory");
		memcpy(copy, init, init_size);
		memcpy(copy + vs->offset, val, size);
		err = bpf_map__set_initial_value(map, copy, init_size);
		free(copy);
		return err;
	}
	return te_fail(EINVAL, "the UDP program has no variable %s", name);
}

static int fill(struct bpf_object *obj, const char *name, const void *keys,
		size_t key_size, uint32_t n)
{
	int fd = bpf_object__find_map_fd_by_name(obj, name);
	uint8_t one = 1;

	for (uint32_t i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, (const char *)keys + i * key_size,
					&one, BPF_ANY))
			return te_fail(errno, "cannot fill the %s filter: %s",
				       name, strerror(errno));
	return 0;
}

static int set_filters(struct bpf_object *obj, const struct te_udp_filter *f)
{
	_Bool pids = f->n_pids > 0, ports = f->n_ports > 0;
	_Bool cgroups = f->n_cgroups > 0, netns = f->n_netns > 0;

	return set_rodata(obj, "filter_family", &f->family, sizeof(f->family)) ?:
		       set_rodata(obj, "filter_pids", &pids, 1)	      ?:
		       set_rodata(obj, "filter_ports", &ports, 1)     ?:
		       set_rodata(obj, "filter_cgroups", &cgroups, 1) ?:
		       set_rodata(obj, "filter_netns", &netns, 1);
}

static int fill_filters(struct bpf_object *obj, const struct te_udp_filter *f)
{
	return fill(obj, "pid_filter", f->pids, sizeof(f->pids[0]), f->n_pids) ?:
		       fill(obj, "port_filter", f->ports, sizeof(f->ports[0]), f->n_ports) ?:
		       fill(obj, "cgroup_filter", f->cgroups, sizeof(f->cgroups[0]), f->n_cgroups) ?:
		       fill(obj, "netns_filter", f->netns, sizeof(f->netns[0]),
			    f->n_netns);
}

static int attach(struct te_udp_bpf *b, const char *prog_name, bool cgroup)
{
	struct bpf_program *p =
		bpf_object__find_program_by_name(b->obj, prog_name);
	struct bpf_link *l;

	if (!p)
		return te_fail(ENOENT, "the UDP program has no %s", prog_name);
	l = cgroup ? bpf_program__attach_cgroup(p, b->cgroup_fd) :
		     bpf_program__attach(p);
	if (!l)
		return te_fail(errno, "cannot attach %s: %s%s", prog_name,
			       strerror(errno),
			       cgroup ?
				       " (cgroup/sock_release needs Linux 5.9+, bpf_link on cgroups 5.7+)" :
				       "");
	b->links[b->n_links++] = l;
	return 0;
}

/* The end of libbpf's log, where the verifier's verdict is: what fits of
 * it in an error message (TE_ERROR_LEN) after the text before it. */
static const char *log_tail(void)
{
	const char *log = te_libbpf_log();
	size_t n = strlen(log);

	return n > TE_ERROR_LEN / 2 ? log + n - TE_ERROR_LEN / 2 : log;
}

/* Open one build of the program, configured, and load it. */
static int load(struct te_udp_bpf *b, const struct udpevent_options *o,
		const struct te_udp_filter *f)
{
	struct bpf_map *flows;
	int err;

	b->obj = b->portable ? bpf_object__open_mem(te_udp_portable_object,
						    te_udp_portable_object_size,
						    NULL) :
			       bpf_object__open_mem(te_udp_object,
						    te_udp_object_size, NULL);
	if (!b->obj)
		return te_fail(errno, "cannot open the UDP BPF object: %s",
			       te_libbpf_log());
	flows = bpf_object__find_map_by_name(b->obj, "flows");
	err = set_filters(b->obj, f);
	if (!err && flows)
		err = bpf_map__set_max_entries(flows, o->max_flows);
	if (err)
		return te_fail(-err, "cannot configure the UDP program");
	err = bpf_object__load(b->obj);
	if (err)
		return te_fail(-err,
			       "the kernel refused the UDP program (%s build, %s; it loads on Linux 5.10 and later, see docs/udp.md \"Kernels\"): %s",
			       b->portable ? "portable" : "default",
			       strerror(-err), log_tail());
	return 0;
}

int te_udp_bpf_open(struct te_udp_bpf *b, const struct udpevent_options *o,
		    const struct te_udp_filter *f, void *ctx,
		    int (*on_release)(void *, void *, size_t))
{
	static const char *const cgroup_progs[] = {
		"udpevent_sock_create",
		"udpevent_sock_release",
		"udpevent_egress",
		"udpevent_ingress",
	};
	char root[1024];
	int err;

	memset(b, 0, sizeof(*b));
	b->cgroup_fd = b->flows_fd = b->counters_fd = -1;
	/* UDPEVENT_PORTABLE=1: the portable build only (its tests, on a
	 * kernel that loads both). */
	b->portable = getenv("UDPEVENT_PORTABLE") != NULL;
	te_libbpf_capture_begin();
	err = load(b, o, f);
	/* A kernel without bpf_rdonly_cast() (before 6.2): the portable
	 * build, as the TCP library does (loader.c). A missing privilege is
	 * not the build's fault: it stays the error. */
	if (err && err != -EPERM && !b->portable) {
		bpf_object__close(b->obj);
		b->obj = NULL;
		b->portable = true;
		te_libbpf_capture_begin();
		te_error_clear();
		err = load(b, o, f);
	}
	if (err)
		goto out;
	err = fill_filters(b->obj, f);
	if (err)
		goto out;
	b->flows_fd = bpf_object__find_map_fd_by_name(b->obj, "flows");
	b->read_then_delete = !takes_out_at_once(b->flows_fd);
	if (b->read_then_delete)
		warn(b,
		     "an idle flow's last report may miss a datagram counted between its read and its delete (this kernel has no BPF_MAP_LOOKUP_AND_DELETE_ELEM for hash maps, Linux 5.14+)");
	err = cgroup2_root(root, sizeof(root));
	if (err) {
		err = te_fail(-err,
			      "no cgroup v2 hierarchy is mounted: the UDP tracer attaches to its root (mount -t cgroup2 none /sys/fs/cgroup/unified)");
		goto out;
	}
	b->cgroup_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->cgroup_fd < 0) {
		err = te_fail(errno, "cannot open %s: %s", root,
			      strerror(errno));
		goto out;
	}
	for (unsigned int i = 0; i < 4 && !err; i++)
		err = attach(b, cgroup_progs[i], true);
	if (err)
		goto out;
	/* Its skb argument came in Linux 6.10: before, no drop counts. */
	if (attach(b, "udpevent_rcv_fail", false)) {
		warn(b,
		     "receive drops are not counted (rx_drops stays 0): the udp:udp_fail_queue_rcv_skb tracepoint has no skb argument before Linux 6.10 (%s)",
		     udpevent_last_error());
		te_error_clear();
	}
	b->counters_fd = bpf_object__find_map_fd_by_name(b->obj, "counters");
	b->rb = ring_buffer__new(bpf_object__find_map_fd_by_name(b->obj,
								 "events"),
				 on_release, ctx, NULL);
	if (!b->rb)
		err = te_fail(errno, "cannot map the UDP ring buffer: %s",
			      strerror(errno));
out:
	te_libbpf_capture_end();
	if (err) {
		te_udp_bpf_detach(b);
		te_udp_bpf_release(b);
	}
	return err;
}

void te_udp_bpf_detach(struct te_udp_bpf *b)
{
	while (b->n_links > 0)
		bpf_link__destroy(b->links[--b->n_links]);
}

void te_udp_bpf_release(struct te_udp_bpf *b)
{
	ring_buffer__free(b->rb);
	b->rb = NULL;
	bpf_object__close(b->obj);
	b->obj = NULL;
	if (b->cgroup_fd >= 0)
		close(b->cgroup_fd);
	b->cgroup_fd = -1;
}

uint64_t te_udp_bpf_counter(struct te_udp_bpf *b, unsigned int idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t sum = 0;

	if (b->counters_fd < 0 || ncpu <= 0)
		return 0;
	{
		uint64_t vals[ncpu];

		if (bpf_map_lookup_elem(b->counters_fd, &idx, vals))
			return 0;
		for (int i = 0; i < ncpu; i++)
			sum += vals[i];
	}
	return sum;
}
