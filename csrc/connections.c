// SPDX-License-Identifier: MIT
/*
 * tcpevent_connections() (tcpevent_conn.h): the live TCP sockets of both
 * families through sock_diag, in the caller's network namespace or another
 * one, with their owners found in /proc (procowner.h) when asked.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "procowner.h"
#include "sockdiag.h"

void tcpevent_conn_query_init(struct tcpevent_conn_query *q)
{
	memset(q, 0, sizeof(*q));
	q->size = sizeof(*q);
}

/* The query before netns was appended: still accepted. */
#define QUERY_SIZE_V1 offsetof(struct tcpevent_conn_query, netns)

static int check_query(const struct tcpevent_conn_query *q)
{
	if (q->size != sizeof(*q) && q->size != QUERY_SIZE_V1)
		return te_fail(EINVAL,
			       "connections: query size %zu, expected %zu (use tcpevent_conn_query_init)",
			       q->size, sizeof(*q));
	if (q->family && q->family != AF_INET && q->family != AF_INET6)
		return te_fail(EINVAL,
			       "connections: family %u is neither AF_INET nor AF_INET6",
			       q->family);
	if ((q->n_ports && !q->ports) || (q->n_pids && !q->pids))
		return te_fail(EINVAL,
			       "connections: a port or pid count without its array");
	return 0;
}

/* Fill pid/task/cmdline; with q->pids keep only the sockets found. */
static int attribute(struct sockdiag_result *res,
		     const struct tcpevent_conn_query *q)
{
	struct procowner po;
	size_t i, kept = 0;
	int r;

	r = procowner_init(&po, res->count, q->with_cmdline);
	for (i = 0; !r && i < res->count; i++)
		r = procowner_want(&po, res->conns[i].inode);
	if (r)
		goto out_nomem;
	r = procowner_scan(&po, q->pids, q->n_pids);
	if (r) {
		procowner_free(&po);
		return r;
	}
	for (i = 0; i < res->count; i++) {
		const struct procowner_proc *p;
		struct tcpevent_conn *c;

		p = procowner_lookup(&po, res->conns[i].inode);
		if (!p && q->n_pids)
			continue;
		c = &res->conns[kept];
		if (kept != i) {
			*c = res->conns[i];
			res->addrs[kept] = res->addrs[i];
		}
		kept++;
		if (!p)
			continue;
		c->pid = p->pid;
		memcpy(c->task, p->comm, sizeof(c->task));
		c->task[sizeof(c->task) - 1] = '\0';
		if (q->with_cmdline) {
			c->cmdline = strdup(p->cmdline ? p->cmdline : "");
			if (!c->cmdline) {
				res->count = kept;
				goto out_nomem;
			}
		}
	}
	res->count = kept;
	procowner_free(&po);
	return 0;
out_nomem:
	procowner_free(&po);
	return te_fail(ENOMEM, "out of memory");
}

/* nl->netns_fd: the namespace at path (NULL: -1, the caller's). */
static int open_netns(struct sockdiag_nl *nl, const char *path)
{
	nl->fd = -1;
	nl->netns_fd = -1;
	nl->netns = path;
	if (!path)
		return 0;
	if (!*path)
		return te_fail(EINVAL,
			       "connections: the network namespace path is empty");
	nl->netns_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (nl->netns_fd < 0)
		return te_fail(errno, "connections: network namespace %s: %s",
			       path, strerror(errno));
	return 0;
}

int sockdiag_connections(const struct tcpevent_conn_query *q,
			 struct sockdiag_result *res)
{
	uint32_t states = q->states ? q->states : TCPEVENT_STATES_CONNECTED;
	struct sockdiag_nl nl;
	struct sockdiag_io io;
	int r;

	res->ports = q->ports;
	res->n_ports = q->n_ports;
	r = open_netns(&nl, q->netns);
	if (r)
		return r;
	r = sockdiag_nl_open(&nl);
	if (!r) {
		sockdiag_nl_io(&nl, &io);
		if (q->family != AF_INET6)
			r = sockdiag_dump(&io, AF_INET, states, res);
		if (!r && q->family != AF_INET)
			r = sockdiag_dump(&io, AF_INET6, states, res);
		sockdiag_nl_close(&nl);
	}
	if (nl.netns_fd >= 0)
		close(nl.netns_fd);

	if (!r && (q->with_process || q->with_cmdline || q->n_pids))
		r = attribute(res, q);
	if (r)
		sockdiag_result_free(res);
	return r;
}

int tcpevent_connections(const struct tcpevent_conn_query *uq,
			 struct tcpevent_conn **out, size_t *count)
{
	struct sockdiag_result res = { 0 };
	struct tcpevent_conn_query q;
	int r;

	if (!out || !count)
		return te_fail(EINVAL, "connections: NULL output");
	*out = NULL;
	*count = 0;
	tcpevent_conn_query_init(&q);
	if (uq) {
		r = check_query(uq);
		if (r)
			return r;
		/* a caller's older, smaller query leaves the rest as init */
		memcpy(&q, uq, uq->size);
		q.size = sizeof(q);
	}
	r = sockdiag_connections(&q, &res);
	if (r)
		return r;
	/* the caller gets the array of sockets alone */
	free(res.addrs);
	res.addrs = NULL;
	if (!res.count)
		sockdiag_result_free(&res);
	*out = res.conns;
	*count = res.count;
	te_error_clear();
	return 0;
}

void tcpevent_connections_free(struct tcpevent_conn *conns, size_t count)
{
	size_t i;

	if (!conns)
		return;
	for (i = 0; i < count; i++)
		free(conns[i].cmdline);
	free(conns);
}
