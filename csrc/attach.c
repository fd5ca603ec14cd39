// SPDX-License-Identifier: MIT
/*
 * Attaching a loaded object's programs to their hooks, and explaining a
 * refusal in terms of its cause and remedy. Only the built-in program's
 * accept() hooks may fail and leave the rest attached: without them it
 * still works, and attributes fewer passive sockets.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "error.h"
#include "health.h"
#include "loader.h"
#include "privileges.h"

int te_bpf_attach_program(struct te_bpf *b, struct bpf_program *prog)
{
	const char *section = bpf_program__section_name(prog);
	const char *name = bpf_program__name(prog);
	struct bpf_link *link;
	int err;

	if (b->n_links == TE_MAX_LINKS)
		return te_fail(E2BIG,
			       "the BPF object has more than %d programs",
			       TE_MAX_LINKS);
	link = bpf_program__attach(prog);
	/* a classic tracepoint's id is read in tracefs: mount it, once more */
	if (!link && errno == ENOENT && te_ensure_tracefs())
		link = bpf_program__attach(prog);
	if (link) {
		b->links[b->n_links++] = link;
		return 0;
	}
	err = errno ? errno : EINVAL;
	if (err == ENOENT)
		return te_fail(err,
			       "cannot attach BPF program %s to %s: no such hook in this kernel, or tracefs is not mounted at " TE_TRACEFS,
			       name, section);
	if ((err == EACCES || err == EPERM) &&
	    te_tracefs_id_readable(section) && te_perf_events_locked())
		return te_fail(err,
			       "cannot attach BPF program %s to %s (%s): kernel.perf_event_paranoid is above 2, and this kernel (as Debian's and Ubuntu's do) then lets only CAP_SYS_ADMIN open the perf event a classic tracepoint needs; run it as root, add CAP_SYS_ADMIN, or allow it: sudo sysctl kernel.perf_event_paranoid=2",
			       name, section, strerror(err));
	if (err == EACCES || err == EPERM)
		return te_fail(err,
			       "cannot attach BPF program %s to %s (%s): classic tracepoints need read access to tracefs (CAP_DAC_READ_SEARCH); " TE_PRIV_REMEDY,
			       name, section, strerror(err));
	return te_fail(err, "cannot attach BPF program %s to %s: %s. %s", name,
		       section, strerror(err), te_libbpf_log());
}

/* The cgroup_mkdir hook (bpf/tcp_cgroup_names.bpf.c): without it, only
 * the cgroups found when the tracer opened are named by the library. */
static bool is_names_program(const struct bpf_program *prog)
{
	return !strcmp(bpf_program__name(prog), "tcpevent_cgroup_mkdir");
}

int te_bpf_attach_all(struct te_bpf *b)
{
	struct bpf_program *prog, *census = NULL;
	bool accept_warned = false, released = false;
	int err;

	bpf_object__for_each_program(prog, b->obj) {
		if (!bpf_program__autoload(prog))
			continue; /* left out on purpose (loader.c) */
		if (te_is_sweep_program(prog)) {
			te_bpf_plan_sweeps(b, prog);
			continue;
		}
		if (te_is_census_program(prog)) {
			census = prog; /* once every hook is on */
			continue;
		}
		if (te_is_release_program(prog)) {
			err = te_release_attach(b, prog);
			released = !err;
			/* The built-in program works without it; a passive
			 * socket reset before its close is then ownerless. */
			if (err && !b->custom) {
				te_bpf_warn(b,
					    "the owner of a passive connection reset before its process closed it is unknown: %s",
					    tcpevent_last_error());
				te_error_clear();
			} else if (err) {
				return err;
			}
			continue;
		}
		if (te_is_nested_program(prog)) {
			te_bpf_hold_in_standby(b, prog);
			if (b->watched_fd >= 0)
				continue;
			b->standby = NULL; /* nothing to watch: attach now */
		}
		err = te_bpf_attach_program(b, prog);
		/* A health program that cannot attach: its kind is off. */
		if (err && !b->custom && te_health_program(prog)) {
			te_bpf_warn(b, "%s", tcpevent_last_error());
			te_error_clear();
			continue;
		}
		if (err && !b->custom && is_names_program(prog)) {
			te_bpf_warn(b,
				    "cgroups made from now on are named only while they exist: %s",
				    tcpevent_last_error());
			te_error_clear();
			continue;
		}
		if (err && !b->custom && te_is_accept_program(prog)) {
			/* Both hooks fail alike: one warning says it. */
			if (!accept_warned)
				te_bpf_warn(b,
					    "passive-side attribution at accept() is off: %s",
					    tcpevent_last_error());
			accept_warned = true;
			te_error_clear();
			continue;
		}
		if (err)
			return err;
	}
	if (!b->n_links)
		return te_fail(EINVAL,
			       "the BPF object has no program to attach");
	/* Only the release hook counts what the census tells apart. */
	if (census)
		te_bpf_take_census(b, census, released);
	return 0;
}
