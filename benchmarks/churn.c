// SPDX-License-Identifier: MIT
/*
 * churn - loopback TCP connection-churn generator.
 *
 * Creates many short-lived TCP connections over 127.0.0.1 or ::1, as fast
 * as possible or at a fixed rate, so that a connection tracer's capture
 * completeness and overhead can be measured.  Every connection yields
 * exactly two TCP sockets that reach CLOSE: the client and the accepted
 * child.
 *
 * Build: gcc -O2 -Wall -Wextra -pthread -o churn churn.c
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NSEC_PER_SEC	1000000000ULL
#define LISTEN_BACKLOG	4096
/*
 * Payload moves in lock-step chunks: one thread owns both ends of a
 * connection, so a single blocking write larger than the peer's receive
 * window would never complete.  16 KiB is well under any loopback window.
 */
#define CHUNK		16384
/*
 * Ephemeral port exhaustion clears once TIME_WAIT sockets become reusable
 * (tcp_tw_reuse_delay, 1 s by default), so allow a few seconds per
 * connection before giving up.
 */
#define MAX_RETRIES	5000
#define RETRY_SLEEP_NS	1000000L
#define MAX_THREADS	1024
#define MAX_RATE	1000000000ULL

struct config {
	unsigned long long connections;
	unsigned int threads;
	int family;
	size_t payload;
	unsigned long long rate;
	bool server_first;
	bool reset;
	unsigned int port;
	bool wait;
};

/*
 * Accepted children whose client belongs to another thread.  Threads
 * share one listener, so accept() may hand a thread someone else's
 * connection; it is parked here, indexed by the client's port, until its
 * owner picks it up.  This keeps the close order per connection exact.
 */
struct mailbox {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int fd[65536];
};

static struct config cfg = {
	.connections = 10000,
	.threads = 2,
	.family = AF_INET,
};

static int listen_fd = -1;
static struct sockaddr_storage listen_addr;
static socklen_t listen_addrlen;
static struct timespec start_ts;
static atomic_ullong next_conn;
static atomic_ullong retries;
static struct mailbox mbox = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

struct worker {
	pthread_t tid;
	struct timespec last_close;
	char *buf;
};

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("churn: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_FAILURE);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: churn [options]\n"
		"Loopback TCP connection-churn generator.\n\n"
		"  -n, --connections N  total connections (default 10000)\n"
		"  -t, --threads T      worker threads (default 2)\n"
		"  -6, --ipv6           use ::1 instead of 127.0.0.1\n"
		"  -s, --payload BYTES  bytes each way per connection (default 0)\n"
		"  -r, --rate R         target connections/s over all threads\n"
		"                       (default 0 = as fast as possible)\n"
		"      --server-first   accepted side closes first (default client)\n"
		"      --reset          client closes with SO_LINGER {1,0}: RST\n"
		"      --port P         listen port (default 0 = ephemeral)\n"
		"      --wait           after READY, wait for a line on stdin\n"
		"  -h, --help           show this help\n\n"
		"Prints 'READY pid=<pid> port=<port> family=<4|6>' once\n"
		"listening and one JSON summary line when done.\n");
}

static unsigned long long parse_num(const char *s, const char *what,
				    unsigned long long max)
{
	unsigned long long v;
	char *end;

	/* strtoull() would accept leading blanks and a minus sign. */
	if (!isdigit((unsigned char)*s))
		die("invalid %s '%s' (expected 0..%llu)", what, s, max);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		die("invalid %s '%s' (expected 0..%llu)", what, s, max);
	return v;
}

enum { OPT_SERVER_FIRST = 256, OPT_RESET, OPT_PORT, OPT_WAIT };

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connections", required_argument, NULL, 'n' },
		{ "threads", required_argument, NULL, 't' },
		{ "ipv6", no_argument, NULL, '6' },
		{ "payload", required_argument, NULL, 's' },
		{ "rate", required_argument, NULL, 'r' },
		{ "server-first", no_argument, NULL, OPT_SERVER_FIRST },
		{ "reset", no_argument, NULL, OPT_RESET },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "wait", no_argument, NULL, OPT_WAIT },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "n:t:6s:r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			cfg.connections = parse_num(optarg, "connections",
						    ULLONG_MAX / 2);
			break;
		case 't':
			cfg.threads = parse_num(optarg, "threads", MAX_THREADS);
			if (!cfg.threads)
				die("need at least one thread");
			break;
		case '6':
			cfg.family = AF_INET6;
			break;
		case 's':
			cfg.payload = parse_num(optarg, "payload",
						SIZE_MAX / 2);
			break;
		case 'r':
			cfg.rate = parse_num(optarg, "rate", MAX_RATE);
			break;
		case OPT_SERVER_FIRST:
			cfg.server_first = true;
			break;
		case OPT_RESET:
			cfg.reset = true;
			break;
		case OPT_PORT:
			cfg.port = parse_num(optarg, "port", 65535);
			break;
		case OPT_WAIT:
			cfg.wait = true;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_SUCCESS);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr, "churn: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		exit(2);
	}
}

