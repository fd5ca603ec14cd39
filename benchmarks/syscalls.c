// SPDX-License-Identifier: MIT
/*
 * What a tracer costs every other process on the host: the time of a
 * trivial system call (getppid), median of ROUNDS rounds of N calls.
 * The calling thread's CPU time, not the wall clock: time spent preempted
 * by other work on a busy machine is not the system call's cost.
 *
 *   syscalls [N [ROUNDS]]   prints {"ns_per_syscall": ...}
 *
 * Enabling any syscall tracepoint (the accept() hooks are two) sends every
 * system call of every task through the kernel's syscall-tracing slow path,
 * whatever the call: this shows it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	int rounds = argc > 2 ? atoi(argv[2]) : 7;
	double ns[64];

	if (n < 1 || rounds < 1 || rounds > 64) {
		fprintf(stderr, "usage: %s [N >= 1 [ROUNDS 1..64]]\n", argv[0]);
		return 2;
	}
	for (int r = 0; r < rounds; r++) {
		double t0 = cpu_ns();

		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);	/* not cached by libc */
		ns[r] = (cpu_ns() - t0) / n;
	}
	qsort(ns, rounds, sizeof(ns[0]), by_value);
	printf("{\"ns_per_syscall\": %.1f}\n", ns[rounds / 2]);
	return 0;
}
