// SPDX-License-Identifier: MIT
/*
 * Capabilities, tracefs and kernel.perf_event_paranoid, read to explain a
 * refusal in terms of its cause and remedy (privileges.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "error.h"
#include "privileges.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

/* This process's effective capabilities; false if they cannot be read. */
static bool read_caps(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};

	memset(data, 0, 2 * sizeof(*data));
	return !syscall(SYS_capget, &hdr, data);
}

static bool has_cap(const struct __user_cap_data_struct *d, int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

bool te_has_capability(int cap)
{
	struct __user_cap_data_struct data[2];

	return read_caps(data) && has_cap(data, cap);
}

int te_check_privileges(void)
{
	struct __user_cap_data_struct data[2];
	bool bpf, perfmon;

	if (!read_caps(data))
		return 0; /* cannot tell: let the kernel decide */
	if (has_cap(data, CAP_SYS_ADMIN))
		return 0;
	bpf = has_cap(data, CAP_BPF);
	perfmon = has_cap(data, CAP_PERFMON);
	if (bpf && perfmon)
		return 0;
	return te_fail(EPERM,
		       "permission denied: missing capability %s%s%s (loading a tracing BPF program needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN); %s",
		       bpf ? "" : "CAP_BPF", !bpf && !perfmon ? " and " : "",
		       perfmon ? "" : "CAP_PERFMON", TE_PRIV_REMEDY);
}

bool te_perf_events_locked(void)
{
	struct __user_cap_data_struct data[2];
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "re");
	int level = 0;

	if (!f)
		return false;
	if (fscanf(f, "%d", &level) != 1)
		level = 0;
	fclose(f);
	if (level <= 2 || !read_caps(data))
		return false;
	return !has_cap(data, CAP_SYS_ADMIN);
}

/* Systemd normally mounts tracefs; a container or a minimal init may not. */
bool te_ensure_tracefs(void)
{
	if (!access(TE_TRACEFS "/events", F_OK) ||
	    !access("/sys/kernel/debug/tracing/events", F_OK))
		return true;
	if (getenv("TCPEVENT_NO_TRACEFS_MOUNT"))
		return false;
	return !mount("tracefs", TE_TRACEFS, "tracefs",
		      MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

bool te_tracefs_id_readable(const char *section)
{
	const char *tp = strchr(section, '/');
	char path[256];

	if (!tp)
		return false;
	snprintf(path, sizeof(path), TE_TRACEFS "/events%s/id", tp);
	if (!faccessat(AT_FDCWD, path, R_OK, AT_EACCESS))
		return true;
	snprintf(path, sizeof(path), "/sys/kernel/debug/tracing/events%s/id",
		 tp);
	return !faccessat(AT_FDCWD, path, R_OK, AT_EACCESS);
}
