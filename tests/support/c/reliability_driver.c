/*
 * The four original calls under long-running-agent conditions, for
 * tests/test_reliability_*.py. One scenario per run; each prints what it
 * measured as "key=value" lines and ends with "DONE". Built with
 * -fsanitize=address it also runs under LeakSanitizer (make test-asan).
 *
 *   reliability_driver LIB cycles N
 *	N x (AddProbe, getStatus, cleanup): fds and threads before and after,
 *	then waits for a line on stdin (the test inspects the process).
 *   reliability_driver LIB threads-close
 *	8 threads block in DequeuePerfEvent while a thread makes loopback
 *	connections; another thread calls cleanup(). Each event is recorded by
 *	the thread that got it: duplicates, release latency.
 *   reliability_driver LIB fork
 *	AddProbe, fork(): the child's view of the inherited default tracer, a
 *	new AddProbe in the child, and the parent's events afterwards.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../../benchmarks/legacy_calls.h"
#include "common.h"

static struct legacy_calls legacy;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* ---- loopback connections --------------------------------------------- */

static int listen_fd = -1;
static struct sockaddr_in listen_addr;

static void listen_loopback(void)
{
	socklen_t len = sizeof(listen_addr);

	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&listen_addr, 0, sizeof(listen_addr));
	listen_addr.sin_family = AF_INET;
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (listen_fd < 0 ||
	    bind(listen_fd, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) ||
	    listen(listen_fd, 128) ||
	    getsockname(listen_fd, (struct sockaddr *)&listen_addr, &len)) {
		perror("listener");
		exit(1);
	}
}

/* One connection to our listener, closed client first, the server side
 * after the FIN. Returns the client's port (the server's is the listener's). */
static unsigned connect_once(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	char c;
	int cfd, sfd;

	cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&listen_addr, sizeof(listen_addr))) {
		perror("connect");
		exit(1);
	}
	sfd = accept(listen_fd, NULL, NULL);
	if (sfd < 0 || getsockname(cfd, (struct sockaddr *)&a, &len)) {
		perror("accept");
		exit(1);
	}
	if (write(cfd, "x", 1) != 1 || read(sfd, &c, 1) != 1) {
		perror("exchange");
		exit(1);
	}
	close(cfd);
	if (read(sfd, &c, 1) != 0)	/* the FIN */
		exit(1);
	close(sfd);
	return ntohs(a.sin_port);
}

/* ---- cycles ------------------------------------------------------------ */

/* "HELD <kind> <id>" for each BPF program, map and link we hold an fd of. */
static void print_held(void)
{
	static const char *const keys[] = { "prog_id:", "map_id:", "link_id:" };
	DIR *d = opendir("/proc/self/fdinfo");
	struct dirent *de;
	char path[300], line[256];

	while (d && (de = readdir(d))) {
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%s", de->d_name);
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f))
			for (int k = 0; k < 3; k++)
				if (!strncmp(line, keys[k], strlen(keys[k])))
					printf("HELD %.*s %lu\n",
					       (int)strlen(keys[k]) - 1, keys[k],
					       strtoul(line + strlen(keys[k]), NULL, 10));
		if (f)
			fclose(f);
	}
	if (d)
		closedir(d);
}

static int cycles(int n)
{
	int fds = count_dir("/proc/self/fd"), tasks = count_dir("/proc/self/task");
	int ok = 0;
	double t0 = now();

	printf("fds_before=%d\nthreads_before=%d\n", fds, tasks);
	for (int i = 0; i < n; i++) {
		legacy.AddProbe(NULL);
		ok += legacy.getStatus() == 1;
		print_held();
		if (i == 0)
			printf("fds_attached=%d\nthreads_attached=%d\n",
			       count_dir("/proc/self/fd"), count_dir("/proc/self/task"));
		legacy.cleanup();
		ok += legacy.getStatus() == 0;
	}
	printf("ok=%d\nseconds=%.3f\n", ok, now() - t0);
	printf("fds_after=%d\nthreads_after=%d\n", count_dir("/proc/self/fd"),
	       count_dir("/proc/self/task"));
	printf("INSPECT\n");
	getchar();
	return 0;
}

/* ---- threads-close ----------------------------------------------------- */

#define CONSUMERS 8
#define MAX_KEEP (1 << 18)

struct key {
	uint64_t time;
	uint32_t pid;
	uint16_t sport, dport;
};

struct consumer {
	pthread_t tid;
	struct key *keys;
	size_t n;
	double returned;	/* when it got the zeroed event */
	int blocked;
};

static atomic_int stop_traffic;
static atomic_uint connections_made;

static void *consume(void *arg)
{
	struct consumer *c = arg;

	for (;;) {
		struct tcp_event_t ev = legacy.DequeuePerfEvent();

		if (!ev.family)
			break;
		if (c->n < MAX_KEEP)
			c->keys[c->n++] = (struct key){ ev.EventTime, ev.pid,
							ev.SPT, ev.DPT };
	}
	c->returned = now();
	return NULL;
}

static void *traffic(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_traffic)) {
		connect_once();
		atomic_fetch_add(&connections_made, 1);
	}
	return NULL;
}

static double cleanup_started;

static void *closer(void *arg)
{
	(void)arg;
	cleanup_started = now();
	legacy.cleanup();
	return NULL;
}

static int cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct key));
}

