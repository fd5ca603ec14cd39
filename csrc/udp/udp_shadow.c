// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "udp_shadow.h"

int te_udp_shadow_init(struct te_udp_shadow *s, uint32_t max_flows)
{
	uint64_t n = 16;

	/* At most half full: the kernel table bounds the flows. */
	while (n < 2 * (uint64_t)max_flows)
		n <<= 1;
	s->slots = calloc(n, sizeof(*s->slots));
	if (!s->slots)
		return -ENOMEM;
	s->mask = n - 1;
	s->count = 0;
	return 0;
}

void te_udp_shadow_destroy(struct te_udp_shadow *s)
{
	free(s->slots);
	s->slots = NULL;
}

static uint64_t hash(const struct udpevent_flow_key *k)
{
	uint64_t h = k->cookie * 0x9e3779b97f4a7c15ULL;
	uint64_t a, b;

	memcpy(&a, k->raddr, 8);
	memcpy(&b, k->raddr + 8, 8);
	h ^= (a + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
	h ^= (b ^ k->rport) * 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

static bool same(const struct udpevent_flow_key *a,
		 const struct udpevent_flow_key *b)
{
	return a->cookie == b->cookie && a->rport == b->rport &&
	       !memcmp(a->raddr, b->raddr, sizeof(a->raddr));
}

struct te_udp_seen *te_udp_shadow_get(struct te_udp_shadow *s,
				      const struct udpevent_flow_key *key)
{
	uint64_t i = hash(key) & s->mask;

	for (;;) {
		struct te_udp_seen *e = &s->slots[i];

		if (!e->used) {
			if (s->count >= s->mask / 2 + 1)
				return NULL;
			memset(e, 0, sizeof(*e));
			e->key = *key;
			e->used = true;
			s->count++;
			return e;
		}
		if (same(&e->key, key))
			return e;
		i = (i + 1) & s->mask;
	}
}

/* Backward-shift deletion: no tombstones, probes stay short. */
void te_udp_shadow_remove(struct te_udp_shadow *s, struct te_udp_seen *e)
{
	uint64_t hole = e - s->slots, i = hole;

	for (;;) {
		uint64_t home;

		i = (i + 1) & s->mask;
		if (!s->slots[i].used)
			break;
		home = hash(&s->slots[i].key) & s->mask;
		/* Move it into the hole unless its home lies in (hole, i]. */
		if (((i - home) & s->mask) >= ((i - hole) & s->mask)) {
			s->slots[hole] = s->slots[i];
			hole = i;
		}
	}
	s->slots[hole].used = false;
	s->count--;
}
