// SPDX-License-Identifier: MIT
/*
 * The UDP tracer's thread: it sleeps until the next export, a release
 * record (then it scans at most every TE_UDP_RELEASE_NS, so that a burst
 * of closes costs one scan) or the stop. When told to stop it detaches
 * the programs, takes the last release records, reports what every flow
 * owes and closes the queue: the caller of udpevent_close() only waits.
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "error.h"
#include "sync.h"
#include "udp_tracer.h"

#define TE_UDP_RELEASE_NS 50000000LL /* 50 ms */

static int timeout_ms(struct udpevent *u, int64_t now)
{
	int64_t until = u->next_flush;

	if (u->released.n && u->last_scan + TE_UDP_RELEASE_NS < until)
		until = u->last_scan + TE_UDP_RELEASE_NS;
	if (until <= now)
		return 0;
	return (int)((until - now + 999999) / 1000000);
}

static void *poller_main(void *arg)
{
	struct udpevent *u = arg;
	struct epoll_event evs[2];
	int64_t now;
	bool export;

	while (!atomic_load(&u->stopping)) {
		now = te_clock_boottime_ns();
		epoll_wait(u->epoll_fd, evs, 2, timeout_ms(u, now));
		if (atomic_load(&u->stopping))
			break;
		ring_buffer__consume(u->bpf.rb);
		now = te_clock_boottime_ns();
		export = now >= u->next_flush;
		if (export) {
			u->next_flush += u->flush_ns;
			if (u->next_flush <= now) /* late: no catching up */
				u->next_flush = now + u->flush_ns;
		}
		if (export ||
		    (u->released.n && now - u->last_scan >= TE_UDP_RELEASE_NS))
			te_udp_scan(u, export, false);
	}
	te_udp_bpf_detach(&u->bpf);
	atomic_store(&u->detached, 1);
	ring_buffer__consume(u->bpf.rb);
	te_udp_scan(u, false, true);
	te_queue_close(&u->queue);
	return NULL;
}

static int watch(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int te_udp_poller_start(struct udpevent *u)
{
	int err;

	u->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	u->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (u->epoll_fd < 0 || u->stop_fd < 0 ||
	    watch(u->epoll_fd, ring_buffer__epoll_fd(u->bpf.rb)) ||
	    watch(u->epoll_fd, u->stop_fd))
		return te_fail(errno, "cannot set up the UDP poller: %s",
			       strerror(errno));
	u->last_scan = te_clock_boottime_ns();
	u->next_flush = u->last_scan + u->flush_ns;
	/* The host's signal handlers must never run on our thread. */
	err = te_thread_start_masked(&u->poller, poller_main, u);
	if (err)
		return te_fail(err, "cannot start the UDP poller thread: %s",
			       strerror(err));
	u->poller_running = true;
	return 0;
}

/* Only an atomic store, a write and a join: fit for a signal handler. */
void te_udp_poller_stop(struct udpevent *u)
{
	atomic_store(&u->stopping, 1);
	if (u->stop_fd >= 0)
		eventfd_write(u->stop_fd, 1);
	if (u->poller_running)
		pthread_join(u->poller, NULL);
	u->poller_running = false;
}
