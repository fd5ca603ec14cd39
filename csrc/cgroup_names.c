// SPDX-License-Identifier: MIT
/*
 * The names of cgroup v2 ids (cgroup_names.h, docs/containers.md).
 *
 * A cgroup v2 id is the kernfs id of its directory, which is that
 * directory's inode number; ids are never reused, so a name once learnt
 * stays right. The table is learnt two ways: a walk of the mount when the
 * tracer opens (after the mkdir hook is attached, so that a cgroup made
 * meanwhile is in one or the other), then the hook's records. A path from
 * the hook is from the hierarchy's root, one from the walk from the mount:
 * the same where the mount shows the whole hierarchy (not inside a cgroup
 * namespace).
 *
 * Storage: TCPEVENT_CGROUP_NAMES_MAX slots taken in turn (a ring: once all
 * are used, the slot learnt longest ago is reused), found by a chained
 * hash of the id. One mutex: the poller writes, at the rate cgroups are
 * made; callers read, on a miss of their own caches.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup_names.h"
#include "error.h"
#include "tracer.h"

/* Twice the slots, a power of two: chains stay a slot or two long. */
#define TE_CGROUP_NAMES_BUCKETS (2 * TCPEVENT_CGROUP_NAMES_MAX)

_Static_assert((TCPEVENT_CGROUP_NAMES_MAX & (TCPEVENT_CGROUP_NAMES_MAX - 1)) ==
		       0,
	       "TCPEVENT_CGROUP_NAMES_MAX is a power of two");
/* The poller tells the two records apart by their size. */
_Static_assert(sizeof(struct tcpevent_cgroup_record) !=
			       sizeof(struct tcpevent_record) &&
		       sizeof(struct tcpevent_cgroup_record) !=
			       TCPEVENT_RECORD_V1_SIZE &&
		       sizeof(struct tcpevent_cgroup_record) !=
			       TCPEVENT_RECORD_V2_SIZE &&
		       sizeof(struct tcpevent_cgroup_record) !=
			       TCPEVENT_WAKEUP_SIZE,
	       "a cgroup record's size is no other record's");

static uint32_t bucket_of(uint64_t id)
{
	/* Fibonacci hashing: inode numbers come in runs. */
	return (uint32_t)((id * 0x9E3779B97F4A7C15ULL) >> 32) &
	       (TE_CGROUP_NAMES_BUCKETS - 1);
}

int te_names_init(struct te_cgroup_names *n)
{
	memset(n, 0, sizeof(*n));
	n->slots = calloc(TCPEVENT_CGROUP_NAMES_MAX, sizeof(*n->slots));
	n->buckets = malloc(TE_CGROUP_NAMES_BUCKETS * sizeof(*n->buckets));
	if (!n->slots || !n->buckets) {
		te_names_destroy(n);
		return te_fail(ENOMEM,
			       "cannot allocate the table of cgroup names");
	}
	memset(n->buckets, 0xff, TE_CGROUP_NAMES_BUCKETS * sizeof(*n->buckets));
	pthread_mutex_init(&n->lock, NULL);
	n->lock_made = true;
	return 0;
}

void te_names_destroy(struct te_cgroup_names *n)
{
	if (n->slots)
		for (uint32_t i = 0; i < n->used; i++)
			free(n->slots[i].path);
	free(n->slots);
	free(n->buckets);
	if (n->lock_made)
		pthread_mutex_destroy(&n->lock);
	memset(n, 0, sizeof(*n));
}

/* The slot of id, or NULL. Lock held. */
static struct te_cgroup_name *find(struct te_cgroup_names *n, uint64_t id)
{
	for (int32_t i = n->buckets[bucket_of(id)]; i >= 0;
	     i = n->slots[i].next)
		if (n->slots[i].id == id)
			return &n->slots[i];
	return NULL;
}

/* Take slot i out of its bucket's chain. Lock held. */
static void unlink_slot(struct te_cgroup_names *n, int32_t i)
{
	int32_t *at = &n->buckets[bucket_of(n->slots[i].id)];

	while (*at >= 0 && *at != i)
		at = &n->slots[*at].next;
	if (*at == i)
		*at = n->slots[i].next;
}

void te_names_put(struct te_cgroup_names *n, uint64_t id, const char *path,
		  size_t len)
{
	struct te_cgroup_name *s;
	char *copy;
	uint32_t b;
	int32_t i;

	if (!id || !n->slots)
		return;
	copy = strndup(path, len);
	if (!copy)
		return; /* left unknown: callers fall back to their own ways */
	pthread_mutex_lock(&n->lock);
	s = find(n, id);
	if (s) { /* known: the walk met it too, or it was renamed */
		free(s->path);
		s->path = copy;
		pthread_mutex_unlock(&n->lock);
		return;
	}
	if (n->used < TCPEVENT_CGROUP_NAMES_MAX) {
		i = (int32_t)n->used++;
	} else { /* full: the one learnt longest ago goes */
		i = (int32_t)n->oldest;
		n->oldest = (n->oldest + 1) & (TCPEVENT_CGROUP_NAMES_MAX - 1);
		unlink_slot(n, i);
		free(n->slots[i].path);
	}
	b = bucket_of(id);
	n->slots[i] = (struct te_cgroup_name){ .id = id,
					       .path = copy,
					       .next = n->buckets[b] };
	n->buckets[b] = i;
	pthread_mutex_unlock(&n->lock);
}

