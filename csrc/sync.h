/* SPDX-License-Identifier: MIT */
/*
 * The few primitives the library's threads share: a counter with a single
 * writer, futex waits and wake-ups, and a thread started with every signal
 * blocked.
 */
#ifndef TCPEVENT_SYNC_H
#define TCPEVENT_SYNC_H

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * Add n to a counter only one thread writes (others may read it at any
 * time): a relaxed load and store, no locked instruction.
 */
static inline void te_bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c,
			      atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

/*
 * Sleep while *word == val, until a wake-up, a signal or the timeout (NULL:
 * none) passes. Spurious returns are allowed: the caller checks again.
 */
static inline void te_futex_wait(_Atomic uint32_t *word, uint32_t val,
				 const struct timespec *timeout)
{
	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, timeout,
		NULL, 0);
}

/*
 * Wake every sleeper on word. Only a system call, so fit for a signal
 * handler: errno is kept for the code the handler interrupted.
 */
static inline void te_futex_wake_all(_Atomic uint32_t *word)
{
	int saved = errno;

	syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL,
		NULL, 0);
	errno = saved;
}

/*
 * pthread_create() with every signal blocked in the new thread: a library
 * thread must never run the host process's signal handlers (they may touch
 * state of the thread they expect to interrupt). The caller's mask is
 * restored. 0 or pthread_create()'s error number (positive).
 */
static inline int te_thread_start_masked(pthread_t *thread, void *(*fn)(void *),
					 void *arg)
{
	sigset_t all, old;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return err;
}

#endif /* TCPEVENT_SYNC_H */
