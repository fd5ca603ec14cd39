/*
 * Drives the original calls through dlopen, one scenario per run, for the
 * tests: each prints what happened; none may crash or exit early.
 *
 *   legacy_driver LIB SCENARIO [ARG]
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../../benchmarks/legacy_calls.h"
#include "common.h"

static struct legacy_calls legacy;
static const char *(*last_error)(void);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_sigint(int sig)
{
	(void)sig;
	legacy.cleanup();	/* the original example's pattern, without exit() */
}

/* AddProbe() returns once attached (or failed): no waiting needed. */
static int wait_ready(void)
{
	return legacy.getStatus();
}

/* Poll getStatus() until attached (setupBPF() does not return then). */
static int wait_attached(void)
{
	for (int i = 0; i < 600 && !legacy.getStatus(); i++)
		usleep(50000);
	return legacy.getStatus();
}

/* A thread serving through setupBPF(ARG) until cleanup(). */
struct server {
	pthread_t thread;
	const char *program;
	int rc;
	atomic_int returned;
};

static void *serve(void *arg)
{
	struct server *s = arg;

	s->rc = legacy.setupBPF(s->program);
	atomic_store(&s->returned, 1);
	return NULL;
}

static void start_server(struct server *s, const char *program)
{
	s->program = program;
	atomic_store(&s->returned, 0);
	pthread_create(&s->thread, NULL, serve, s);
}

/* cleanup(), then how long until every server's setupBPF() returned. */
static void cleanup_and_join(struct server *servers, int n)
{
	double t0 = now();

	legacy.cleanup();
	for (int i = 0; i < n; i++)
		pthread_join(servers[i].thread, NULL);
	printf("RETURNED seconds=%.3f", now() - t0);
	for (int i = 0; i < n; i++)
		printf(" rc%d=%d", i, servers[i].rc);
	printf("\n");
}

/* Let the test look at us (bpfutil) before we go on. */
static void pause_for_test(const char *label)
{
	printf("%s\n", label);
	getchar();
}

/* Dequeue once, printing whether it returned at once with a zeroed event. */
static void dequeue_zeroed(const char *label)
{
	static const struct tcp_event_t zero;
	double t0 = now();
	struct tcp_event_t ev = legacy.DequeuePerfEvent();

	printf("%s zeroed=%d seconds=%.3f\n", label, !memcmp(&ev, &zero, sizeof(ev)),
	       now() - t0);
}

int main(int argc, char **argv)
{
	const char *scenario = argc > 2 ? argv[2] : "";
	const char *arg = argc > 3 ? argv[3] : NULL;
	void *lib;

	setvbuf(stdout, NULL, _IOLBF, 0);
	lib = legacy_calls_open(argv[1], &legacy);
	if (!lib)
		return 2;
	last_error = dlsym(lib, "tcpevent_last_error");
	if (!last_error) {
		fprintf(stderr, "dlsym: %s\n", dlerror());
		return 2;
	}

	if (!strcmp(scenario, "addprobe")) {	/* ARG: NULL if absent */
		legacy.AddProbe(arg);
		printf("status=%u\n", wait_ready());
	} else if (!strcmp(scenario, "addprobe-twice")) {
		legacy.AddProbe(NULL);
		printf("status=%u\n", wait_ready());
		legacy.AddProbe(arg);
		printf("status=%u\n", legacy.getStatus());
	} else if (!strcmp(scenario, "cleanup-first")) {
		legacy.cleanup();
		printf("status=%u\n", legacy.getStatus());
		dequeue_zeroed("before-addprobe");
		legacy.AddProbe(NULL);
		printf("status=%u\n", wait_ready());
	} else if (!strcmp(scenario, "cleanup-twice")) {
		legacy.AddProbe(NULL);
		printf("status=%u\n", wait_ready());
		legacy.cleanup();
		legacy.cleanup();
		printf("status=%u\n", legacy.getStatus());
		dequeue_zeroed("after-cleanup");
		legacy.AddProbe(NULL);	/* attaching again works */
		printf("status=%u\n", wait_ready());
	} else if (!strcmp(scenario, "sigint")) {
		signal(SIGINT, on_sigint);
		legacy.AddProbe(NULL);
		printf("status=%u\n", wait_ready());
		printf("READY\n");
		/* Blocks until the handler's cleanup() releases it; events of
		 * other processes may come first. */
		for (;;) {
			struct tcp_event_t ev = legacy.DequeuePerfEvent();

			if (!ev.family)
				break;
		}
		printf("RETURNED status=%u\n", legacy.getStatus());
		dequeue_zeroed("after-cleanup");
		getchar();	/* the test inspects us, then lets us go */
	} else if (!strcmp(scenario, "setupbpf")) {
		/* setupBPF(ARG) on a thread; cleanup() from this one. */
		struct server s;

		start_server(&s, arg);
		printf("status=%u\n", wait_attached());
		usleep(300000);
		printf("blocking=%d\n", !atomic_load(&s.returned));
		pause_for_test("READY");
		cleanup_and_join(&s, 1);
		printf("status=%u\n", legacy.getStatus());
		dequeue_zeroed("after-cleanup");
		pause_for_test("CLEANED");
	} else if (!strcmp(scenario, "setupbpf-fail")) {
		/* On this thread: returning at all means it did not serve. */
		double t0 = now();
		int rc = legacy.setupBPF(arg);

		printf("rc=%d seconds=%.3f status=%u\n", rc, now() - t0, legacy.getStatus());
		printf("error=%s\n", last_error());
	} else if (!strcmp(scenario, "setupbpf-sigint")) {
		/* setupBPF() on the main thread, which the SIGINT handler's
		 * cleanup() interrupts (the library's own threads block signals). */
		int rc;

		signal(SIGINT, on_sigint);
		printf("READY\n");
		rc = legacy.setupBPF(NULL);
		printf("RETURNED rc=%d status=%u\n", rc, legacy.getStatus());
	} else if (!strcmp(scenario, "addprobe-setupbpf")) {
		/* AddProbe's tracer, then two setupBPF() serving it, and an
		 * AddProbe that changes nothing. */
		struct server s[2];

		legacy.AddProbe(NULL);
		printf("status=%u\n", wait_ready());
		pause_for_test("ATTACHED");
		start_server(&s[0], arg);
		start_server(&s[1], NULL);
		legacy.AddProbe(NULL);
		usleep(300000);
		printf("blocking=%d\n", !atomic_load(&s[0].returned) &&
		       !atomic_load(&s[1].returned));
		pause_for_test("READY");
		cleanup_and_join(s, 2);
		printf("status=%u\n", legacy.getStatus());
	} else if (!strcmp(scenario, "setupbpf-race")) {
		/* Two setupBPF() at once: one loads, the other serves it. */
		struct server s[2];

		start_server(&s[0], NULL);
		start_server(&s[1], arg);
		printf("status=%u\n", wait_attached());
		usleep(300000);
		printf("blocking=%d\n", !atomic_load(&s[0].returned) &&
		       !atomic_load(&s[1].returned));
		pause_for_test("READY");
		cleanup_and_join(s, 2);
		printf("status=%u\n", legacy.getStatus());
	} else if (!strcmp(scenario, "print")) {
		legacy.printCharArray(arg);
		legacy.printCharArray("");
	} else {
		fprintf(stderr, "unknown scenario %s\n", scenario);
		return 2;
	}
	legacy.cleanup();
	printf("DONE\n");
	return 0;
}
