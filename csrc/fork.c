// SPDX-License-Identifier: MIT
/*
 * fork() while a tracer is open. The child inherits the tracer's memory and
 * file descriptors but not its poller thread, and the BPF links it shares
 * with the parent must stay attached for the parent. So a tracer belongs to
 * the process that opened it: in a child, every call on an inherited tracer
 * fails with EBADFD (closing it only drops the child's copies), and the
 * legacy default tracer starts out empty, so AddProbe() attaches anew.
 */
#include <pthread.h>

#include "tracer.h"

_Atomic unsigned int te_fork_generation;

static void in_child(void)
{
	atomic_fetch_add(&te_fork_generation, 1);
	te_legacy_after_fork();
}

__attribute__((constructor)) static void watch_forks(void)
{
	pthread_atfork(NULL, NULL, in_child);
}
