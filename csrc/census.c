// SPDX-License-Identifier: MIT
/*
 * The census (bpf/tcp_census.bpf.c): once every hook is attached, one pass
 * of the iter/task_file program over every open file notes the passive TCP
 * sockets that exist now. From then on a passive socket released with no
 * entry that is not in the census is one whose birth the kernel never
 * showed the program, and its lost close is counted in stats.missed
 * (docs/reliability.md). Anything short of a complete census leaves that
 * count off, and says so: a socket missing from it would be counted
 * wrongly. The same pass gives each listener opened before the tracer an
 * origin (its first holder), with or without the release hook.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "loader.h"

/* One pass of the iterator: it writes nothing, so read() ends it. */
static int run_iterator(struct bpf_program *prog)
{
	struct bpf_link *link = bpf_program__attach_iter(prog, NULL);
	char buf[64];
	ssize_t n;
	int fd, err = 0;

	if (!link)
		return errno ? -errno : -EINVAL;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0) {
		err = -errno;
		bpf_link__destroy(link);
		return err;
	}
	do
		n = read(fd, buf, sizeof(buf));
	while (n > 0 || (n < 0 && errno == EINTR));
	if (n < 0)
		err = -errno;
	close(fd);
	bpf_link__destroy(link);
	return err;
}

/* Every warning of a census that cannot count says what is lost first. */
#define NOT_COUNTED \
	"passive connections whose birth the kernel never showed are not counted in missed: "

void te_bpf_take_census(struct te_bpf *b, struct bpf_program *prog,
			bool counting)
{
	struct bpf_map *census = bpf_object__find_map_by_name(b->obj, "census");
	__u32 slot = TCPEVENT_CENSUS_INCOMPLETE, incomplete = 0, one = 1;
	int err;

	if (!census) {
		if (counting)
			te_bpf_warn(b, "%s",
				    NOT_COUNTED
				    "the program has no \"census\" map");
		return;
	}
	err = run_iterator(prog);
	if (err) {
		te_bpf_warn(b,
			    "%sthe census of open sockets did not run (%s): listeners opened before the tracer give their connections no origin",
			    counting ? NOT_COUNTED : "", strerror(-err));
		return;
	}
	if (!counting)
		return;
	bpf_map__lookup_elem(census, &slot, sizeof(slot), &incomplete,
			     sizeof(incomplete), 0);
	if (incomplete) {
		te_bpf_warn(b,
			    NOT_COUNTED
			    "more passive sockets are open than max_sockets, or a listener's accept queue is longer than %d",
			    TCPEVENT_CENSUS_QUEUE_MAX);
		return;
	}
	slot = TCPEVENT_CENSUS_TAKEN;
	bpf_map__update_elem(census, &slot, sizeof(slot), &one, sizeof(one),
			     BPF_ANY);
}
