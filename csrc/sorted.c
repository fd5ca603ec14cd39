// SPDX-License-Identifier: MIT
#include <stdlib.h>
#include <string.h>

#include "sorted.h"

/* Compared, not subtracted: a uint32_t or uint64_t difference overflows int. */
#define TE_DEFINE_CMP(name, type)                                \
	int name(const void *a, const void *b)                   \
	{                                                        \
		type x = *(const type *)a, y = *(const type *)b; \
		return (x > y) - (x < y);                        \
	}

TE_DEFINE_CMP(te_cmp_u16, uint16_t)
TE_DEFINE_CMP(te_cmp_u32, uint32_t)
TE_DEFINE_CMP(te_cmp_u64, uint64_t)

void te_take_sorted(void *dst, const void *src, uint32_t n, size_t size,
		    int (*cmp)(const void *, const void *))
{
	if (!n) /* memcpy() and qsort() take no NULL, even for 0 items */
		return;
	memcpy(dst, src, n * size);
	qsort(dst, n, size, cmp);
}

bool te_sorted_has(const void *list, uint32_t n, size_t size, const void *key,
		   int (*cmp)(const void *, const void *))
{
	return n && bsearch(key, list, n, size, cmp);
}
