/* SPDX-License-Identifier: MIT */
/*
 * procowner.h - socket inode -> owning process, through /proc/<pid>/fd.
 *
 * Usage: procowner_init(), procowner_want() each inode of interest,
 * procowner_scan() once, procowner_lookup() per inode, procowner_free().
 *
 * The scan only looks for the wanted inodes (kept in a small open-addressing
 * hash set) and stops as soon as all of them are found. Processes are scanned
 * in ascending pid order, so when several share a socket the lowest pid wins.
 * Processes or fds vanishing mid-scan, and processes we may not inspect, are
 * skipped silently. Internal to libtcpEvent (not exported).
 */
#ifndef TCPEVENT_PROCOWNER_H
#define TCPEVENT_PROCOWNER_H

#include <stddef.h>
#include <stdint.h>

#include "tcpevent_record.h"

#define PROCOWNER_CMDLINE_MAX (1u << 20) /* longer ones are cut */

struct procowner_proc {
	uint32_t pid;
	char comm[TCPEVENT_COMM_LEN]; /* "" if unreadable */
	char *cmdline;		      /* want_cmdline only; "" if unreadable */
};

struct procowner_slot {
	uint64_t inode; /* 0: empty slot */
	uint32_t proc;	/* index into procs + 1; 0: not found */
};

struct procowner {
	struct procowner_slot *slots;
	size_t mask; /* slot count - 1 (a power of two) */
	size_t nwanted, nfound;
	struct procowner_proc *procs;
	size_t nprocs, proccap;
	int want_cmdline;
};

/* expected: how many inodes will be wanted (sizes the table; more is fine
 * but slower). 0 or -ENOMEM. */
int procowner_init(struct procowner *po, size_t expected, int want_cmdline);
/* Add an inode to look for (0 is ignored). 0 or -ENOMEM. */
int procowner_want(struct procowner *po, uint64_t inode);
/* Scan /proc (or only the given pids; n_pids 0: all processes). 0 or
 * -errno (only for failures of the scan as a whole: /proc unreadable,
 * -ENOMEM), with the reason in tcpevent_last_error(). */
int procowner_scan(struct procowner *po, const uint32_t *pids, size_t n_pids);
/* The owner of inode, or NULL if unknown. */
const struct procowner_proc *procowner_lookup(const struct procowner *po,
					      uint64_t inode);
void procowner_free(struct procowner *po);

/* "socket:[12345]" -> 12345; 0 if s (of length n) is not a socket link. */
uint64_t procowner_parse_socket_link(const char *s, size_t n);

#endif /* TCPEVENT_PROCOWNER_H */
