/*
 * The tracer as an unprivileged program would run it, for
 * tests/test_privileges.py: the test starts it with exactly the capabilities
 * under test (setpriv) and reads what it prints. Linked against a copy of
 * libtcpEvent.so in its own directory (rpath $ORIGIN), so that nothing it
 * needs lies under a directory the unprivileged uid cannot read.
 *
 *   priv_driver caps
 *   priv_driver trace COUNT TIMEOUT_MS SNAPSHOT_MS PORT...
 *   priv_driver connections PORT...
 *
 * caps: prints "CAPEFF <hex>" (this process's effective set) and exits.
 * trace: opens a tracer filtered on the ports; prints "ERROR errno=<n> <text>"
 * and exits 3 if it cannot, else "WARNINGS <text>", "READY", then one line
 * per event until COUNT close events or TIMEOUT_MS, then "STATS ..." and
 * "DONE". SNAPSHOT_MS > 0 also asks for snapshot events (printed, not
 * counted).
 * connections: one "CONN ..." line per connected socket on the ports, with
 * its owner as tcpevent_connections() finds it, then "DONE".
 *
 * With PRIV_DRIVER_NO_ACCEPT_HOOKS set, trace asks for
 * TCPEVENT_OPT_NO_ACCEPT_HOOKS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sockdiag.h"
#include "tcpevent.h"

#define MAX_PORTS 16

static int parse_ports(int argc, char **argv, uint16_t *ports)
{
	int n = 0;

	for (int i = 0; i < argc && n < MAX_PORTS; i++)
		ports[n++] = (uint16_t)strtoul(argv[i], NULL, 10);
	return n;
}

static void print_caps(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "CapEff:", 7))
			printf("CAPEFF %s", line + 7 + strspn(line + 7, " \t"));
	fclose(f);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void print_event(const struct tcpevent_event *e)
{
	printf("%s pid=%u uid=%u family=%u sport=%u dport=%u state=%u task=%s saddr=%s daddr=%s\n",
	       e->kind == TCPEVENT_KIND_SNAPSHOT ? "SNAPSHOT" : "EVENT",
	       e->pid, e->uid, e->family, e->sport, e->dport, e->state,
	       e->task, e->saddr, e->daddr);
}

static int trace(int argc, char **argv)
{
	struct tcpevent_options o;
	struct tcpevent_stats st;
	struct tcpevent_event ev;
	uint16_t ports[MAX_PORTS];
	struct tcpevent *t;
	int count, closes = 0, err;
	double deadline;

	if (argc < 4)
		return 2;
	count = atoi(argv[0]);
	tcpevent_options_init(&o);
	o.snapshot_interval_ms = (uint32_t)atoi(argv[2]);
	o.n_ports = (uint16_t)parse_ports(argc - 3, argv + 3, ports);
	o.ports = ports;
	if (getenv("PRIV_DRIVER_NO_ACCEPT_HOOKS"))
		o.flags |= TCPEVENT_OPT_NO_ACCEPT_HOOKS;
	err = tcpevent_open(&o, &t);
	if (err) {
		printf("ERROR errno=%d %s\n", -err, tcpevent_last_error());
		return 3;
	}
	printf("WARNINGS %s\n", tcpevent_warnings(t));
	printf("READY\n");
	deadline = now() + atoi(argv[1]) / 1000.0;
	while (closes < count && now() < deadline) {
		err = tcpevent_dequeue(t, &ev, 50);
		if (err < 0) {
			printf("ERROR errno=%d %s\n", -err, tcpevent_last_error());
			break;
		}
		if (err == 1) {
			print_event(&ev);
			closes += ev.kind == TCPEVENT_KIND_CLOSE;
		}
	}
	if (!tcpevent_stats(t, &st))
		printf("STATS received=%llu untracked=%llu dropped_kernel=%llu missed=%llu snapshots=%llu snapshot_errors=%llu\n",
		       (unsigned long long)st.received,
		       (unsigned long long)st.untracked,
		       (unsigned long long)st.dropped_kernel,
		       (unsigned long long)st.missed,
		       (unsigned long long)st.snapshots,
		       (unsigned long long)st.snapshot_errors);
	tcpevent_free(t);
	return 0;
}

static int connections(int argc, char **argv)
{
	struct tcpevent_conn_query q;
	struct tcpevent_conn *conns;
	uint16_t ports[MAX_PORTS];
	size_t n;
	int err;

	tcpevent_conn_query_init(&q);
	q.n_ports = (uint16_t)parse_ports(argc, argv, ports);
	q.ports = ports;
	q.with_process = 1;
	err = tcpevent_connections(&q, &conns, &n);
	if (err) {
		printf("ERROR errno=%d %s\n", -err, tcpevent_last_error());
		return 3;
	}
	for (size_t i = 0; i < n; i++)
		printf("CONN pid=%u uid=%u sport=%u dport=%u state=%u task=%s\n",
		       conns[i].pid, conns[i].uid, conns[i].sport,
		       conns[i].dport, conns[i].state, conns[i].task);
	tcpevent_connections_free(conns, n);
	return 0;
}

int main(int argc, char **argv)
{
	int rc = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return 2;
	print_caps();
	if (!strcmp(argv[1], "caps"))
		rc = 0;
	else if (!strcmp(argv[1], "trace"))
		rc = trace(argc - 2, argv + 2);
	else if (!strcmp(argv[1], "connections"))
		rc = connections(argc - 2, argv + 2);
	if (!rc)
		printf("DONE\n");
	return rc;
}
