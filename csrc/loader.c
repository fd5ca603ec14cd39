// SPDX-License-Identifier: MIT
/*
 * Loading the BPF program: the built-in object embedded in the library, or
 * a custom object file (docs/custom-programs.md); configure, load, attach,
 * and explain every failure in terms of its cause and remedy.
 */
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "builtin_object.h"
#include "error.h"
#include "tracer.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

#define TRACEFS "/sys/kernel/tracing"
#define PRIV_REMEDY                                                         \
	"run it as root (sudo), or grant the capabilities: "                \
	"sudo setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep <program>"

static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

/* Say which capability is missing before the kernel says only EPERM. */
static int check_privileges(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2] = {};
	bool bpf, perfmon;

	if (syscall(SYS_capget, &hdr, data))
		return 0;	/* cannot tell: let the kernel decide */
	if (has_cap(data, CAP_SYS_ADMIN))
		return 0;
	bpf = has_cap(data, CAP_BPF);
	perfmon = has_cap(data, CAP_PERFMON);
	if (bpf && perfmon)
		return 0;
	return te_fail(EPERM,
		       "permission denied: missing capability %s%s%s (loading a tracing BPF program needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN); %s",
		       bpf ? "" : "CAP_BPF", !bpf && !perfmon ? " and " : "",
		       perfmon ? "" : "CAP_PERFMON", PRIV_REMEDY);
}

static int open_object(struct te_bpf *b, const char *path)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = "tcpevent");
	struct stat st;

	if (!path) {
		b->obj = b->portable ?
			bpf_object__open_mem(te_portable_object,
					     te_portable_object_size, &oo) :
			bpf_object__open_mem(te_builtin_object,
					     te_builtin_object_size, &oo);
		if (!b->obj)
			return te_fail(errno, "the built-in BPF object is unreadable (%s): %s",
				       strerror(errno), te_libbpf_log());
		return 0;
	}
	b->custom = true;
	if (stat(path, &st))
		return te_fail(errno, "cannot use BPF program file %s: %s",
			       path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return te_fail(EINVAL, "BPF program path %s is not a regular file",
			       path);
	b->obj = bpf_object__open_file(path, NULL);
	if (!b->obj)
		return te_fail(errno ? errno : EINVAL,
			       "%s is not a valid BPF ELF object (%s); build one with clang -target bpf, see docs/custom-programs.md. %s",
			       path, strerror(errno), te_libbpf_log());
	return 0;
}

/* Where a global of the program lives: the internal map of its section
 * (".rodata", ".bss") and its offset there; -ENOENT if it has none. */
static int find_global(struct bpf_object *obj, const char *section,
		       const char *name, size_t size, struct bpf_map **mapp,
		       size_t *offset)
{
	struct btf *btf = bpf_object__btf(obj);
	const struct btf_var_secinfo *vs;
	const struct btf_type *sec;
	struct bpf_map *map;
	int id;

	if (!btf)
		return -ENOENT;
	id = btf__find_by_name_kind(btf, section, BTF_KIND_DATASEC);
	if (id < 0)
		return -ENOENT;
	bpf_object__for_each_map(map, obj)
		if (bpf_map__is_internal(map) &&
		    strstr(bpf_map__name(map), section))
			break;
	if (!map)
		return -ENOENT;
	sec = btf__type_by_id(btf, id);
	vs = btf_var_secinfos(sec);
	for (int i = 0; i < btf_vlen(sec); i++, vs++) {
		const struct btf_type *var = btf__type_by_id(btf, vs->type);

		if (strcmp(btf__name_by_offset(btf, var->name_off), name))
			continue;
		if (vs->size != size)
			return te_fail(EINVAL, "program variable %s has size %u, expected %zu",
				       name, vs->size, size);
		*mapp = map;
		*offset = vs->offset;
		return 0;
	}
	return -ENOENT;
}

/* Read or set a `const volatile` global of the program, if it has one;
 * -ENOENT if it has not. */