static double ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static bool ts_after(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec ||
	       (a->tv_sec == b->tv_sec && a->tv_nsec > b->tv_nsec);
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		fprintf(stderr, "churn: warning: RLIMIT_NOFILE: %s\n",
			strerror(errno));
}

/* Only ever the loopback address of the chosen family. */
static void loopback_addr(struct sockaddr_storage *ss, socklen_t *len,
			  unsigned int port)
{
	memset(ss, 0, sizeof(*ss));
	if (cfg.family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(port);
		*len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(port);
		*len = sizeof(*sin);
	}
}

static unsigned int addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void setup_listener(void)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1;

	listen_fd = socket(cfg.family, SOCK_STREAM, 0);
	if (listen_fd < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		die("SO_REUSEADDR: %s", strerror(errno));
	loopback_addr(&ss, &len, cfg.port);
	if (bind(listen_fd, (struct sockaddr *)&ss, len))
		die("bind %s port %u: %s", cfg.family == AF_INET6 ?
		    "[::1]" : "127.0.0.1", cfg.port, strerror(errno));
	if (listen(listen_fd, LISTEN_BACKLOG))
		die("listen: %s", strerror(errno));
	listen_addrlen = sizeof(listen_addr);
	if (getsockname(listen_fd, (struct sockaddr *)&listen_addr,
			&listen_addrlen))
		die("getsockname: %s", strerror(errno));
}

/* Sleep until start + n / rate, so pacing errors never accumulate. */
static void pace(unsigned long long n)
{
	unsigned long long sec = n / cfg.rate;
	unsigned long long ns = (n % cfg.rate) * NSEC_PER_SEC / cfg.rate;
	struct timespec t = start_ts;
	int err;

	t.tv_sec += sec;
	t.tv_nsec += ns;
	if (t.tv_nsec >= (long)NSEC_PER_SEC) {
		t.tv_sec++;
		t.tv_nsec -= NSEC_PER_SEC;
	}
	do {
		err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL);
	} while (err == EINTR);
	if (err)
		die("clock_nanosleep: %s", strerror(err));
}

static void retry_sleep(void)
{
	struct timespec t = { 0, RETRY_SLEEP_NS };

	atomic_fetch_add_explicit(&retries, 1, memory_order_relaxed);
	nanosleep(&t, NULL);
}

static bool transient(int err)
{
	return err == EADDRNOTAVAIL || err == EADDRINUSE ||
	       err == ECONNREFUSED || err == ECONNRESET ||
	       err == ETIMEDOUT || err == EAGAIN;
}

/*
 * A blocking connect() interrupted by a signal keeps going in the
 * background; wait for it and fetch its result instead of reconnecting.
 */
static int finish_connect(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int err;

	while (poll(&pfd, 1, -1) < 0) {
		if (errno != EINTR)
			return errno;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

/* Returns the connected client fd and stores its local port. */
static int connect_client(unsigned int *local_port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int tries, fd, err;

	for (tries = 0;; tries++) {
		fd = socket(cfg.family, SOCK_STREAM, 0);
		if (fd < 0)
			die("socket: %s", strerror(errno));
		err = connect(fd, (struct sockaddr *)&listen_addr,
			      listen_addrlen) ? errno : 0;
		if (err == EINTR)
			err = finish_connect(fd);
		if (!err)
			break;
		close(fd);
		if (!transient(err) || tries >= MAX_RETRIES)
			die("connect: %s (after %d retries)", strerror(err),
			    tries);
		retry_sleep();
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		die("getsockname: %s", strerror(errno));
	*local_port = addr_port(&ss);
	return fd;
}

/* Take our own child from the mailbox, parking @other if it isn't ours. */
static int mailbox_exchange(int other, unsigned int other_port,
			    unsigned int my_port)
{
	int fd;

	pthread_mutex_lock(&mbox.lock);
	mbox.fd[other_port] = other;
	pthread_cond_broadcast(&mbox.cond);
	while (mbox.fd[my_port] < 0)
		pthread_cond_wait(&mbox.cond, &mbox.lock);
	fd = mbox.fd[my_port];
	mbox.fd[my_port] = -1;
	pthread_mutex_unlock(&mbox.lock);
	return fd;
}

/*
 * Accept one child and return the one whose peer is our client.  Every
 * thread connects before it accepts, so whoever holds our child is
 * guaranteed to park it: this cannot deadlock.
 */
static int accept_own(unsigned int my_port)
{
	struct sockaddr_storage ss;
	unsigned int peer_port;
	socklen_t len;
	int fd;

	do {
		len = sizeof(ss);
		fd = accept(listen_fd, (struct sockaddr *)&ss, &len);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		die("accept: %s", strerror(errno));
	peer_port = addr_port(&ss);
	if (peer_port == my_port)
		return fd;
	return mailbox_exchange(fd, peer_port, my_port);
}

static void write_all(int fd, const char *buf, size_t len, const char *who)
{
	ssize_t n;

	while (len) {
		n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("%s write: %s", who, strerror(errno));
		}
		buf += n;
		len -= n;
	}
}

static void read_all(int fd, char *buf, size_t len, const char *who)
{
	ssize_t n;

	while (len) {
		n = read(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("%s read: %s", who, strerror(errno));
		}
		if (!n)
			die("%s read: unexpected EOF", who);
		buf += n;
		len -= n;
	}
}

/* client -> server, then server -> client, S bytes each way. */
static void exchange(int cfd, int sfd, char *buf)
{
	size_t left = cfg.payload, n;

	while (left) {
		n = left < CHUNK ? left : CHUNK;
		write_all(cfd, buf, n, "client");
		read_all(sfd, buf, n, "server");
		write_all(sfd, buf, n, "server");
		read_all(cfd, buf, n, "client");
		left -= n;
	}
}

static void close_pair(int cfd, int sfd)
{
	if (cfg.reset) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		if (setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)))
			die("SO_LINGER: %s", strerror(errno));
	}
	/* close() is not retried on EINTR: on Linux the fd is gone anyway. */
	if (cfg.server_first) {
		close(sfd);
		close(cfd);
	} else {
		close(cfd);
		close(sfd);
	}
}

