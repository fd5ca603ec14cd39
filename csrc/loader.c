// SPDX-License-Identifier: MIT
/*
 * Loading the BPF program: the built-in object embedded in the library, or
 * a custom object file (docs/custom-programs.md); configure, load, attach,
 * and explain every failure in terms of its cause and remedy. The parts of
 * this work have files of their own (loader.h).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin_object.h"
#include "error.h"
#include "health.h"
#include "loader.h"
#include "privileges.h"

static int open_object(struct te_bpf *b, const char *path)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "tcpevent");
	struct stat st;

	if (!path) {
		b->obj = b->portable ?
				 bpf_object__open_mem(te_portable_object,
						      te_portable_object_size,
						      &oo) :
				 bpf_object__open_mem(te_builtin_object,
						      te_builtin_object_size,
						      &oo);
		if (!b->obj)
			return te_fail(errno,
				       "the built-in BPF object is unreadable (%s): %s",
				       strerror(errno), te_libbpf_log());
		return 0;
	}
	b->custom = true;
	if (stat(path, &st))
		return te_fail(errno, "cannot use BPF program file %s: %s",
			       path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return te_fail(EINVAL,
			       "BPF program path %s is not a regular file",
			       path);
	b->obj = bpf_object__open_file(path, NULL);
	if (!b->obj)
		return te_fail(errno ? errno : EINVAL,
			       "%s is not a valid BPF ELF object (%s); build one with clang -target bpf, see docs/custom-programs.md. %s",
			       path, strerror(errno), te_libbpf_log());
	return 0;
}

/* What works less well than it could, one cause after another. */
void te_bpf_warn(struct te_bpf *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	te_warning_vadd(b->warning, sizeof(b->warning), fmt, ap);
	va_end(ap);
}

/*
 * The sweep walks the socket table with bpf_for_each_map_elem() (Linux
 * 5.13+). Where the kernel lacks it, the rest loads without it: a close the
 * kernel never showed is then counted only when another socket takes its
 * memory (docs/kernels.md).
 */
static void leave_out_unsupported_sweep(struct te_bpf *b)
{
	struct bpf_program *prog;

	bpf_object__for_each_program(prog, b->obj) {
		if (!te_is_sweep_program(prog) ||
		    libbpf_probe_bpf_helper(BPF_PROG_TYPE_RAW_TRACEPOINT,
					    BPF_FUNC_for_each_map_elem,
					    NULL) != 0)
			continue;
		bpf_program__set_autoload(prog, false);
		te_bpf_warn(b,
			    "closes the kernel never showed are counted only when their socket's memory is reused: this kernel has no bpf_for_each_map_elem() (Linux 5.13+) for the sweep");
	}
}

/* The health programs' settings (health.c), where the program has them. */
static int configure_health(struct te_bpf *b, const struct tcpevent_options *o,
			    const struct te_filter *f)
{
	static const char *const names[] = {
		"emit_retransmit",    "emit_reset",	"emit_drop",
		"health_on",	      "drop_has_rx_sk", "reset_has_reason",
		"retransmit_has_err",
	};
	struct te_health_config c;
	char warn[sizeof(b->warning)];
	struct bpf_map *map;
	_Bool on[sizeof(names) / sizeof(names[0])];
	int err;

	te_health_plan(b->obj, o, f, &c, warn, sizeof(warn));
	if (*warn)
		te_bpf_warn(b, "%s", warn);
	map = bpf_object__find_map_by_name(b->obj, "health");
	if (map &&
	    bpf_map__set_max_entries(map, c.health_on ? o->max_sockets : 1))
		return te_fail(EINVAL, "cannot set the health table size");
	on[0] = c.emit_retransmit;
	on[1] = c.emit_reset;
	on[2] = c.emit_drop;
	on[3] = c.health_on;
	on[4] = c.drop_has_rx_sk;
	on[5] = c.reset_has_reason;
	on[6] = c.retransmit_has_err;
	err = te_rodata_write(b->obj, "retransmit_interval_ns",
			      &c.retransmit_interval_ns,
			      sizeof(c.retransmit_interval_ns));
	if (!err || err == -ENOENT)
		err = te_rodata_write(b->obj, "drop_reason_first",
				      &c.drop_reason_first,
				      sizeof(c.drop_reason_first));
	for (size_t i = 0;
	     (!err || err == -ENOENT) && i < sizeof(names) / sizeof(names[0]);
	     i++)
		err = te_rodata_write(b->obj, names[i], &on[i], sizeof(on[i]));
	return err == -ENOENT ? 0 : err;
}