static int threads_close(void)
{
	static struct consumer cs[CONSUMERS];
	pthread_t traffic_tid, closer_tid;
	size_t total = 0, ours = 0, dups = 0, used = 0;
	double latest = 0, cleanup_done;
	struct key *all;

	listen_loopback();
	legacy.AddProbe(NULL);
	printf("status=%u\n", legacy.getStatus());
	for (int i = 0; i < CONSUMERS; i++) {
		cs[i].keys = calloc(MAX_KEEP, sizeof(struct key));
		pthread_create(&cs[i].tid, NULL, consume, &cs[i]);
	}
	pthread_create(&traffic_tid, NULL, traffic, NULL);
	while (atomic_load(&connections_made) < 2000)
		usleep(1000);
	/* Traffic still flows while the tracer goes away. */
	pthread_create(&closer_tid, NULL, closer, NULL);
	pthread_join(closer_tid, NULL);
	cleanup_done = now();
	for (int i = 0; i < CONSUMERS; i++) {
		pthread_join(cs[i].tid, NULL);
		if (cs[i].returned > latest)
			latest = cs[i].returned;
		total += cs[i].n;
		used += cs[i].n > 0;
	}
	atomic_store(&stop_traffic, 1);
	pthread_join(traffic_tid, NULL);

	all = calloc(total ? total : 1, sizeof(*all));
	for (int i = 0, k = 0; i < CONSUMERS; i++)
		for (size_t j = 0; j < cs[i].n; j++)
			all[k++] = cs[i].keys[j];
	qsort(all, total, sizeof(*all), cmp_key);
	for (size_t i = 0; i < total; i++) {
		ours += all[i].pid == (uint32_t)getpid();
		dups += i && !cmp_key(&all[i - 1], &all[i]);
	}
	printf("connections=%u\nevents=%zu\nours=%zu\nduplicates=%zu\nconsumers_used=%zu\n",
	       atomic_load(&connections_made), total, ours, dups, used);
	printf("cleanup_seconds=%.4f\nrelease_seconds=%.4f\n",
	       cleanup_done - cleanup_started, latest - cleanup_started);
	printf("status_after=%u\nthreads_left=%d\n", legacy.getStatus(),
	       count_dir("/proc/self/task"));
	for (int i = 0; i < CONSUMERS; i++)
		free(cs[i].keys);
	free(all);
	close(listen_fd);
	return 0;
}

/* ---- fork -------------------------------------------------------------- */

static void on_alarm(int sig)
{
	(void)sig;
	static const char msg[] = "TIMEOUT\n";

	if (write(1, msg, sizeof(msg) - 1) < 0)
		_exit(4);
	_exit(4);
}

/* Dequeue until both sides of the connection from client port cport,
 * owned by pid, were seen; events of other connections are skipped. */
static int wait_pair(uint32_t pid, unsigned cport, const char *who)
{
	unsigned lport = ntohs(listen_addr.sin_port);
	int seen = 0;

	while (seen != 3) {
		struct tcp_event_t ev = legacy.DequeuePerfEvent();

		if (!ev.family)
			return -1;
		if (ev.SPT == cport && ev.DPT == lport)
			seen |= 1;
		else if (ev.SPT == lport && ev.DPT == cport)
			seen |= 2;
		else
			continue;
		if (ev.pid != pid) {
			printf("%s_wrong_owner=%u\n", who, ev.pid);
			return -1;
		}
	}
	return 0;
}

static int fork_scenario(void)
{
	static const struct tcp_event_t zero;
	unsigned child_port;
	int fds[2], status;
	pid_t child;

	signal(SIGALRM, on_alarm);
	alarm(30);
	listen_loopback();
	legacy.AddProbe(NULL);
	printf("parent_status=%u\n", legacy.getStatus());
	printf("parent_before_fork=%d\n", wait_pair(getpid(), connect_once(), "parent"));
	if (pipe(fds))
		return 1;
	child = fork();
	if (child == 0) {
		struct tcp_event_t ev;
		double t0;

		close(fds[0]);
		/* The inherited default tracer is not the child's. */
		printf("child_status_inherited=%u\n", legacy.getStatus());
		t0 = now();
		ev = legacy.DequeuePerfEvent();
		printf("child_dequeue_zeroed=%d\nchild_dequeue_seconds=%.3f\n",
		       !memcmp(&ev, &zero, sizeof(ev)), now() - t0);
		/* A connection the parent must see, made before the child's own
		 * tracer exists. */
		child_port = connect_once();
		if (write(fds[1], &child_port, sizeof(child_port)) < 0)
			_exit(1);
		legacy.AddProbe(NULL);
		printf("child_status_new=%u\n", legacy.getStatus());
		printf("child_own_events=%d\n",
		       wait_pair(getpid(), connect_once(), "child"));
		legacy.cleanup();
		printf("child_status_cleanup=%u\n", legacy.getStatus());
		fflush(stdout);
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], &child_port, sizeof(child_port)) != sizeof(child_port))
		return 1;
	waitpid(child, &status, 0);
	printf("child_exit=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	/* The child's connection, then ours: neither was taken by the child. */
	printf("parent_sees_child=%d\n", wait_pair(child, child_port, "parent"));
	printf("parent_status_after=%u\n", legacy.getStatus());
	printf("parent_after_fork=%d\n", wait_pair(getpid(), connect_once(), "parent"));
	legacy.cleanup();
	close(listen_fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *scenario = argc > 2 ? argv[2] : "";
	void *lib;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	lib = legacy_calls_open(argv[1], &legacy);
	if (!lib)
		return 2;

	if (!strcmp(scenario, "cycles") && argc > 3)
		rc = cycles(atoi(argv[3]));
	else if (!strcmp(scenario, "threads-close"))
		rc = threads_close();
	else if (!strcmp(scenario, "fork"))
		rc = fork_scenario();
	else {
		fprintf(stderr, "unknown scenario %s\n", scenario);
		return 2;
	}
	legacy.cleanup();
	dlclose(lib);
	printf("DONE\n");
	return rc;
}
