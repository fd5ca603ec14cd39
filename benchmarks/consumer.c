// SPDX-License-Identifier: MIT
/*
 * consumer - drains libtcpEvent.so through the original ABI (dlopen,
 * AddProbe, DequeuePerfEvent), the way an existing C client does, and
 * measures what the benchmarks need.
 *
 *   consumer LIB [--hold]
 *
 * TCPEVENT_QUEUE_SIZE sets the queue (the legacy calls read it);
 * CONSUMER_PROGRAM, if set, is passed to AddProbe().
 * Prints "READY" once attached. Then reads commands on stdin:
 *   "pid N"  count events of this process (the churn) separately;
 *            answers "PID N" once set, so the churn starts after it;
 *   "go"     (--hold only) start dequeuing: measures drain throughput;
 *   "stop"   wait until no event came for 200 ms, detach, print JSON.
 * Latency is dequeue time minus the event's close time (both wall clock).
 * CPU time is counted from READY on: loading the program is not per event.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "legacy_calls.h"
#include "tcpevent.h"

#define LAT_BUCKETS 100000	/* 10 us each: up to 1 s */

static struct legacy_calls legacy;
static int (*default_stats)(struct tcpevent_stats *);

/* Written by the consumer thread only; read after it is joined (or as a
 * progress hint: last_event_ns). */
static _Atomic uint32_t target_pid;
static uint64_t total, targeted;
static _Atomic uint64_t last_event_ns;
static uint64_t first_ns, drained_ns;
static uint32_t latency[LAT_BUCKETS + 1];
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cond = PTHREAD_COND_INITIALIZER;
static int holding, hold_mode;

static uint64_t now_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *consume(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&hold_lock);
	while (holding)
		pthread_cond_wait(&hold_cond, &hold_lock);
	pthread_mutex_unlock(&hold_lock);
	first_ns = now_ns(CLOCK_MONOTONIC);
	for (;;) {
		struct tcp_event_t ev = legacy.DequeuePerfEvent();
		uint64_t now, lat;

		if (!ev.family)
			return NULL;
		/* Clock reads cost: per targeted event (for the latency), and
		 * every 256 others (for "no event lately"). */
		if (ev.pid != target_pid) {
			if (!(++total & 255))
				last_event_ns = now_ns(CLOCK_MONOTONIC);
			continue;
		}
		total++;
		targeted++;
		if (hold_mode) {	/* raw throughput: no per-event clocks */
			if (!(targeted & 255))
				last_event_ns = drained_ns = now_ns(CLOCK_MONOTONIC);
			continue;
		}
		now = now_ns(CLOCK_REALTIME);
		lat = now > ev.EventTime ? (now - ev.EventTime) / 10000 : 0;
		latency[lat < LAT_BUCKETS ? lat : LAT_BUCKETS]++;
		last_event_ns = drained_ns = now_ns(CLOCK_MONOTONIC);
	}
}

static double seconds(const struct timeval *tv)
{
	return tv->tv_sec + tv->tv_usec / 1e6;
}

static double percentile(double p)
{
	uint64_t n = 0, want, seen = 0;

	for (int i = 0; i <= LAT_BUCKETS; i++)
		n += latency[i];
	if (!n)
		return -1;
	want = (uint64_t)(p * n);
	for (int i = 0; i <= LAT_BUCKETS; i++) {
		seen += latency[i];
		if (seen > want)
			return i * 10.0;	/* microseconds */
	}
	return LAT_BUCKETS * 10.0;
}

int main(int argc, char **argv)
{
	struct tcpevent_stats st = { 0 };
	struct rusage ru0, ru;
	pthread_t thread;
	char line[64];
	void *lib;

	if (argc < 2) {
		fprintf(stderr, "usage: consumer LIB [--hold]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	holding = hold_mode = argc > 2 && !strcmp(argv[2], "--hold");
	lib = legacy_calls_open(argv[1], &legacy);
	if (!lib)
		return 1;
	default_stats = dlsym(lib, "tcpevent_default_stats");
	if (!default_stats) {
		fprintf(stderr, "dlsym: %s\n", dlerror());
		return 1;
	}
	legacy.AddProbe(getenv("CONSUMER_PROGRAM"));
	if (!legacy.getStatus())
		return 1;
	pthread_create(&thread, NULL, consume, NULL);
	getrusage(RUSAGE_SELF, &ru0);	/* loading the program is not per event */
	printf("READY\n");
	while (fgets(line, sizeof(line), stdin)) {
		if (!strncmp(line, "pid ", 4)) {
			target_pid = atoi(line + 4);
			printf("PID %u\n", (unsigned)target_pid);
		} else if (!strncmp(line, "go", 2)) {
			pthread_mutex_lock(&hold_lock);
			holding = 0;
			pthread_cond_signal(&hold_cond);
			pthread_mutex_unlock(&hold_lock);
		} else if (!strncmp(line, "stop", 4)) {
			break;
		}
	}
	last_event_ns = now_ns(CLOCK_MONOTONIC);
	while (now_ns(CLOCK_MONOTONIC) - last_event_ns < 200000000)
		usleep(20000);
	default_stats(&st);
	legacy.cleanup();
	pthread_join(thread, NULL);
	if (hold_mode && drained_ns)	/* up to the last event */
		drained_ns = last_event_ns;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"events\": %lu, \"target_events\": %lu, "
	       "\"drain_seconds\": %.6f, "
	       "\"latency_p50_us\": %.0f, \"latency_p99_us\": %.0f, "
	       "\"cpu_user\": %.6f, \"cpu_sys\": %.6f, \"maxrss_kb\": %ld, "
	       "\"received\": %lu, \"dropped_kernel\": %lu, "
	       "\"dropped_queue\": %lu, \"untracked\": %lu, \"missed\": %lu}\n",
	       (unsigned long)total, (unsigned long)targeted,
	       (drained_ns > first_ns ? drained_ns - first_ns : 0) / 1e9,
	       percentile(0.5), percentile(0.99),
	       seconds(&ru.ru_utime) - seconds(&ru0.ru_utime),
	       seconds(&ru.ru_stime) - seconds(&ru0.ru_stime), ru.ru_maxrss,
	       (unsigned long)st.received, (unsigned long)st.dropped_kernel,
	       (unsigned long)st.dropped_queue, (unsigned long)st.untracked,
	       (unsigned long)st.missed);
	return 0;
}