bool te_names_on_record(struct te_cgroup_names *n, const void *data)
{
	const struct tcpevent_cgroup_record *r = data;

	/* The kernel cut a longer path at its buffer's size: not its name. */
	if (r->len == 0 || r->len >= TCPEVENT_CGROUP_PATH_LEN - 1 ||
	    r->path[0] != '/' || r->path[r->len] != '\0')
		return false;
	te_names_put(n, r->cgroup_id, r->path, r->len);
	return true;
}

/* The cgroup v2 mount point from /proc/self/mountinfo, into buf. */
static bool cgroup2_mount(char *buf, size_t len)
{
	char line[4096], point[PATH_MAX], fstype[64];
	bool found = false;
	FILE *f = fopen("/proc/self/mountinfo", "re");
	const char *sep;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* id parent major:minor root point options... - fstype ... */
		sep = strstr(line, " - ");
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1 ||
		    strcmp(fstype, "cgroup2") ||
		    sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1)
			continue;
		/* mountinfo escapes blanks as octal (\040): none expected in
		 * a cgroup mount; such a point is not used. */
		if (strchr(point, '\\') || strlen(point) >= len)
			continue;
		strcpy(buf, point);
		found = true;
	}
	fclose(f);
	return found;
}

/* Every directory below parent (whose path is rel[0..len)), depth first;
 * parent is closed. */
static void walk_dir(struct te_cgroup_names *n, int parent, char *rel,
		     size_t len)
{
	DIR *d = fdopendir(parent);
	struct dirent *e;
	struct stat st;
	size_t name_len;
	int fd;

	if (!d) {
		close(parent);
		return;
	}
	while ((e = readdir(d))) {
		if (e->d_type != DT_DIR || !strcmp(e->d_name, ".") ||
		    !strcmp(e->d_name, ".."))
			continue; /* kernfs gives every entry's type */
		name_len = strlen(e->d_name);
		if (len + 1 + name_len >= PATH_MAX)
			continue;
		fd = openat(parent, e->d_name,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue; /* removed meanwhile, or not ours to read */
		if (fstat(fd, &st)) {
			close(fd);
			continue;
		}
		rel[len] = '/';
		memcpy(rel + len + 1, e->d_name, name_len + 1);
		te_names_put(n, st.st_ino, rel, len + 1 + name_len);
		walk_dir(n, fd, rel, len + 1 + name_len);
		rel[len] = '\0';
	}
	closedir(d);
}

void te_names_walk(struct te_cgroup_names *n)
{
	char mount[PATH_MAX], rel[PATH_MAX] = "";
	struct stat st;
	int fd;

	if (!cgroup2_mount(mount, sizeof(mount)))
		return;
	fd = open(mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st)) {
		close(fd);
		return;
	}
	te_names_put(n, st.st_ino, "/", 1);
	walk_dir(n, fd, rel, 0);
}

int tcpevent_cgroup_path(struct tcpevent *t, uint64_t cgroup_id, char *buf,
			 size_t len)
{
	struct te_cgroup_names *n;
	struct te_cgroup_name *s;
	size_t need;

	if (!t || !buf || !len)
		return te_fail(EINVAL, "tcpevent_cgroup_path: NULL argument");
	/* The parent's poller may have held the lock at fork(): never taken
	 * here. */
	if (te_inherited(t))
		return te_fail(EBADFD,
			       "this tracer was opened by the parent process before fork(); open a new one in this process");
	n = &t->names;
	if (!n->slots)
		return te_fail(ENOENT, "cgroup id %llu: not known",
			       (unsigned long long)cgroup_id);
	pthread_mutex_lock(&n->lock);
	s = cgroup_id ? find(n, cgroup_id) : NULL;
	need = s ? strlen(s->path) + 1 : 0;
	if (s && need <= len)
		memcpy(buf, s->path, need);
	pthread_mutex_unlock(&n->lock);
	if (!s)
		return te_fail(ENOENT,
			       "cgroup id %llu: not known (made before the tracer opened and gone since, in no cgroup v2 hierarchy, or forgotten: more than %u cgroups learnt since)",
			       (unsigned long long)cgroup_id,
			       TCPEVENT_CGROUP_NAMES_MAX);
	if (need > len)
		return te_fail(ERANGE,
			       "cgroup id %llu: its path needs %zu bytes, the buffer has %zu",
			       (unsigned long long)cgroup_id, need, len);
	return 0;
}