static int rodata_var(struct bpf_object *obj, const char *name, void *val,
		      size_t size, bool write)
{
	struct bpf_map *map;
	const void *init;
	size_t init_size, offset;
	int err;

	err = find_global(obj, ".rodata", name, size, &map, &offset);
	if (err)
		return err;
	init = bpf_map__initial_value(map, &init_size);
	if (!init || offset + size > init_size)
		return te_fail(EINVAL, "program variable %s is out of its section", name);
	if (!write) {
		memcpy(val, (const char *)init + offset, size);
		return 0;
	} else {
		char copy[init_size];

		memcpy(copy, init, init_size);
		memcpy(copy + offset, val, size);
		return bpf_map__set_initial_value(map, copy, init_size);
	}
}

/* Share the built-in program's poller_idle flag (in its .bss) with the
 * poller: map the loaded .bss (libbpf 1.1 maps it only for skeletons). A
 * program without the flag wakes the poller its own way. */
static void map_poller_idle(struct te_bpf *b)
{
	size_t offset, len;
	struct bpf_map *map;
	void *mem;

	if (find_global(b->obj, ".bss", "poller_idle", sizeof(uint32_t), &map,
			&offset))
		return;
	len = bpf_map__value_size(map);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED,
		   bpf_map__fd(map), 0);
	if (mem == MAP_FAILED || offset + sizeof(uint32_t) > len) {
		if (mem != MAP_FAILED)
			munmap(mem, len);
		return;
	}
	b->bss = mem;
	b->bss_len = len;
	b->poller_idle = (_Atomic uint32_t *)((char *)mem + offset);
}

static int check_record_layout(struct bpf_object *obj)
{
	__u32 size;

	if (rodata_var(obj, "tcpevent_record_size", &size, sizeof(size), false))
		return 0;	/* no marker: records are checked one by one */
	if (size != sizeof(struct tcpevent_record) &&
	    size != TCPEVENT_RECORD_V1_SIZE && size != TCPEVENT_RECORD_V2_SIZE)
		return te_fail(EINVAL,
			       "the program was built with a struct tcpevent_record of %u bytes; this library reads %zu (or the earlier layouts' %d and %d): rebuild it with this version's tcpevent_record.h",
			       size, sizeof(struct tcpevent_record),
			       TCPEVENT_RECORD_V1_SIZE, TCPEVENT_RECORD_V2_SIZE);
	return 0;
}

/*
 * A map the tracer does not size itself (all but "events" and "sockets")
 * gets its size from the object. A corrupted or hostile object can ask for
 * tens of GiB there (a flipped bit in max_entries), and the kernel then
 * tries to allocate it, per-CPU arrays element by element, until the host
 * runs out of memory. Such objects are refused before load.
 */
#define TE_MAX_MAP_BYTES (1ULL << 30)

static bool is_per_cpu(enum bpf_map_type type)
{
	return type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
	       type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

static int check_map_sizes(struct bpf_object *obj)
{
	int ncpu = libbpf_num_possible_cpus();
	unsigned long long bytes;
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj) {
		const char *name = bpf_map__name(map);

		if (!strcmp(name, "events") || !strcmp(name, "sockets"))
			continue;
		/* Per entry: key and value, and ~64 bytes of kernel overhead. */
		bytes = (unsigned long long)bpf_map__max_entries(map) *
			(bpf_map__key_size(map) + bpf_map__value_size(map) +
			 64ULL);
		if (is_per_cpu(bpf_map__type(map)) && ncpu > 0)
			bytes *= (unsigned long long)ncpu;
		if (bytes > TE_MAX_MAP_BYTES)
			return te_fail(E2BIG,
				       "the BPF object's map \"%s\" asks for %u entries of %u-byte values, about %llu MiB: over the %llu MiB allowed for a map the tracer does not size itself (a corrupted object?)",
				       name, bpf_map__max_entries(map),
				       bpf_map__value_size(map), bytes >> 20,
				       TE_MAX_MAP_BYTES >> 20);
	}
	return 0;
}

static bool is_accept_program(const struct bpf_program *prog)
{
	return !strncmp(bpf_program__section_name(prog),
			"tracepoint/syscalls/sys_exit_accept", 35);
}

