// SPDX-License-Identifier: MIT
/*
 * The release hook: tcpevent_release (SEC("cgroup/sock_release"),
 * BPF_CGROUP_INET_SOCK_RELEASE, Linux 5.9+) attached to the root of the
 * cgroup v2 hierarchy, so that it runs at every inet socket's release
 * (the last close of its file, or its process's exit) in every cgroup
 * below, in the releasing process's context, and nowhere else: no system
 * call of any process pays for it.
 *
 * It is attached through a BPF link (BPF_LINK_CREATE), which the kernel
 * treats as BPF_F_ALLOW_MULTI: the programs others attached to the same
 * cgroup stay, and ours goes when the link is destroyed or its last fd
 * closed (a crash of the tracer's process included). No tracefs is needed;
 * loading a cgroup program needs CAP_NET_ADMIN (or CAP_SYS_ADMIN).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "privileges.h"
#include "tracer.h"

#define RELEASE_SECTION "cgroup/sock_release"

bool te_is_release_program(const struct bpf_program *prog)
{
	return !strcmp(bpf_program__section_name(prog), RELEASE_SECTION);
}

/*
 * Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a unified
 * host, /sys/fs/cgroup/unified on a hybrid one, elsewhere on others. The
 * mount of its root (mountinfo's 4th field "/"): a mount of a subtree
 * would leave the sockets of the rest unseen. In a cgroup namespace, that
 * root is the namespace's. false if there is none.
 */
static bool cgroup2_root(char *path, size_t size)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096], root[1024], dir[1024];
	const char *sep;
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mount-point options... - type */
		sep = strstr(line, " - cgroup2 ");
		if (!sep ||
		    sscanf(line, "%*s %*s %*s %1023s %1023s", root, dir) != 2 ||
		    strcmp(root, "/"))
			continue;
		found = snprintf(path, size, "%s", dir) < (int)size;
	}
	fclose(f);
	return found;
}

/* Attaching to a cgroup takes CAP_NET_ADMIN (or CAP_SYS_ADMIN). */
static bool may_load_cgroup_programs(void)
{
	return te_has_capability(CAP_NET_ADMIN) ||
	       te_has_capability(CAP_SYS_ADMIN);
}

bool te_release_plan(struct te_bpf *b)
{
	struct bpf_program *prog, *release = NULL;
	char root[1024];

	bpf_object__for_each_program(prog, b->obj)
		if (te_is_release_program(prog))
			release = prog;
	if (!release)
		return false;
	/* Without it the accept() hooks name the passive side (loader.c). */
	if (b->no_release || !may_load_cgroup_programs() ||
	    !cgroup2_root(root, sizeof(root))) {
		bpf_program__set_autoload(release, false);
		return false;
	}
	return true;
}

int te_release_attach(struct te_bpf *b, struct bpf_program *prog)
{
	struct bpf_map *hooked;
	struct bpf_link *link;
	__u32 zero = 0, one = 1;
	char root[1024];
	int fd, err;

	if (b->n_links == TE_MAX_LINKS)
		return te_fail(E2BIG,
			       "the BPF object has more than %d programs",
			       TE_MAX_LINKS);
	if (!cgroup2_root(root, sizeof(root)))
		return te_fail(ENOENT,
			       "cannot attach BPF program %s: no cgroup v2 hierarchy is mounted",
			       bpf_program__name(prog));
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return te_fail(errno,
			       "cannot attach BPF program %s: cannot open the cgroup v2 root %s: %s",
			       bpf_program__name(prog), root, strerror(errno));
	link = bpf_program__attach_cgroup(prog, fd);
	err = link ? 0 : (errno ? errno : EINVAL);
	close(fd);
	if (err)
		return te_fail(err,
			       "cannot attach BPF program %s to the cgroup v2 root %s (%s): %s",
			       bpf_program__name(prog), root, strerror(err),
			       te_libbpf_log());
	b->links[b->n_links++] = link;
	/* From now on a close may wait for its release (tcp.bpf.c). */
	hooked = bpf_object__find_map_by_name(b->obj, "release_hooked");
	if (hooked)
		bpf_map__update_elem(hooked, &zero, sizeof(zero), &one,
				     sizeof(one), BPF_ANY);
	return 0;
}
