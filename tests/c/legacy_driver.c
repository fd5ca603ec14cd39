/*
 * Drives the four original calls through dlopen, one scenario per run, for
 * the tests: each prints what happened; none may crash or exit early.
 *
 *   legacy_driver LIB SCENARIO [ARG]
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static void (*AddProbe)(const char *);
static unsigned (*getStatus)(void);
static struct tcp_event_t (*DequeuePerfEvent)(void);
static void (*cleanup_fn)(void);

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_sigint(int sig)
{
	(void)sig;
	cleanup_fn();	/* the original example's pattern, without exit() */
}

/* AddProbe() returns once attached (or failed): no waiting needed. */
static int wait_ready(void)
{
	return getStatus();
}

/* Dequeue once, printing whether it returned at once with a zeroed event. */
static void dequeue_zeroed(const char *label)
{
	static const struct tcp_event_t zero;
	double t0 = now();
	struct tcp_event_t ev = DequeuePerfEvent();

	printf("%s zeroed=%d seconds=%.3f\n", label, !memcmp(&ev, &zero, sizeof(ev)),
	       now() - t0);
}

int main(int argc, char **argv)
{
	const char *scenario = argc > 2 ? argv[2] : "";
	const char *arg = argc > 3 ? argv[3] : NULL;
	void *lib;

	setvbuf(stdout, NULL, _IOLBF, 0);
	lib = dlopen(argv[1], RTLD_NOW);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return 2;
	}
	AddProbe = dlsym(lib, "AddProbe");
	getStatus = dlsym(lib, "getStatus");
	DequeuePerfEvent = dlsym(lib, "DequeuePerfEvent");
	cleanup_fn = dlsym(lib, "cleanup");

	if (!strcmp(scenario, "addprobe")) {	/* ARG: NULL if absent */
		AddProbe(arg);
		printf("status=%u\n", wait_ready());
	} else if (!strcmp(scenario, "addprobe-twice")) {
		AddProbe(NULL);
		printf("status=%u\n", wait_ready());
		AddProbe(arg);
		printf("status=%u\n", getStatus());
	} else if (!strcmp(scenario, "cleanup-first")) {
		cleanup_fn();
		printf("status=%u\n", getStatus());
		dequeue_zeroed("before-addprobe");
		AddProbe(NULL);
		printf("status=%u\n", wait_ready());
	} else if (!strcmp(scenario, "cleanup-twice")) {
		AddProbe(NULL);
		printf("status=%u\n", wait_ready());
		cleanup_fn();
		cleanup_fn();
		printf("status=%u\n", getStatus());
		dequeue_zeroed("after-cleanup");
		AddProbe(NULL);	/* attaching again works */
		printf("status=%u\n", wait_ready());
	} else if (!strcmp(scenario, "sigint")) {
		signal(SIGINT, on_sigint);
		AddProbe(NULL);
		printf("status=%u\n", wait_ready());
		printf("READY\n");
		/* Blocks until the handler's cleanup() releases it; events of
		 * other processes may come first. */
		for (;;) {
			struct tcp_event_t ev = DequeuePerfEvent();

			if (!ev.family)
				break;
		}
		printf("RETURNED status=%u\n", getStatus());
		dequeue_zeroed("after-cleanup");
		getchar();	/* the test inspects us, then lets us go */
	} else {
		fprintf(stderr, "unknown scenario %s\n", scenario);
		return 2;
	}
	cleanup_fn();
	printf("DONE\n");
	return 0;
}