/* What works less well than it could, one cause after another. */
static void add_warning(struct te_bpf *b, const char *fmt, ...)
{
	size_t len = strlen(b->warning);
	va_list ap;

	if (len && len + 2 < sizeof(b->warning)) {
		strcpy(b->warning + len, "; ");
		len += 2;
	}
	va_start(ap, fmt);
	vsnprintf(b->warning + len, sizeof(b->warning) - len, fmt, ap);
	va_end(ap);
}

/* tcpevent_sweep (tcpevent.bpf.c) is not for a hook: it is run from here. */
static bool is_sweep_program(const struct bpf_program *prog)
{
	return !strcmp(bpf_program__name(prog), "tcpevent_sweep");
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
		if (!is_sweep_program(prog) ||
		    libbpf_probe_bpf_helper(BPF_PROG_TYPE_RAW_TRACEPOINT,
					    BPF_FUNC_for_each_map_elem,
					    NULL) != 0)
			continue;
		bpf_program__set_autoload(prog, false);
		add_warning(b, "closes the kernel never showed are counted only when their socket's memory is reused: this kernel has no bpf_for_each_map_elem() (Linux 5.13+) for the sweep");
	}
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
	struct bpf_map *events, *sockets;
	struct bpf_program *prog;
	bool release;
	_Bool on;
	int err;

	/* Not loaded at all: not verified, not attached, no fd. With the
	 * release hook, the accept() hooks serve only accept events. */
	release = te_release_plan(b);
	if ((o->flags & TCPEVENT_OPT_NO_ACCEPT_HOOKS) ||
	    (release && !(f->events & TCPEVENT_EVENT_ACCEPT)))
		bpf_object__for_each_program(prog, b->obj)
			if (is_accept_program(prog))
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
	err = check_record_layout(b->obj);
	if (!err)
		err = check_map_sizes(b->obj);
	if (err)
		return err;

	/* Kernel-side filters and the kinds of events to make, where the
	 * program has them (user space applies both to every record too). */
	err = rodata_var(b->obj, "filter_family", (void *)&f->family,
			 sizeof(f->family), true);
	for (size_t i = 0; (!err || err == -ENOENT) &&
			   i < sizeof(flags) / sizeof(flags[0]); i++) {
		on = flags[i].on;
		err = rodata_var(b->obj, flags[i].name, &on, sizeof(on), true);
	}
	return err == -ENOENT ? 0 : err;
}

