// SPDX-License-Identifier: MIT
/*
 * udp_flood - two threads on loopback: one sends small datagrams on a
 * connected UDP socket as fast as it can, the other receives them. Prints
 * one JSON line: datagrams sent and received, seconds, send rate.
 *
 *   udp_flood [-n DATAGRAMS] [-s SIZE] [-6] [--wait]
 *
 * --wait: print "READY pid=<pid>" and start when a line comes on stdin.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long total = 1000000;
static int size = 32;
static int rx_fd;
static volatile int sending = 1;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *receiver(void *arg)
{
	long *got = arg;
	char buf[2048];
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };

	setsockopt(rx_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (;;) {
		if (recv(rx_fd, buf, sizeof(buf), 0) >= 0)
			(*got)++;
		else if (!sending)
			break;	/* timed out after the sender finished */
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage a = { 0 }, b = { 0 };
	socklen_t len;
	int family = AF_INET, wait = 0, tx_fd, rcvbuf = 4 << 20;
	long got = 0, sent = 0;
	char buf[2048] = { 0 };
	pthread_t thread;
	double t0, t1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			total = atol(argv[++i]);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			size = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-6"))
			family = AF_INET6;
		else if (!strcmp(argv[i], "--wait"))
			wait = 1;
	}
	if (size < 0 || size > (int)sizeof(buf))
		size = 32;
	a.ss_family = b.ss_family = family;
	if (family == AF_INET) {
		((struct sockaddr_in *)&a)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		((struct sockaddr_in *)&b)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof(struct sockaddr_in);
	} else {
		((struct sockaddr_in6 *)&a)->sin6_addr = in6addr_loopback;
		((struct sockaddr_in6 *)&b)->sin6_addr = in6addr_loopback;
		len = sizeof(struct sockaddr_in6);
	}
	rx_fd = socket(family, SOCK_DGRAM, 0);
	tx_fd = socket(family, SOCK_DGRAM, 0);
	setsockopt(rx_fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(rx_fd, (struct sockaddr *)&a, len) || bind(tx_fd, (struct sockaddr *)&b, len) ||
	    getsockname(rx_fd, (struct sockaddr *)&a, &len) ||
	    connect(tx_fd, (struct sockaddr *)&a, len)) {
		perror("udp_flood: socket setup");
		return 1;
	}
	if (wait) {
		printf("READY pid=%d\n", getpid());
		fflush(stdout);
		if (!fgets(buf, sizeof(buf), stdin))
			return 1;
		memset(buf, 0, sizeof(buf));
	}
	pthread_create(&thread, NULL, receiver, &got);
	t0 = now();
	while (sent < total) {
		if (send(tx_fd, buf, size, 0) == size)
			sent++;
		else if (errno != ENOBUFS && errno != EAGAIN && errno != ECONNREFUSED)
			break;
	}
	t1 = now();
	sending = 0;
	pthread_join(thread, NULL);
	close(tx_fd);
	close(rx_fd);
	printf("{\"sent\": %ld, \"received\": %ld, \"seconds\": %.6f, \"rate\": %.1f}\n",
	       sent, got, t1 - t0, sent / (t1 - t0));
	return 0;
}
