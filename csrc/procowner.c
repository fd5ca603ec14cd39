// SPDX-License-Identifier: MIT
/*
 * procowner.c - socket inode -> owning process, through /proc/<pid>/fd.
 *
 * Cost model: one readlinkat() per open fd of each scanned process, plus a
 * listing of /proc. With the early stop and ascending pid order, asking for
 * the sockets of one busy process costs about its fd count in syscalls.
 * All paths are resolved relative to an fd of /proc (openat/readlinkat), so
 * no absolute paths are built per fd.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "error.h"
#include "procowner.h"
#include "sorted.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- Hash set of wanted inodes (open addressing, linear probing) ------ */

static size_t hash_u64(uint64_t k)
{
	/* murmur3 finalizer: inodes are often sequential, spread them */
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (size_t)k;
}

/* The slot holding inode, or the empty slot where it would go. */
static struct procowner_slot *slot_of(const struct procowner *po,
				      uint64_t inode)
{
	size_t i = hash_u64(inode) & po->mask;

	while (po->slots[i].inode && po->slots[i].inode != inode)
		i = (i + 1) & po->mask;
	return &po->slots[i];
}

static int table_alloc(struct procowner *po, size_t nslots)
{
	po->slots = calloc(nslots, sizeof(*po->slots));
	if (!po->slots)
		return -ENOMEM;
	po->mask = nslots - 1;
	return 0;
}

