// SPDX-License-Identifier: MIT
/*
 * Running untrusted work in a child process first. libbpf (1.1 at least)
 * can crash on a corrupted object file, in parsing or in relocation; a crash
 * in a forked child is an error message instead of the end of the host
 * process. Only custom objects go through this: the built-in one is ours.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "error.h"
#include "tracer.h"

struct trial_result {
	int err;
	char msg[TE_ERROR_LEN];
};

static void child(int fd, int (*fn)(void *), void *arg)
{
	struct trial_result res = { .err = fn(arg) };
	const char *p = (const char *)&res;
	size_t left = sizeof(res);

	if (res.err)
		strncpy(res.msg, tcpevent_last_error(), sizeof(res.msg) - 1);
	while (left) {
		ssize_t n = write(fd, p, left);

		if (n <= 0 && errno != EINTR)
			break;
		if (n > 0)
			p += n, left -= n;
	}
	_exit(0); /* no atexit handlers, no destructors: not our process */
}

int te_trial(int (*fn)(void *), void *arg, const char *what)
{
	struct trial_result res;
	size_t got = 0;
	int fds[2], status = 0;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return te_fail(errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return te_fail(errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(fds[0]);
		child(fds[1], fn, arg);
	}
	close(fds[1]);
	while (got < sizeof(res)) {
		ssize_t n = read(fds[0], (char *)&res + got, sizeof(res) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fds[0]);
	/* The host may reap children itself (SIGCHLD): then the pipe tells. */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (got < sizeof(res))
		return te_fail(EINVAL,
			       "%s is corrupt: checking it crashed libbpf (%s)",
			       what,
			       WIFSIGNALED(status) ?
				       strsignal(WTERMSIG(status)) :
				       "no result");
	if (res.err) {
		res.msg[sizeof(res.msg) - 1] = '\0';
		return te_fail(-res.err, "%s", res.msg);
	}
	return 0;
}
