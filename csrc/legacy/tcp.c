// SPDX-License-Identifier: MIT
/*
 * The original six calls, driving one default tracer.
 *
 * cleanup() may run in a signal handler that interrupted DequeuePerfEvent()
 * or setupBPF() on the same thread (the original example does exactly
 * that), so nothing here takes a lock: the default tracer is published
 * through an atomic pointer, callers count themselves in `users`, and a
 * retired tracer is freed only once no caller can still hold it. setupBPF()
 * sleeps on a futex over the cleanup() generation, which cleanup() wakes
 * with one system call (async-signal-safe).
 */
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"
#include "error.h"
#include "sync.h"
#include "tracer.h"

static _Atomic(struct tcpevent *) current;
static _Atomic unsigned int users;
static _Atomic(struct tcpevent *) retired; /* linked by ->retired_next */
static _Atomic uint32_t cleanups;	   /* cleanup() generation */
static _Atomic uint32_t adding;		   /* 1 while one call attaches */

static void reap(void)
{
	struct tcpevent *t = atomic_exchange(&retired, NULL);

	while (t) {
		struct tcpevent *next = t->retired_next;

		tcpevent_free(t);
		t = next;
	}
}

static struct tcpevent *get(void)
{
	atomic_fetch_add(&users, 1);
	return atomic_load(&current);
}

static void put(void)
{
	if (atomic_fetch_sub(&users, 1) == 1 && atomic_load(&retired))
		reap();
}

/* Detach now; free once nobody who loaded it before can still use it. */
static void retire(struct tcpevent *t)
{
	tcpevent_close(t);
	t->retired_next = atomic_load(&retired);
	while (!atomic_compare_exchange_weak(&retired, &t->retired_next, t))
		;
	if (!atomic_load(&users))
		reap();
}

/* A single line naming a file, or shaped like a path, is a path. */
static bool is_path(const char *s)
{
	size_t n = strlen(s);

	if (!n || n >= PATH_MAX || strchr(s, '\n'))
		return false;
	return !access(s, F_OK) || s[0] == '/' || !strncmp(s, "./", 2) ||
	       !strncmp(s, "../", 3) || (n > 2 && !strcmp(s + n - 2, ".o"));
}

static bool is_blank(const char *s)
{
	return !s || !s[strspn(s, " \t\r\n")];
}

/* Set, and neither blank nor "0". */
static bool env_flag(const char *name)
{
	const char *v = getenv(name);

	return !is_blank(v) && strcmp(v, "0");
}

/*
 * Attach the default tracer unless it is attached (then print `attached`)
 * or cleanup() has been called since generation gen. 0: attached now or
 * already; -EINPROGRESS: another call is attaching (nothing printed); else
 * -errno, printed once and in tcpevent_last_error().
 */
static int attach(const char *program, const char *caller, const char *attached,
		  unsigned int gen)
{
	struct tcpevent_options o;
	struct tcpevent *t;
	int err = 0;

	if (atomic_exchange(&adding, 1))
		return -EINPROGRESS;
	if (atomic_load(&cleanups) != gen)
		goto out; /* cleanup() came after the call: it wins */
	if (atomic_load(&current)) {
		fprintf(stderr, "tcpevent: %s: already attached; %s\n", caller,
			attached);
		goto out;
	}
	tcpevent_options_init(&o);
	o.queue_size = te_env_u32("tcpevent", "TCPEVENT_QUEUE_SIZE", 1);
	o.snapshot_interval_ms =
		te_env_u32("tcpevent", "TCPEVENT_SNAPSHOT_INTERVAL", 1000);
	if (env_flag("TCPEVENT_NO_ACCEPT_HOOKS"))
		o.flags |= TCPEVENT_OPT_NO_ACCEPT_HOOKS;
	if (!is_blank(program) && is_path(program)) {
		o.program = program;
	} else if (!is_blank(program)) {
		fprintf(stderr,
			"tcpevent: %s: the %zu bytes of program text are not compiled; loading the built-in CO-RE program, which produces the same events\n",
			caller, strlen(program));
	}
	err = tcpevent_open(&o, &t);
	if (err) {
		fprintf(stderr, "tcpevent: %s failed: %s\n", caller,
			tcpevent_last_error());
		goto out;
	}
	if (*tcpevent_warnings(t))
		fprintf(stderr, "tcpevent: %s\n", tcpevent_warnings(t));
	atomic_store(&current, t);
	/* A cleanup() that ran while we were opening must win. */
	if (atomic_load(&cleanups) != gen) {
		t = atomic_exchange(&current, NULL);
		if (t)
			retire(t);
	}
out:
	atomic_store(&adding, 0);
	te_futex_wake_all(&adding);
	return err;
}

void AddProbe(const char *program)
{
	if (attach(program, "AddProbe", "this call changes nothing",
		   atomic_load(&cleanups)) == -EINPROGRESS)
		fprintf(stderr,
			"tcpevent: AddProbe: another AddProbe or setupBPF is attaching; this call changes nothing\n");
}

/*
 * The original's synchronous AddProbe: attach (or find the tracer attached),
 * then serve until cleanup() is called, from any thread or a signal handler.
 * A call that finds another attaching waits for it and then serves what it
 * attached (or tries itself if that failed). Loading is never done twice.
 */
int setupBPF(const char *program)
{
	unsigned int gen = atomic_load(&cleanups);
	int err;

	while ((err = attach(program, "setupBPF",
			     "serving that tracer until cleanup()", gen)) ==
	       -EINPROGRESS)
		te_futex_wait(&adding, 1, NULL);
	if (err)
		return err;
	while (atomic_load(&cleanups) == gen)
		te_futex_wait(&cleanups, gen, NULL);
	return 0;
}

void printCharArray(const char *text)
{
	printf("Array: %s\n", text ? text : "(null)");
	fflush(stdout); /* the caller may be another runtime with its own buffers */
}

unsigned getStatus(void)
{
	struct tcpevent *t = get();
	unsigned status = tcpevent_status(t);

	put();
	return status;
}

struct tcp_event_t DequeuePerfEvent(void)
{
	struct tcp_event_t ev;
	struct tcpevent *t = get();

	memset(&ev, 0, sizeof(ev));
	if (t)
		tcpevent_dequeue_abi(t, &ev, -1);
	put();
	return ev;
}

void cleanup(void)
{
	struct tcpevent *t;

	atomic_fetch_add(&cleanups, 1);
	t = atomic_exchange(&current, NULL);
	if (t)
		retire(t);
	else if (!atomic_load(&users))
		reap();		      /* e.g. what a fork child inherited */
	te_futex_wake_all(&cleanups); /* setupBPF() returns */
}

int tcpevent_default_stats(struct tcpevent_stats *stats)
{
	struct tcpevent *t = get();
	int err;

	if (t)
		err = tcpevent_stats(t, stats);
	else
		err = te_fail(ENODEV,
			      "no default tracer: AddProbe() has not attached one");
	put();
	return err;
}

void te_legacy_after_fork(void)
{
	struct tcpevent *t = atomic_exchange(&current, NULL);

	/* No thread of the child is inside a legacy call. */
	atomic_store(&users, 0);
	atomic_store(&adding, 0);
	if (t) {
		t->retired_next = atomic_load(&retired);
		atomic_store(&retired, t); /* freed by the next reap */
	}
}

/* dlclose() or exit() while attached: stop the poller before the code it
 * runs is unmapped. */
__attribute__((destructor)) static void unload(void)
{
	cleanup();
}