static int explain_load_error(struct te_bpf *b, int err)
{
	if (err == -EPERM || err == -EACCES) {
		if (check_privileges())
			return -EPERM;
		/* Has the capabilities: the verifier, or a policy, said no. */
		return te_fail(err,
			       "the kernel refused to load the BPF program (%s): %s%s",
			       strerror(-err), te_libbpf_log(),
			       b->custom ? "" :
			       " (lockdown or a security module may forbid BPF here)");
	}
	return te_fail(err, "loading the BPF program failed (%s): %s",
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
			return te_fail(errno, "cannot fill the cgroup filter: %s",
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

/*
 * Classic tracepoints are attached by their id, read from tracefs. Where
 * nobody mounted it (systemd normally does), mount it at its standard place
 * unless TCPEVENT_NO_TRACEFS_MOUNT is set.
 */
static bool ensure_tracefs(void)
{
	if (!access(TRACEFS "/events", F_OK) ||
	    !access("/sys/kernel/debug/tracing/events", F_OK))
		return true;
	if (getenv("TCPEVENT_NO_TRACEFS_MOUNT"))
		return false;
	return !mount("tracefs", TRACEFS, "tracefs",
		      MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

/* The built-in program's stand-in for nested hits (tcpevent.bpf.c): when
 * it is skipped, nothing is lost, so its skips are not counted. */
static bool is_nested_program(const struct bpf_program *prog)
{
	return !strcmp(bpf_program__name(prog), "tcpevent_state_nested");
}

/* Whether this process may read a classic tracepoint's id in tracefs. */
static bool tracefs_id_readable(const struct bpf_program *prog)
{
	const char *tp = strchr(bpf_program__section_name(prog), '/');
	char path[256];

	if (!tp)
		return false;
	snprintf(path, sizeof(path), TRACEFS "/events%s/id", tp);
	if (!faccessat(AT_FDCWD, path, R_OK, AT_EACCESS))
		return true;
	snprintf(path, sizeof(path), "/sys/kernel/debug/tracing/events%s/id", tp);
	return !faccessat(AT_FDCWD, path, R_OK, AT_EACCESS);
}

/*
 * A classic tracepoint is attached through a perf event. Debian's and
 * Ubuntu's kernels add a level 3 to kernel.perf_event_paranoid (their
 * default) at which only CAP_SYS_ADMIN may open one: CAP_PERFMON is not
 * enough there.
 */
static bool perf_events_locked(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[2] = {};
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "re");
	int level = 0;

	if (!f)
		return false;
	if (fscanf(f, "%d", &level) != 1)
		level = 0;
	fclose(f);
	if (level <= 2 || syscall(SYS_capget, &hdr, data))
		return false;
	return !has_cap(data, CAP_SYS_ADMIN);
}

static int attach_program(struct te_bpf *b, struct bpf_program *prog)
{
	struct bpf_link *link;
	int err;

	if (b->n_links == TE_MAX_LINKS)
		return te_fail(E2BIG, "the BPF object has more than %d programs",
			       TE_MAX_LINKS);
	link = bpf_program__attach(prog);
	if (!link && errno == ENOENT && ensure_tracefs())
		link = bpf_program__attach(prog);
	if (link) {
		b->links[b->n_links++] = link;
		return 0;
	}
	err = errno ? errno : EINVAL;
	if (err == ENOENT)
		return te_fail(err,
			       "cannot attach BPF program %s to %s: no such hook in this kernel, or tracefs is not mounted at " TRACEFS,
			       bpf_program__name(prog),
			       bpf_program__section_name(prog));
	if ((err == EACCES || err == EPERM) && tracefs_id_readable(prog) &&
	    perf_events_locked())
		return te_fail(err,
			       "cannot attach BPF program %s to %s (%s): kernel.perf_event_paranoid is above 2, and this kernel (as Debian's and Ubuntu's do) then lets only CAP_SYS_ADMIN open the perf event a classic tracepoint needs; run it as root, add CAP_SYS_ADMIN, or allow it: sudo sysctl kernel.perf_event_paranoid=2",
			       bpf_program__name(prog),
			       bpf_program__section_name(prog), strerror(err));
	if (err == EACCES || err == EPERM)
		return te_fail(err,
			       "cannot attach BPF program %s to %s (%s): classic tracepoints need read access to tracefs (CAP_DAC_READ_SEARCH); " PRIV_REMEDY,
			       bpf_program__name(prog),
			       bpf_program__section_name(prog), strerror(err));
	return te_fail(err, "cannot attach BPF program %s to %s: %s. %s",
		       bpf_program__name(prog),
		       bpf_program__section_name(prog), strerror(err),
		       te_libbpf_log());
}

/*
 * The nested-hit program costs a second program run on every tracepoint hit
 * (the kernel's dispatch, ~3% of a no-TIME_WAIT churn), and it only helps
 * where the kernel skips the main program because a softirq interrupted it
 * on its CPU. That is rare (docs/reliability.md), so it waits in standby
 * and is attached the first time the kernel reports a skip; skips before
 * that are counted as missed.
 */
static void hold_in_standby(struct te_bpf *b, struct bpf_program *nested)
{
	struct bpf_program *main_prog =
		bpf_object__find_program_by_name(b->obj, "tcpevent_state");

	b->standby = nested;
	b->watched_fd = main_prog ? bpf_program__fd(main_prog) : -1;
}

static void watch_skips(struct te_bpf *b)
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (!b->standby ||
	    bpf_obj_get_info_by_fd(b->watched_fd, &info, &len) ||
	    !info.recursion_misses)
		return;
	/* Once: if it cannot be attached, the skips stay counted. */
	if (attach_program(b, b->standby))
		te_error_clear();
	b->standby = NULL;
}

/*
 * A sweep walks every bucket of the socket table: ~1 ms for the default
 * 65,536. Larger tables are swept less often, so that it stays near 0.1%
 * of a CPU whatever max_sockets is.
 */
static void plan_sweeps(struct te_bpf *b, struct bpf_program *sweep)
{
	struct bpf_map *sockets =
		bpf_object__find_map_by_name(b->obj, "sockets");

	b->sweep_fd = bpf_program__fd(sweep);
	b->sweep_every = sockets ? bpf_map__max_entries(sockets) / 65536 : 1;
	if (!b->sweep_every)
		b->sweep_every = 1;
}

void te_bpf_tick(struct te_bpf *b)
{
	LIBBPF_OPTS(bpf_test_run_opts, run);

	watch_skips(b);
	if (b->sweep_fd >= 0 && ++b->ticks >= b->sweep_every) {
		b->ticks = 0;
		bpf_prog_test_run_opts(b->sweep_fd, &run);
	}
}

static int attach_all(struct te_bpf *b)
{
	struct bpf_program *prog;
	bool accept_warned = false;
	int err;

	bpf_object__for_each_program(prog, b->obj) {
		if (!bpf_program__autoload(prog))
			continue;	/* left out on purpose (configure()) */
		if (is_sweep_program(prog)) {
			plan_sweeps(b, prog);
			continue;
		}
		if (te_is_release_program(prog)) {
			err = te_release_attach(b, prog);
			/* The built-in program works without it; a passive
			 * socket reset before its close is then ownerless. */
			if (err && !b->custom) {
				add_warning(b, "the owner of a passive connection reset before its process closed it is unknown: %s",
					    tcpevent_last_error());
				te_error_clear();
			} else if (err) {
				return err;
			}
			continue;
		}
		if (is_nested_program(prog)) {
			hold_in_standby(b, prog);
			if (b->watched_fd >= 0)
				continue;
			b->standby = NULL;	/* nothing to watch: attach now */
		}
		err = attach_program(b, prog);
		/* The built-in program still works without the accept()
		 * hooks; it only attributes fewer passive sockets. */
		if (err && !b->custom && is_accept_program(prog)) {
			/* Both hooks fail alike: one warning says it. */
			if (!accept_warned)
				add_warning(b, "passive-side attribution at accept() is off: %s",
					    tcpevent_last_error());
			accept_warned = true;
			te_error_clear();
			continue;
		}
		if (err)
			return err;
	}
	if (!b->n_links)
		return te_fail(EINVAL, "the BPF object has no program to attach");
	return 0;
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
	err = check_privileges();
	/* A custom object is tried in a child first: see trial.c. */
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
		err = attach_all(b);
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
		if (counters && bpf_map__type(counters) ==
				BPF_MAP_TYPE_PERCPU_ARRAY &&
		    bpf_map__value_size(counters) == sizeof(__u64))
			b->counters_fd = fcntl(bpf_map__fd(counters),
					       F_DUPFD_CLOEXEC, 3);
		bpf_object__for_each_program(prog, b->obj)
			if (b->n_prog_fds < TE_MAX_LINKS &&
			    bpf_program__fd(prog) >= 0 && !is_nested_program(prog))
				b->prog_fds[b->n_prog_fds++] = fcntl(
					bpf_program__fd(prog), F_DUPFD_CLOEXEC, 3);
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

void te_bpf_kernel_counts(struct te_bpf *b, struct te_kernel_counts *c)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t nested = 0, unseen = 0;
	uint64_t *sum[] = { &c->ringbuf_full, &c->untracked, &nested, &unseen };

	memset(c, 0, sizeof(*c));
	if (b->counters_fd >= 0 && ncpu > 0) {
		for (__u32 key = 0; key < TCPEVENT_CNT_MAX; key++) {
			__u64 vals[ncpu];

			if (bpf_map_lookup_elem(b->counters_fd, &key, vals))
				continue;	/* a custom array may be shorter */
			for (int cpu = 0; cpu < ncpu; cpu++)
				*sum[key] += vals[cpu];
		}
	}
	/* The kernel skips a program that is already running on this CPU
	 * (a softirq interrupting it) and counts those skips; the ones the
	 * nested-hit program handled were not lost. */
	for (int i = 0; i < b->n_prog_fds; i++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(b->prog_fds[i], &info, &len))
			c->missed += info.recursion_misses;
	}
	c->missed = (c->missed > nested ? c->missed - nested : 0) + unseen;
}
