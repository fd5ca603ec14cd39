/* SPDX-License-Identifier: MIT */
/*
 * The names of cgroup v2 ids: a bounded table id -> path, filled at start
 * by a walk of the cgroup v2 mount and then by the BPF program's mkdir
 * records (docs/containers.md). Thread-safe: the poller fills it, callers
 * of tcpevent_cgroup_path() read it.
 */
#ifndef TCPEVENT_CGROUP_NAMES_H
#define TCPEVENT_CGROUP_NAMES_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct te_cgroup_name {
	uint64_t id;  /* 0: a free slot */
	char *path;   /* malloc'ed; relative to the cgroup v2 mount */
	int32_t next; /* the next slot of its bucket, or -1 */
};

struct te_cgroup_names {
	pthread_mutex_t lock;
	bool lock_made;
	/* TCPEVENT_CGROUP_NAMES_MAX slots, taken in turn: once all are used,
	 * the next one taken (oldest) is the one learnt longest ago. */
	struct te_cgroup_name *slots;
	int32_t *buckets; /* TE_CGROUP_NAMES_BUCKETS heads, or -1 */
	uint32_t used;
	uint32_t oldest;
};

/* 0 or -ENOMEM (te_fail). */
int te_names_init(struct te_cgroup_names *n);
void te_names_destroy(struct te_cgroup_names *n);
/* Learn (or, renamed, learn again) the path of an id; a failed allocation
 * only leaves it unknown. */
void te_names_put(struct te_cgroup_names *n, uint64_t id, const char *path,
		  size_t len);
/* Learn every cgroup under the cgroup v2 mount, the root ("/") first;
 * nothing without a mount (or a directory it may not read). */
void te_names_walk(struct te_cgroup_names *n);
/* A struct tcpevent_cgroup_record of the ring buffer: false if it is not
 * one that can be used (truncated, not a path). */
bool te_names_on_record(struct te_cgroup_names *n, const void *data);

#endif /* TCPEVENT_CGROUP_NAMES_H */