/* Keep the load factor <= 1/2 so probes stay short. */
static int table_grow(struct procowner *po)
{
	struct procowner_slot *old = po->slots;
	size_t n = po->mask + 1, i;

	if (n > SIZE_MAX / 2 / sizeof(*old) || table_alloc(po, n * 2)) {
		po->slots = old;
		return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		if (old[i].inode)
			*slot_of(po, old[i].inode) = old[i];
	free(old);
	return 0;
}

int procowner_init(struct procowner *po, size_t expected, int want_cmdline)
{
	size_t n = 16;

	memset(po, 0, sizeof(*po));
	while (n < expected * 2 && n < ((size_t)1 << 40))
		n *= 2;
	po->want_cmdline = want_cmdline;
	return table_alloc(po, n);
}

int procowner_want(struct procowner *po, uint64_t inode)
{
	struct procowner_slot *s;

	if (!inode)
		return 0;
	if ((po->nwanted + 1) * 2 > po->mask + 1 && table_grow(po))
		return -ENOMEM;
	s = slot_of(po, inode);
	if (!s->inode) {
		s->inode = inode;
		po->nwanted++;
	}
	return 0;
}

const struct procowner_proc *procowner_lookup(const struct procowner *po,
					      uint64_t inode)
{
	const struct procowner_slot *s;

	if (!inode || !po->slots)
		return NULL;
	s = slot_of(po, inode);
	return s->inode && s->proc ? &po->procs[s->proc - 1] : NULL;
}

void procowner_free(struct procowner *po)
{
	size_t i;

	for (i = 0; i < po->nprocs; i++)
		free(po->procs[i].cmdline);
	free(po->procs);
	free(po->slots);
	memset(po, 0, sizeof(*po));
}

uint64_t procowner_parse_socket_link(const char *s, size_t n)
{
	static const char prefix[] = "socket:[";
	const size_t plen = sizeof(prefix) - 1;
	uint64_t v = 0;
	size_t i;

	if (n < plen + 2 || memcmp(s, prefix, plen) || s[n - 1] != ']')
		return 0;
	for (i = plen; i < n - 1; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

/* ---- Reading /proc/<pid>/... ------------------------------------------ */

/* Read a whole small /proc file relative to procfd; NUL-terminates.
 * Returns bytes read (>= 0) or -errno. *buf grows up to max bytes. */
static ssize_t read_proc_file(int procfd, uint32_t pid, const char *name,
			      char **buf, size_t *cap, size_t max)
{
	char path[48];
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%u/%s", pid, name);
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (len + 1 >= *cap) {
			size_t ncap = *cap ? *cap * 2 : 256;
			char *p;

			if (*cap >= max)
				break; /* cut: long enough for a summary */
			p = realloc(*buf, ncap);
			if (!p) {
				close(fd);
				return -ENOMEM;
			}
			*buf = p;
			*cap = ncap;
		}
		n = read(fd, *buf + len, *cap - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	(*buf)[len] = '\0';
	return (ssize_t)len;
}

static void read_comm(int procfd, uint32_t pid, char comm[TCPEVENT_COMM_LEN])
{
	char path[32], buf[TCPEVENT_COMM_LEN + 1];
	ssize_t n;
	int fd;

	comm[0] = '\0';
	snprintf(path, sizeof(path), "%u/comm", pid);
	fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* vanished: keep the attribution, no name */
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		return;
	if (buf[n - 1] == '\n')
		n--;
	if (n > TCPEVENT_COMM_LEN - 1)
		n = TCPEVENT_COMM_LEN - 1;
	memcpy(comm, buf, (size_t)n);
	comm[n] = '\0';
}

/* NUL-separated args -> one string joined by spaces; "" when unreadable
 * (kernel threads, zombies, vanished). NULL only on -ENOMEM. */
static char *read_cmdline(int procfd, uint32_t pid)
{
	char *buf = NULL;
	size_t cap = 0, i;
	ssize_t n;

	n = read_proc_file(procfd, pid, "cmdline", &buf, &cap,
			   PROCOWNER_CMDLINE_MAX);
	if (n == -ENOMEM) {
		free(buf);
		return NULL;
	}
	if (n <= 0) {
		free(buf);
		return strdup("");
	}
	while (n > 0 && buf[n - 1] == '\0')
		n--;
	for (i = 0; i < (size_t)n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return buf;
}

/* Record pid as an owner; returns its index + 1, or 0 on -ENOMEM. */
static uint32_t add_proc(struct procowner *po, int procfd, uint32_t pid)
{
	struct procowner_proc *p;

	if (po->nprocs == po->proccap) {
		size_t ncap = po->proccap ? po->proccap * 2 : 16;

		p = realloc(po->procs, ncap * sizeof(*p));
		if (!p)
			return 0;
		po->procs = p;
		po->proccap = ncap;
	}
	p = &po->procs[po->nprocs];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	read_comm(procfd, pid, p->comm);
	if (po->want_cmdline) {
		p->cmdline = read_cmdline(procfd, pid);
		if (!p->cmdline)
			return 0;
	}
	return (uint32_t)++po->nprocs;
}

/* Look through one process's fds. 0, or -ENOMEM. Vanishing is not an
 * error: the process or fd simply contributes nothing. */
static int scan_pid(struct procowner *po, int procfd, uint32_t pid)
{
	char path[32], link[64];
	uint32_t proc = 0;
	struct dirent *de;
	DIR *dir;
	int fd;

	snprintf(path, sizeof(path), "%u/fd", pid);
	fd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* ENOENT/ESRCH gone, EACCES not ours */
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return errno == ENOMEM ? -ENOMEM : 0;
	}
	while (po->nfound < po->nwanted && (de = readdir(dir))) {
		struct procowner_slot *s;
		uint64_t inode;
		ssize_t n;

		if (de->d_name[0] == '.')
			continue;
		n = readlinkat(fd, de->d_name, link, sizeof(link));
		if (n <= 0 || (size_t)n >= sizeof(link))
			continue; /* closed meanwhile, or not a socket */
		inode = procowner_parse_socket_link(link, (size_t)n);
		if (!inode)
			continue;
		s = slot_of(po, inode);
		if (!s->inode || s->proc)
			continue; /* not wanted, or a lower pid has it */
		if (!proc && !(proc = add_proc(po, procfd, pid))) {
			closedir(dir);
			return -ENOMEM;
		}
		s->proc = proc;
		po->nfound++;
	}
	closedir(dir);
	return 0;
}

/* All numeric entries of /proc, ascending. */
static int list_pids(int procfd, uint32_t **out, size_t *count)
{
	uint32_t *pids = NULL, *p;
	size_t n = 0, cap = 0;
	int sorted = 1, fd;
	struct dirent *de;
	DIR *dir;

	fd = dup(procfd); /* closedir() closes it, keep procfd */
	if (fd < 0)
		return -errno;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(dir))) {
		char *end;
		unsigned long v;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		v = strtoul(de->d_name, &end, 10);
		if (*end || v > UINT32_MAX)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			p = realloc(pids, cap * sizeof(*pids));
			if (!p) {
				free(pids);
				closedir(dir);
				return -ENOMEM;
			}
			pids = p;
		}
		if (n && pids[n - 1] > v)
			sorted = 0;
		pids[n++] = (uint32_t)v;
	}
	closedir(dir);
	/* /proc lists in pid order today; sort anyway, "lowest pid wins"
	 * must not depend on it. */
	if (!sorted)
		qsort(pids, n, sizeof(*pids), te_cmp_u32);
	*out = pids;
	*count = n;
	return 0;
}

int procowner_scan(struct procowner *po, const uint32_t *pids, size_t n_pids)
{
	uint32_t *list = NULL;
	size_t n = 0, i;
	int procfd, r = 0;

	if (!po->nwanted)
		return 0;
	procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0) {
		r = -errno;
		return te_fail(-r, "connections: owners: cannot open /proc: %s",
			       strerror(-r));
	}
	if (n_pids) {
		list = malloc(n_pids * sizeof(*list));
		if (!list)
			r = -ENOMEM;
		else
			memcpy(list, pids, n_pids * sizeof(*list));
		n = n_pids;
		if (list)
			qsort(list, n, sizeof(*list), te_cmp_u32);
	} else {
		r = list_pids(procfd, &list, &n);
		if (r < 0 && r != -ENOMEM)
			te_fail(-r,
				"connections: owners: cannot list /proc: %s",
				strerror(-r));
	}
	for (i = 0; !r && i < n && po->nfound < po->nwanted; i++)
		if (!i || list[i] != list[i - 1]) /* duplicate pids */
			r = scan_pid(po, procfd, list[i]);
	if (r == -ENOMEM)
		te_fail(-r,
			"connections: owners: out of memory scanning /proc");
	free(list);
	close(procfd);
	return r;
}