static int configure(struct te_bpf *b, const struct tcpevent_options *o,
		     const struct te_filter *f)
{
	const struct {
		const char *name;
		_Bool on;
	} flags[] = {
		{ "filter_pids", f->n_pids > 0 },
		{ "filter_ports", f->n_ports > 0 },
		{ "filter_cgroups", f->n_cgroups > 0 },
		{ "filter_cgroup_subtree", f->cgroup_subtree },
		{ "filter_netns", f->n_netns > 0 },
		{ "emit_close", f->events & TCPEVENT_EVENT_CLOSE },
		{ "emit_connect", f->events & TCPEVENT_EVENT_CONNECT },
		{ "emit_accept", f->events & TCPEVENT_EVENT_ACCEPT },
	};
	struct bpf_map *events, *sockets, *born_before;
	struct bpf_program *prog;
	bool release;
	_Bool on;
	int err;

	/* Not loaded at all: not verified, not attached, no fd. With the
	 * release hook, the accept() hooks serve only the events that happen
	 * while a passive socket is open and must name its owner then:
	 * accept events, and the health events (a retransmission of a
	 * connection nobody has closed yet names its acceptor). */
	release = te_release_plan(b);
	if ((o->flags & TCPEVENT_OPT_NO_ACCEPT_HOOKS) ||
	    (release &&
	     !(f->events & (TCPEVENT_EVENT_ACCEPT | TCPEVENT_EVENT_HEALTH))))
		bpf_object__for_each_program(prog, b->obj)
			if (te_is_accept_program(prog))
				bpf_program__set_autoload(prog, false);
	leave_out_unsupported_sweep(b);

	events = bpf_object__find_map_by_name(b->obj, "events");
	if (!events || bpf_map__type(events) != BPF_MAP_TYPE_RINGBUF)
		return te_fail(EINVAL,
			       "the BPF program has no BPF_MAP_TYPE_RINGBUF map named \"events\" (see docs/custom-programs.md)");
	if (bpf_map__set_max_entries(events, o->ring_size))
		return te_fail(EINVAL, "cannot set the ring buffer size");
	sockets = bpf_object__find_map_by_name(b->obj, "sockets");
	if (sockets && bpf_map__set_max_entries(sockets, o->max_sockets))
		return te_fail(EINVAL, "cannot set the socket table size");
	err = te_check_record_layout(b->obj);
	if (!err)
		err = te_check_map_sizes(b->obj);
	/* Sized by us, so after the check: the census holds at most the
	 * sockets the table could (census.c). */
	born_before = bpf_object__find_map_by_name(b->obj, "born_before");
	if (!err && born_before &&
	    bpf_map__set_max_entries(born_before, o->max_sockets))
		err = te_fail(EINVAL, "cannot set the census size");
	if (!err)
		err = configure_health(b, o, f);
	if (err)
		return err;

	/* Kernel-side filters and the kinds of events to make, where the
	 * program has them (user space applies both to every record too). */
	err = te_rodata_write(b->obj, "filter_family", &f->family,
			      sizeof(f->family));
	for (size_t i = 0;
	     (!err || err == -ENOENT) && i < sizeof(flags) / sizeof(flags[0]);
	     i++) {
		on = flags[i].on;
		err = te_rodata_write(b->obj, flags[i].name, &on, sizeof(on));
	}
	return err == -ENOENT ? 0 : err;
}

static int explain_load_error(struct te_bpf *b, int err)
{
	if (err == -EPERM || err == -EACCES) {
		if (te_check_privileges())
			return -EPERM;
		/* Has the capabilities: the verifier, or a policy, said no. */
		return te_fail(-err,
			       "the kernel refused to load the BPF program (%s): %s%s",
			       strerror(-err), te_libbpf_log(),
			       b->custom ?
				       "" :
				       " (lockdown or a security module may forbid BPF here)");
	}
	return te_fail(-err, "loading the BPF program failed (%s): %s",
		       strerror(-err), te_libbpf_log());
}

static int fill_filter_maps(struct te_bpf *b, const struct te_filter *f)
{
	struct bpf_map *pids, *ports, *map;
	__u8 one = 1;

	pids = bpf_object__find_map_by_name(b->obj, "pid_filter");
	for (uint32_t i = 0; pids && i < f->n_pids; i++)
		if (bpf_map__update_elem(pids, &f->pids[i], sizeof(f->pids[i]),
					 &one, sizeof(one), BPF_ANY))
			return te_fail(errno, "cannot fill the pid filter: %s",
				       strerror(errno));
	ports = bpf_object__find_map_by_name(b->obj, "port_filter");
	for (uint32_t i = 0; ports && i < f->n_ports; i++)
		if (bpf_map__update_elem(ports, &f->ports[i],
					 sizeof(f->ports[i]), &one, sizeof(one),
					 BPF_ANY))
			return te_fail(errno, "cannot fill the port filter: %s",
				       strerror(errno));
	map = bpf_object__find_map_by_name(b->obj, "cgroup_filter");
	for (uint32_t i = 0; map && i < f->n_cgroups; i++)
		if (bpf_map__update_elem(map, &f->cgroups[i],
					 sizeof(f->cgroups[i]), &one,
					 sizeof(one), BPF_ANY))
			return te_fail(errno,
				       "cannot fill the cgroup filter: %s",
				       strerror(errno));
	map = bpf_object__find_map_by_name(b->obj, "netns_filter");
	for (uint32_t i = 0; map && i < f->n_netns; i++)
		if (bpf_map__update_elem(map, &f->netns[i], sizeof(f->netns[i]),
					 &one, sizeof(one), BPF_ANY))
			return te_fail(errno,
				       "cannot fill the network namespace filter: %s",
				       strerror(errno));
	return 0;
}

