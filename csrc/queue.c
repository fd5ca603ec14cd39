// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue.h"
#include "sync.h"

int te_queue_init(struct te_queue *q, uint32_t limit)
{
	uint64_t slots = 1;

	memset(q, 0, sizeof(*q));
	while (slots < limit)
		slots <<= 1;
	q->slots = calloc(slots, sizeof(*q->slots));
	if (!q->slots)
		return -ENOMEM;
	q->limit = limit;
	q->mask = slots - 1;
	return 0;
}

void te_queue_destroy(struct te_queue *q)
{
	free(q->slots);
	q->slots = NULL;
}

TE_QUEUE_ITEM *te_queue_stage(struct te_queue *q)
{
	uint64_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	uint64_t pos = tail + q->staged;

	/* head only grows, so a stale head errs towards "full". */
	if (pos - head >= q->limit)
		return NULL;
	q->staged++;
	return &q->slots[pos & q->mask];
}

static void wake_waiters(struct te_queue *q)
{
	atomic_fetch_add_explicit(&q->seq, 1, memory_order_seq_cst);
	/* Pairs with the waiter's registration in te_queue_wait(). */
	if (atomic_load_explicit(&q->waiters, memory_order_seq_cst))
		te_futex_wake_all(&q->seq);
}

uint64_t te_queue_publish(struct te_queue *q)
{
	uint64_t n = q->staged;

	if (!n)
		return 0;
	q->staged = 0;
	atomic_fetch_add_explicit(&q->tail, n, memory_order_release);
	wake_waiters(q);
	return n;
}

unsigned int te_queue_pop(struct te_queue *q, TE_QUEUE_ITEM *out,
			  unsigned int max)
{
	uint64_t head = atomic_load_explicit(&q->head, memory_order_acquire);

	for (;;) {
		uint64_t tail =
			atomic_load_explicit(&q->tail, memory_order_acquire);
		uint64_t avail = tail - head;
		unsigned int n = avail < max ? avail : max;

		if (!n)
			return 0;
		/*
		 * Copy first, then claim. The producer never reuses a slot
		 * before head moves past it; if another consumer claims these
		 * slots first, the CAS fails and the copy is discarded.
		 */
		for (unsigned int i = 0; i < n; i++)
			out[i] = q->slots[(head + i) & q->mask];
		if (atomic_compare_exchange_weak_explicit(&q->head, &head,
							  head + n,
							  memory_order_acq_rel,
							  memory_order_acquire))
			return n;
	}
}

void te_queue_wait(struct te_queue *q, int64_t timeout_ns)
{
	struct timespec ts, *tsp = NULL;
	uint32_t seq = atomic_load_explicit(&q->seq, memory_order_seq_cst);

	atomic_fetch_add_explicit(&q->waiters, 1, memory_order_seq_cst);
	/* Re-check after registering: a publish before this point is seen
	 * here, one after it bumps seq and makes FUTEX_WAIT return. */
	if (atomic_load(&q->tail) == atomic_load(&q->head) &&
	    !atomic_load(&q->closed)) {
		if (timeout_ns >= 0) {
			ts.tv_sec = timeout_ns / 1000000000;
			ts.tv_nsec = timeout_ns % 1000000000;
			tsp = &ts;
		}
		te_futex_wait(&q->seq, seq, tsp);
	}
	atomic_fetch_sub_explicit(&q->waiters, 1, memory_order_seq_cst);
}

void te_queue_close(struct te_queue *q)
{
	atomic_store_explicit(&q->closed, 1, memory_order_seq_cst);
	wake_waiters(q);
}
