// SPDX-License-Identifier: MIT
/*
 * The netlink transport of a sock_diag dump: a NETLINK_SOCK_DIAG socket of
 * the caller's network namespace, or of another one (made there by a
 * short-lived thread of its own, so that no other code of the process ever
 * runs in that namespace).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "error.h"
#include "sockdiag.h"
#include "sync.h"

/* A socket made in another network namespace, by a thread of its own. */
struct netns_socket {
	int netns_fd;
	int fd;	     /* the socket, or -1 */
	int err;     /* errno of the step that failed */
	int entered; /* setns() succeeded */
};

static void *netns_socket_thread(void *arg)
{
	struct netns_socket *job = arg;

	/* a network namespace is per thread: only this one enters it, and
	 * it ends right after, so no other code ever runs in there */
	if (setns(job->netns_fd, CLONE_NEWNET) < 0) {
		job->err = errno;
		return NULL;
	}
	job->entered = 1;
	job->fd =
		socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (job->fd < 0)
		job->err = errno;
	return NULL;
}

static int netns_socket(const struct sockdiag_nl *nl)
{
	struct netns_socket job = { .netns_fd = nl->netns_fd, .fd = -1 };
	pthread_t thread;
	int r;

	r = te_thread_start_masked(&thread, netns_socket_thread, &job);
	if (r)
		return te_fail(r,
			       "connections: cannot start a thread to enter network namespace %s: %s",
			       nl->netns, strerror(r));
	pthread_join(thread, NULL);
	if (job.fd >= 0)
		return job.fd;
	if (job.entered)
		return te_fail(job.err,
			       "cannot open a NETLINK_SOCK_DIAG socket in network namespace %s: %s",
			       nl->netns, strerror(job.err));
	if (job.err == EINVAL)
		return te_fail(EINVAL,
			       "connections: %s is not a network namespace",
			       nl->netns);
	if (job.err == EPERM)
		return te_fail(EPERM,
			       "connections: entering network namespace %s needs CAP_SYS_ADMIN: %s",
			       nl->netns, strerror(job.err));
	return te_fail(job.err,
		       "connections: cannot enter network namespace %s: %s",
		       nl->netns, strerror(job.err));
}

static int nl_socket(const struct sockdiag_nl *nl)
{
	struct timeval tv = { .tv_sec = 5 };
	int fd, one = 1;

	if (nl->netns_fd >= 0) {
		fd = netns_socket(nl);
		if (fd < 0)
			return fd;
	} else {
		fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC,
			    NETLINK_SOCK_DIAG);
		if (fd < 0)
			return te_fail(errno,
				       "cannot open a NETLINK_SOCK_DIAG socket: %s",
				       strerror(errno));
	}
	/* never hang the poller thread on a kernel that does not answer */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	/* best effort: error replies then say what was wrong */
	setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
	return fd;
}

int sockdiag_nl_open(struct sockdiag_nl *nl)
{
	nl->fd = nl_socket(nl);
	return nl->fd < 0 ? nl->fd : 0;
}

void sockdiag_nl_close(struct sockdiag_nl *nl)
{
	if (nl->fd >= 0)
		close(nl->fd);
	nl->fd = -1;
}

static int nl_reset(void *ctx)
{
	struct sockdiag_nl *nl = ctx;

	sockdiag_nl_close(nl);
	return sockdiag_nl_open(nl);
}

static int nl_send(void *ctx, const void *msg, size_t len)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	struct sockdiag_nl *nl = ctx;
	ssize_t n;

	do
		n = sendto(nl->fd, msg, len, 0, (struct sockaddr *)&kernel,
			   sizeof(kernel));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

static ssize_t nl_recv(void *ctx, void *buf, size_t cap)
{
	struct sockdiag_nl *nl = ctx;
	struct sockaddr_nl from;
	socklen_t fromlen;
	ssize_t n;

	for (;;) {
		fromlen = sizeof(from);
		/* MSG_TRUNC: return the real length, so truncation shows */
		n = recvfrom(nl->fd, buf, cap, MSG_TRUNC,
			     (struct sockaddr *)&from, &fromlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (fromlen >= sizeof(from) && from.nl_pid != 0)
			continue; /* not from the kernel: ignore */
		return n;
	}
}

void sockdiag_nl_io(struct sockdiag_nl *nl, struct sockdiag_io *io)
{
	io->reset = nl_reset;
	io->send = nl_send;
	io->recv = nl_recv;
	io->ctx = nl;
}