static void one_connection(char *buf)
{
	unsigned int port;
	int cfd, sfd;

	cfd = connect_client(&port);
	sfd = accept_own(port);
	if (cfg.payload)
		exchange(cfd, sfd, buf);
	close_pair(cfd, sfd);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned long long n;

	for (;;) {
		n = atomic_fetch_add(&next_conn, 1);
		if (n >= cfg.connections)
			break;
		if (cfg.rate)
			pace(n);
		one_connection(w->buf);
		clock_gettime(CLOCK_MONOTONIC, &w->last_close);
	}
	return NULL;
}

static void wait_for_go(void)
{
	int c;

	/* Any line, or EOF, releases us. */
	do {
		c = getchar();
	} while (c != EOF && c != '\n');
}

static double tv_sec(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void report(double seconds)
{
	struct rusage ru;
	double rate = seconds > 0 ? (double)cfg.connections / seconds : 0;

	if (getrusage(RUSAGE_SELF, &ru))
		die("getrusage: %s", strerror(errno));
	printf("{\"pid\":%d,\"port\":%u,\"family\":%d,\"connections\":%llu,"
	       "\"threads\":%u,\"payload\":%zu,\"seconds\":%.6f,"
	       "\"rate\":%.1f,\"retries\":%llu,\"cpu_user\":%.6f,"
	       "\"cpu_sys\":%.6f}\n",
	       (int)getpid(), addr_port(&listen_addr),
	       cfg.family == AF_INET6 ? 6 : 4, cfg.connections, cfg.threads,
	       cfg.payload, seconds, rate,
	       (unsigned long long)atomic_load(&retries),
	       tv_sec(&ru.ru_utime), tv_sec(&ru.ru_stime));
	fflush(stdout);
}

static void run_workers(struct worker *w)
{
	struct timespec end;
	unsigned int i;
	int err;

	clock_gettime(CLOCK_MONOTONIC, &start_ts);
	for (i = 0; i < cfg.threads; i++) {
		w[i].last_close = start_ts;
		err = pthread_create(&w[i].tid, NULL, worker_main, &w[i]);
		if (err)
			die("pthread_create: %s", strerror(err));
	}
	end = start_ts;
	for (i = 0; i < cfg.threads; i++) {
		pthread_join(w[i].tid, NULL);
		if (ts_after(&w[i].last_close, &end))
			end = w[i].last_close;
	}
	report(ts_diff(&start_ts, &end));
}

int main(int argc, char **argv)
{
	struct worker *w;
	unsigned int i;
	size_t buflen;

	parse_args(argc, argv);
	raise_nofile();
	for (i = 0; i < 65536; i++)
		mbox.fd[i] = -1;

	w = calloc(cfg.threads, sizeof(*w));
	if (!w)
		die("out of memory");
	buflen = cfg.payload < CHUNK ? cfg.payload : CHUNK;
	for (i = 0; i < cfg.threads && buflen; i++) {
		w[i].buf = calloc(1, buflen);
		if (!w[i].buf)
			die("out of memory");
	}

	setup_listener();
	printf("READY pid=%d port=%u family=%d\n", (int)getpid(),
	       addr_port(&listen_addr), cfg.family == AF_INET6 ? 6 : 4);
	fflush(stdout);
	if (cfg.wait)
		wait_for_go();

	run_workers(w);
	close(listen_fd);
	for (i = 0; i < cfg.threads; i++)
		free(w[i].buf);
	free(w);
	return 0;
}