/* Share the built-in program's poller_idle flag (in its .bss) with the
 * poller. A program without the flag wakes the poller its own way. */
static void map_poller_idle(struct te_bpf *b)
{
	b->poller_idle = te_bss_var(b->obj, "poller_idle", sizeof(uint32_t),
				    &b->bss, &b->bss_len);
}

struct load_args {
	struct te_bpf *b;
	const struct tcpevent_options *opts;
	const struct te_filter *f;
};

/* Open, configure and load (verify) the object, without attaching it. */
static int load_object(void *arg)
{
	struct load_args *a = arg;
	int err;

	err = open_object(a->b, a->opts->program);
	if (!err)
		err = configure(a->b, a->opts, a->f);
	if (!err) {
		err = bpf_object__load(a->b->obj);
		if (err)
			err = explain_load_error(a->b, err);
	}
	return err;
}

int te_bpf_open(struct te_bpf *b, const struct tcpevent_options *opts,
		const struct te_filter *f,
		int (*on_record)(void *ctx, void *data, size_t size), void *ctx)
{
	struct load_args args = { b, opts, f };
	struct bpf_program *prog;
	struct bpf_map *counters;
	int err;

	memset(b, 0, sizeof(*b));
	b->ring_fd = -1;
	b->counters_fd = -1;
	b->watched_fd = -1;
	b->sweep_fd = -1;
	te_libbpf_capture_begin();
	err = te_check_privileges();
	/* A custom object is tried in a child first: see forked_trial.c. */
	if (!err && opts->program)
		err = te_trial(load_object, &args, opts->program);
	if (!err)
		err = load_object(&args);
	/* A kernel without bpf_rdonly_cast() (before 6.2): the portable build. */
	if (err && err != -EPERM && !opts->program) {
		bpf_object__close(b->obj);
		b->obj = NULL;
		b->portable = true;
		b->warning[0] = '\0';
		te_libbpf_capture_begin();
		te_error_clear();
		err = load_object(&args);
	}
	/* A kernel without cgroup/sock_release (before 5.9): without it, the
	 * accept() hooks name the passive side (cgroup_link.c). */
	if (err && err != -EPERM && !opts->program) {
		bpf_object__close(b->obj);
		b->obj = NULL;
		b->no_release = true;
		b->warning[0] = '\0';
		te_libbpf_capture_begin();
		te_error_clear();
		err = load_object(&args);
	}
	if (!err)
		err = fill_filter_maps(b, f);
	if (!err)
		err = te_bpf_attach_all(b);
	if (!err) {
		map_poller_idle(b);
		b->ring_fd = bpf_object__find_map_fd_by_name(b->obj, "events");
		b->rb = ring_buffer__new(b->ring_fd, on_record, ctx, NULL);
		if (!b->rb)
			err = te_fail(errno, "cannot open the ring buffer: %s",
				      strerror(errno));
	}
	if (!err) {
		/* Kept past te_bpf_close() so that stats stay readable (and
		 * race-free against a concurrent close) until the handle is
		 * freed. */
		counters = bpf_object__find_map_by_name(b->obj, "counters");
		if (counters &&
		    bpf_map__type(counters) == BPF_MAP_TYPE_PERCPU_ARRAY &&
		    bpf_map__value_size(counters) == sizeof(__u64))
			b->counters_fd = fcntl(bpf_map__fd(counters),
					       F_DUPFD_CLOEXEC, 3);
		bpf_object__for_each_program(prog, b->obj)
			if (b->n_prog_fds < TE_MAX_LINKS &&
			    bpf_program__fd(prog) >= 0 &&
			    !te_is_nested_program(prog))
				b->prog_fds[b->n_prog_fds++] =
					fcntl(bpf_program__fd(prog),
					      F_DUPFD_CLOEXEC, 3);
	}
	te_libbpf_capture_end();
	if (err)
		te_bpf_close(b);
	return err;
}

void te_bpf_close(struct te_bpf *b)
{
	ring_buffer__free(b->rb);
	b->rb = NULL;
	if (b->bss)
		munmap(b->bss, b->bss_len);
	b->bss = NULL;
	b->poller_idle = NULL;
	while (b->n_links > 0)
		bpf_link__destroy(b->links[--b->n_links]);
	b->standby = NULL;
	b->sweep_fd = -1;
	bpf_object__close(b->obj);
	b->obj = NULL;
	b->ring_fd = -1;
}

void te_bpf_disown(struct te_bpf *b)
{
	/* Destroying a perf-event link would disable the event it shares
	 * with the parent; disconnected, it only closes our fd. */
	for (int i = 0; i < b->n_links; i++)
		bpf_link__disconnect(b->links[i]);
}

void te_bpf_release(struct te_bpf *b)
{
	if (b->counters_fd >= 0)
		close(b->counters_fd);
	b->counters_fd = -1;
	while (b->n_prog_fds > 0)
		close(b->prog_fds[--b->n_prog_fds]);
}
