/* SPDX-License-Identifier: MIT */
/*
 * Sorted lists of integers (the filters' pids, ports, cgroups and network
 * namespaces; the UDP scan's released cookies; /proc's pids): the qsort()
 * and bsearch() comparators and the copy-and-sort both libraries share.
 */
#ifndef TCPEVENT_SORTED_H
#define TCPEVENT_SORTED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ascending order of two uint16_t, uint32_t or uint64_t: <0, 0, >0. */
int te_cmp_u16(const void *a, const void *b);
int te_cmp_u32(const void *a, const void *b);
int te_cmp_u64(const void *a, const void *b);

/* Copy n items of size bytes from src to dst and sort them; n may be 0
 * with a NULL src. */
void te_take_sorted(void *dst, const void *src, uint32_t n, size_t size,
		    int (*cmp)(const void *, const void *));

/* Whether the sorted list of n items holds key; an empty list (which
 * may be NULL) holds nothing. */
bool te_sorted_has(const void *list, uint32_t n, size_t size, const void *key,
		   int (*cmp)(const void *, const void *));

#endif /* TCPEVENT_SORTED_H */
