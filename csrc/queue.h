/* SPDX-License-Identifier: MIT */
/*
 * A bounded single-producer, multi-consumer queue of TE_QUEUE_ITEM, with
 * blocking waits.
 *
 * Lock-free on purpose: cleanup() may run in a signal handler that
 * interrupted a consumer, so nothing here may hold a lock another thread
 * (or the interrupted one) needs. The producer (the poller thread) fills
 * slots past the tail and publishes them in batches; consumers copy slots
 * and claim them with one compare-and-swap on the head. Waiting uses a futex
 * "event count": consumers sleep only after registering as waiters, and the
 * producer makes a wake-up system call only when somebody is waiting.
 */
#ifndef TCPEVENT_QUEUE_H
#define TCPEVENT_QUEUE_H

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

/*
 * The item type: struct tcpevent_record unless the including file names
 * another first (the UDP tracer's own instance, csrc/udp/udp_queue.h).
 */
#ifndef TE_QUEUE_ITEM
#include "tcpevent_record.h"
#define TE_QUEUE_ITEM struct tcpevent_record
#endif

struct te_queue {
	alignas(64) _Atomic uint64_t head; /* next slot to take */
	alignas(64) _Atomic uint64_t tail; /* next slot to publish */
	uint64_t staged; /* producer only: filled, unpublished */
	uint32_t limit;	 /* at most this many queued */
	uint32_t mask;	 /* slots - 1 (power of two) */
	TE_QUEUE_ITEM *slots;
	alignas(64) _Atomic uint32_t seq; /* futex word: bumped per publish */
	_Atomic uint32_t waiters;
	_Atomic int closed;
};

int te_queue_init(struct te_queue *q, uint32_t limit);
void te_queue_destroy(struct te_queue *q);

/* Producer: the next free slot to fill, or NULL when the queue is full. */
TE_QUEUE_ITEM *te_queue_stage(struct te_queue *q);
/* Producer: publish the staged slots and wake waiters. Returns how many. */
uint64_t te_queue_publish(struct te_queue *q);

/* Consumers: copy up to max records out; returns how many (0: empty). */
unsigned int te_queue_pop(struct te_queue *q, TE_QUEUE_ITEM *out,
			  unsigned int max);
/* Consumers: sleep until something is published, the queue closes, or
 * timeout_ns passes (< 0: no timeout). Spurious returns are allowed. */
void te_queue_wait(struct te_queue *q, int64_t timeout_ns);
/* Mark closed and wake every waiter. Async-signal-safe. */
void te_queue_close(struct te_queue *q);

static inline uint64_t te_queue_depth(struct te_queue *q)
{
	return atomic_load_explicit(&q->tail, memory_order_relaxed) -
	       atomic_load_explicit(&q->head, memory_order_relaxed);
}

#endif /* TCPEVENT_QUEUE_H */
