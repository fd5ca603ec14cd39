// SPDX-License-Identifier: MIT
/*
 * test_sockdiag.c - driver for the sock_diag client (csrc/sockdiag.h lists
 * its files; csrc/procowner.c), run by tests/test_sockdiag_c.py.
 *
 *   list [4|6|0] [--port P]... [--pid P]... [--process] [--cmdline]
 *        [--states MASK] [--time]
 *       one JSON object per socket on stdout; with --time, the dump-only
 *       and the full call's durations as JSON on stderr
 *   parse-short   crafted netlink buffers through sockdiag_parse()
 *   restart       sockdiag_dump() against scripted kernel replies
 *   fuzz N        N randomly damaged buffers through sockdiag_parse()
 *   bench N       open N loopback (127.0.0.1) connections, time the listing
 *
 * Exit status 0 on success; failures are printed as "FAIL ..." lines.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "sockdiag.h"
#include "procowner.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>

static int failures;

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			failures++;					\
			printf("FAIL %s:%d: %s: ", __func__, __LINE__, #cond); \
			printf(__VA_ARGS__);				\
			printf("\n");					\
		}							\
	} while (0)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* ---- JSON output ------------------------------------------------------ */

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* Every non-bitfield tcp_info field: absent ones print as null. */
#define TCP_INFO_FIELDS(X)						\
	X(tcpi_state) X(tcpi_ca_state) X(tcpi_retransmits) X(tcpi_probes) \
	X(tcpi_backoff) X(tcpi_options) X(tcpi_rto) X(tcpi_ato)		\
	X(tcpi_snd_mss) X(tcpi_rcv_mss) X(tcpi_unacked) X(tcpi_sacked)	\
	X(tcpi_lost) X(tcpi_retrans) X(tcpi_fackets)			\
	X(tcpi_last_data_sent) X(tcpi_last_ack_sent)			\
	X(tcpi_last_data_recv) X(tcpi_last_ack_recv) X(tcpi_pmtu)	\
	X(tcpi_rcv_ssthresh) X(tcpi_rtt) X(tcpi_rttvar)			\
	X(tcpi_snd_ssthresh) X(tcpi_snd_cwnd) X(tcpi_advmss)		\
	X(tcpi_reordering) X(tcpi_rcv_rtt) X(tcpi_rcv_space)		\
	X(tcpi_total_retrans) X(tcpi_pacing_rate) X(tcpi_max_pacing_rate) \
	X(tcpi_bytes_acked) X(tcpi_bytes_received) X(tcpi_segs_out)	\
	X(tcpi_segs_in) X(tcpi_notsent_bytes) X(tcpi_min_rtt)		\
	X(tcpi_data_segs_in) X(tcpi_data_segs_out) X(tcpi_delivery_rate) \
	X(tcpi_busy_time) X(tcpi_rwnd_limited) X(tcpi_sndbuf_limited)	\
	X(tcpi_delivered) X(tcpi_delivered_ce) X(tcpi_bytes_sent)	\
	X(tcpi_bytes_retrans) X(tcpi_dsack_dups) X(tcpi_reord_seen)	\
	X(tcpi_rcv_ooopack) X(tcpi_snd_wnd) X(tcpi_rcv_wnd) X(tcpi_rehash) \
	X(tcpi_total_rto) X(tcpi_total_rto_recoveries)			\
	X(tcpi_total_rto_time) X(tcpi_received_ce)			\
	X(tcpi_delivered_e1_bytes) X(tcpi_delivered_e0_bytes)		\
	X(tcpi_delivered_ce_bytes) X(tcpi_received_e1_bytes)		\
	X(tcpi_received_e0_bytes) X(tcpi_received_ce_bytes)		\
	X(tcpi_accecn_fail_mode) X(tcpi_accecn_opt_seen)

static void print_info(const struct tcpevent_conn *c)
{
	const struct tcpevent_tcp_info *ti = &c->info;
	int bits = c->info_len >= 8;

	printf("{");
#define PRINT_FIELD(f)							\
	if (TCPEVENT_TCP_INFO_HAS(c, f))				\
		printf("\"%s\": %" PRIu64 ", ", &#f[5], (uint64_t)ti->f); \
	else								\
		printf("\"%s\": null, ", &#f[5]);
	TCP_INFO_FIELDS(PRINT_FIELD)
#undef PRINT_FIELD
	if (bits)
		printf("\"snd_wscale\": %u, \"rcv_wscale\": %u, "
		       "\"delivery_rate_app_limited\": %u, "
		       "\"fastopen_client_fail\": %u}",
		       ti->tcpi_snd_wscale, ti->tcpi_rcv_wscale,
		       ti->tcpi_delivery_rate_app_limited,
		       ti->tcpi_fastopen_client_fail);
	else
		printf("\"snd_wscale\": null, \"rcv_wscale\": null, "
		       "\"delivery_rate_app_limited\": null, "
		       "\"fastopen_client_fail\": null}");
}

static void print_conn(const struct tcpevent_conn *c)
{
	const struct tcpevent_skmem *m = &c->skmem;

	printf("{\"family\": %u, \"sport\": %u, \"dport\": %u, "
	       "\"state\": %u, \"shutdown\": %u, \"saddr\": ",
	       c->family, c->sport, c->dport, c->state, c->shutdown);
	json_str(c->saddr);
	printf(", \"daddr\": ");
	json_str(c->daddr);
	printf(", \"ifindex\": %u, \"uid\": %u, \"inode\": %" PRIu64
	       ", \"cookie\": %" PRIu64 ", \"rqueue\": %u, \"wqueue\": %u"
	       ", \"expires_ms\": %u, \"timer\": %u, \"retrans\": %u"
	       ", \"tos\": %u, \"tclass\": %u, \"v6only\": %u, \"mark\": %u"
	       ", \"attrs\": %u, \"cgroup_id\": %" PRIu64 ", \"pid\": %u"
	       ", \"task\": ",
	       c->ifindex, c->uid, c->inode, c->cookie, c->rqueue, c->wqueue,
	       c->expires_ms, c->timer, c->retrans, c->tos, c->tclass,
	       c->v6only, c->mark, c->attrs, c->cgroup_id, c->pid);
	json_str(c->task);
	printf(", \"cmdline\": ");
	if (c->cmdline)
		json_str(c->cmdline);
	else
		printf("null");
	printf(", \"cong\": ");
	json_str(c->cong);
	printf(", \"skmem_count\": %u, \"skmem\": [%u, %u, %u, %u, %u, %u, %u, %u, %u]",
	       c->skmem_count, m->rmem_alloc, m->rcvbuf, m->wmem_alloc,
	       m->sndbuf, m->fwd_alloc, m->wmem_queued, m->optmem,
	       m->backlog, m->drops);
	printf(", \"info_len\": %u, \"info\": ", c->info_len);
	print_info(c);
	printf("}\n");
}

/* ---- list ------------------------------------------------------------- */

static int cmd_list(int argc, char **argv)
{
	uint16_t ports[64];
	uint32_t pids[64];
	struct tcpevent_conn_query q;
	struct tcpevent_conn *conns;
	size_t n, i;
	double t0, t1, t2 = 0;
	int timing = 0, r;

	tcpevent_conn_query_init(&q);
	q.ports = ports;
	q.pids = pids;
	for (i = 0; i < (size_t)argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "4"))
			q.family = AF_INET;
		else if (!strcmp(a, "6"))
			q.family = AF_INET6;
		else if (!strcmp(a, "0"))
			q.family = 0;
		else if (!strcmp(a, "--process"))
			q.with_process = 1;
		else if (!strcmp(a, "--cmdline"))
			q.with_cmdline = 1;
		else if (!strcmp(a, "--time"))
			timing = 1;
		else if (!strcmp(a, "--port") && i + 1 < (size_t)argc &&
			 q.n_ports < 64)
			ports[q.n_ports++] = (uint16_t)atoi(argv[++i]);
		else if (!strcmp(a, "--pid") && i + 1 < (size_t)argc &&
			 q.n_pids < 64)
			pids[q.n_pids++] = (uint32_t)strtoul(argv[++i], NULL, 0);
		else if (!strcmp(a, "--states") && i + 1 < (size_t)argc)
			q.states = (uint32_t)strtoul(argv[++i], NULL, 0);
		else {
			fprintf(stderr, "list: bad argument %s\n", a);
			return 2;
		}
	}
	if (timing) {
		/* the same dump without owners: dump cost alone */
		struct tcpevent_conn_query d = q;

		d.with_process = d.with_cmdline = 0;
		d.n_pids = 0;
		t0 = now_ms();
		r = tcpevent_connections(&d, &conns, &n);
		t2 = now_ms() - t0;
		if (r) {
			fprintf(stderr, "error %d: %s\n", r, tcpevent_last_error());
			return 1;
		}
		tcpevent_connections_free(conns, n);
	}
	t0 = now_ms();
	r = tcpevent_connections(&q, &conns, &n);
	t1 = now_ms() - t0;
	if (r) {
		fprintf(stderr, "error %d: %s\n", r, tcpevent_last_error());
		return 1;
	}
	for (i = 0; i < n; i++)
		print_conn(&conns[i]);
	if (timing)
		fprintf(stderr, "{\"count\": %zu, \"dump_ms\": %.3f, "
			"\"total_ms\": %.3f, \"attr_ms\": %.3f}\n",
			n, t2, t1, t1 > t2 ? t1 - t2 : 0.0);
	tcpevent_connections_free(conns, n);
	return 0;
}

/* ---- Crafted buffers -------------------------------------------------- */

struct mbuf {
	union {
		uint64_t align;
		unsigned char b[16384];
	} u;
	size_t len;
};

static struct nlmsghdr *msg_begin(struct mbuf *m, uint16_t type,
				  uint16_t flags)
{
	struct nlmsghdr *h = (void *)(m->u.b + m->len);

	memset(h, 0, NLMSG_HDRLEN);
	h->nlmsg_len = NLMSG_HDRLEN;
	h->nlmsg_type = type;
	h->nlmsg_flags = flags;
	m->len += NLMSG_HDRLEN;
	return h;
}

/* Append payload bytes to message h (the last one in m), aligned. */
static void *msg_put(struct mbuf *m, struct nlmsghdr *h, const void *data,
		     size_t len)
{
	void *p = m->u.b + m->len;
	size_t alen = NLMSG_ALIGN(len);

	memset(p, 0, alen);
	if (data)
		memcpy(p, data, len);
	m->len += alen;
	h->nlmsg_len += (uint32_t)alen;
	return p;
}

static struct rtattr *msg_attr(struct mbuf *m, struct nlmsghdr *h,
			       uint16_t type, const void *data, size_t len)
{
	struct rtattr *rta = (void *)(m->u.b + m->len);
	size_t alen = RTA_ALIGN(RTA_LENGTH(len));

	memset(rta, 0, alen);
	rta->rta_type = type;
	rta->rta_len = (uint16_t)RTA_LENGTH(len);
	if (data)
		memcpy(RTA_DATA(rta), data, len);
	m->len += alen;
	h->nlmsg_len += (uint32_t)alen;
	return rta;
}

static struct nlmsghdr *conn_msg(struct mbuf *m, int family, const char *src,
				 uint16_t sport, const char *dst,
				 uint16_t dport, uint32_t inode, uint16_t flags)
{
	struct nlmsghdr *h = msg_begin(m, SOCK_DIAG_BY_FAMILY, flags);
	struct inet_diag_msg d;

	memset(&d, 0, sizeof(d));
	d.idiag_family = (uint8_t)family;
	d.idiag_state = 1;
	d.id.idiag_sport = htons(sport);
	d.id.idiag_dport = htons(dport);
	inet_pton(family, src, d.id.idiag_src);
	inet_pton(family, dst, d.id.idiag_dst);
	d.id.idiag_cookie[0] = 0x11223344;
	d.id.idiag_cookie[1] = 0x55;
	d.idiag_uid = 1000;
	d.idiag_inode = inode;
	msg_put(m, h, &d, sizeof(d));
	return h;
}

static void done_msg(struct mbuf *m, int status)
{
	struct nlmsghdr *h = msg_begin(m, NLMSG_DONE, NLM_F_MULTI);

	msg_put(m, h, &status, sizeof(status));
}

static void error_msg(struct mbuf *m, int err, const char *extack)
{
	struct nlmsghdr *h = msg_begin(m, NLMSG_ERROR,
				       extack ? NLM_F_CAPPED | NLM_F_ACK_TLVS : 0);
	struct nlmsgerr e;

	memset(&e, 0, sizeof(e));
	e.error = err;
	e.msg.nlmsg_len = 72;
	e.msg.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg_put(m, h, &e, sizeof(e));
	if (extack)
		msg_attr(m, h, NLMSGERR_ATTR_MSG, extack, strlen(extack) + 1);
}

static int parse(struct mbuf *m, struct sockdiag_result *res)
{
	return sockdiag_parse(m->u.b, m->len, res);
}

static void test_short_info(void)
{
	struct sockdiag_result res = { 0 };
	struct tcpevent_conn *c;
	unsigned char info[100];
	uint32_t skmem[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	const unsigned char *raw;
	uint8_t shut = 1;
	struct nlmsghdr *h;
	struct mbuf m = { .len = 0 };
	size_t i;
	int r, zero = 1;

	memset(info, 0xab, sizeof(info));
	h = conn_msg(&m, AF_INET, "127.0.0.1", 40000, "127.0.0.1", 8080, 777, NLM_F_MULTI);
	msg_attr(&m, h, INET_DIAG_INFO, info, sizeof(info));
	msg_attr(&m, h, INET_DIAG_CONG, "cubic", 6);
	msg_attr(&m, h, INET_DIAG_SHUTDOWN, &shut, 1);
	msg_attr(&m, h, INET_DIAG_SKMEMINFO, skmem, sizeof(skmem));
	done_msg(&m, 0);
	r = parse(&m, &res);
	CHECK(r == 0, "r=%d (%s)", r, tcpevent_last_error());
	CHECK(res.count == 1, "count=%zu", res.count);
	if (res.count != 1)
		goto out;
	c = &res.conns[0];
	CHECK(c->info_len == 100, "info_len=%u", c->info_len);
	CHECK(TCPEVENT_TCP_INFO_HAS(c, tcpi_rtt), "rtt (68..72) must be present");
	CHECK(TCPEVENT_TCP_INFO_HAS(c, tcpi_rcv_space), "rcv_space ends at 100");
	CHECK(!TCPEVENT_TCP_INFO_HAS(c, tcpi_total_retrans), "ends at 104");
	CHECK(!TCPEVENT_TCP_INFO_HAS(c, tcpi_bytes_acked), "bytes_acked absent");
	CHECK(c->info.tcpi_rtt == 0xabababab, "rtt=%x", c->info.tcpi_rtt);
	CHECK(c->info.tcpi_bytes_acked == 0, "absent field not zero");
	raw = (const unsigned char *)&c->info;
	for (i = 100; i < sizeof(c->info); i++)
		zero &= raw[i] == 0;
	CHECK(zero, "bytes past info_len must be 0");
	CHECK(!strcmp(c->cong, "cubic"), "cong=%s", c->cong);
	CHECK(c->shutdown == 1, "shutdown=%u", c->shutdown);
	CHECK(c->skmem_count == 9 && c->skmem.drops == 9 &&
	      c->skmem.rcvbuf == 2, "skmem");
	CHECK(c->sport == 40000 && c->dport == 8080, "ports %u %u", c->sport, c->dport);
	CHECK(!strcmp(c->saddr, "127.0.0.1"), "saddr=%s", c->saddr);
	CHECK(c->inode == 777 && c->uid == 1000, "inode/uid");
	CHECK(c->cookie == 0x5511223344ULL, "cookie=%" PRIx64, c->cookie);
	CHECK(c->attrs & (1u << INET_DIAG_INFO), "attrs=%x", c->attrs);
	CHECK(!tcpevent_tcp_info_has(3, 0, 4) && tcpevent_tcp_info_has(4, 0, 4) &&
	      !tcpevent_tcp_info_has(0, SIZE_MAX, 2), "has() edge cases");
	{
		/* the poller's conversion: absent counters give 0 */
		struct tcpevent_record r;
		const unsigned char lo[4] = { 127, 0, 0, 1 };

		c->pid = 42;
		strcpy(c->task, "snapper");
		sockdiag_conn_to_record(c, &res.addrs[0], 123, &r);
		CHECK((r.flags & TCPEVENT_F_SNAPSHOT) && r.ts_ns == 123 &&
		      r.pid == 42 && r.sport == 40000 && r.dport == 8080 &&
		      r.rtt_us == 0xabababab && r.tx_bytes == 0 &&
		      r.rx_bytes == 0 && r.family == AF_INET && r.state == 1 &&
		      !memcmp(r.saddr, lo, 4) && r.uid == 1000 &&
		      !strcmp(r.comm, "snapper") && r.lifetime_ns == 0,
		      "conn_to_record");
	}
out:
	sockdiag_result_free(&res);
}

static void test_long_info_and_defaults(void)
{
	struct sockdiag_result res = { 0 };
	unsigned char info[300];
	char cong[20];
	struct nlmsghdr *h;
	struct mbuf m = { .len = 0 };
	int r;

	memset(info, 0x01, sizeof(info));
	memset(cong, 'x', sizeof(cong));	/* no NUL */
	h = conn_msg(&m, AF_INET6, "::ffff:127.0.0.1", 1, "::1", 2, 5, NLM_F_MULTI);
	msg_attr(&m, h, INET_DIAG_INFO, info, sizeof(info));
	msg_attr(&m, h, INET_DIAG_CONG, cong, sizeof(cong));
	r = parse(&m, &res);
	CHECK(r == 1, "r=%d (%s)", r, tcpevent_last_error());
	if (res.count == 1) {
		struct tcpevent_conn *c = &res.conns[0];

		CHECK(c->info_len == 300, "info_len=%u", c->info_len);
		CHECK(c->info.tcpi_accecn_opt_seen == 0x0101, "last field copied");
		CHECK(strlen(c->cong) == 15, "cong cut to 15: %s", c->cong);
		CHECK(c->shutdown == 0xff, "absent shutdown=%u", c->shutdown);
		CHECK(!strcmp(c->saddr, "::ffff:127.0.0.1"), "mapped saddr=%s", c->saddr);
		CHECK(!strcmp(c->daddr, "::1"), "daddr=%s", c->daddr);
		CHECK(c->skmem_count == 0, "no skmem");
	} else {
		CHECK(0, "count=%zu", res.count);
	}
	sockdiag_result_free(&res);
}

/* A malformed buffer: expected error, res unchanged, no reads outside. */
static void expect_err(const char *name, struct mbuf *m, int want,
		       const char *text)
{
	struct sockdiag_result res = { 0 };
	int r = parse(m, &res);

	CHECK(r == want, "%s: r=%d want %d (%s)", name, r, want,
	      tcpevent_last_error());
	CHECK(res.count == 0, "%s: half-parsed entry kept", name);
	if (text)
		CHECK(strstr(tcpevent_last_error(), text), "%s: text '%s'",
		      name, tcpevent_last_error());
	printf("ok %s: %d %s\n", name, r, tcpevent_last_error());
	sockdiag_result_free(&res);
}

static void test_malformed(void)
{
	struct nlmsghdr *h;
	struct rtattr *rta;
	static struct mbuf m;
	uint8_t z = 0;

	memset(&m, 0, sizeof(m));
	/* nlmsg_len past the end of the datagram */
	m.len = 0;
	h = conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	h->nlmsg_len += 100;
	expect_err("nlmsg_len_past_buffer", &m, -EINVAL, "message length");

	/* the same, on a second message after a good one */
	m.len = 0;
	conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	h = conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	h->nlmsg_len = 0x7fffffff;
	{
		struct sockdiag_result res = { 0 };
		int r = parse(&m, &res);

		CHECK(r == -EINVAL, "second message: r=%d", r);
		sockdiag_result_free(&res);
	}

	/* nlmsg_len too small to be a header, and zero */
	m.len = 0;
	h = conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	h->nlmsg_len = 8;
	expect_err("nlmsg_len_8", &m, -EINVAL, NULL);
	h->nlmsg_len = 0;
	expect_err("nlmsg_len_0", &m, -EINVAL, NULL);

	/* a header, but too short for inet_diag_msg */
	m.len = 0;
	h = msg_begin(&m, SOCK_DIAG_BY_FAMILY, 0);
	msg_put(&m, h, NULL, 20);
	expect_err("short_inet_diag_msg", &m, -EINVAL, "shorter than inet_diag_msg");

	/* rta_len running past the message */
	m.len = 0;
	h = conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	rta = msg_attr(&m, h, INET_DIAG_INFO, "abcd", 4);
	rta->rta_len = 200;
	expect_err("rta_len_past_message", &m, -EINVAL, "bad length 200");

	/* the same attribute, message followed by another: must not read
	 * into the next message either */
	done_msg(&m, 0);
	expect_err("rta_len_into_next_message", &m, -EINVAL, "bad length 200");

	/* rta_len below the header size */
	m.len = 0;
	h = conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	rta = msg_attr(&m, h, INET_DIAG_CONG, "reno", 5);
	rta->rta_len = 2;
	expect_err("rta_len_2", &m, -EINVAL, NULL);

	/* zero-length u8 attribute */
	m.len = 0;
	h = conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	msg_attr(&m, h, INET_DIAG_SHUTDOWN, &z, 0);
	expect_err("empty_shutdown", &m, -EINVAL, "needs 1");

	/* stray bytes after the last message */
	m.len = 0;
	conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3, 0);
	m.len += 2;
	{
		struct sockdiag_result res = { 0 };
		int r = parse(&m, &res);

		CHECK(r == -EINVAL, "stray bytes: r=%d", r);
		sockdiag_result_free(&res);
	}

	/* NLMSG_ERROR -EPERM, plain and with an extended ack */
	m.len = 0;
	error_msg(&m, -EPERM, NULL);
	expect_err("nlmsg_error_eperm", &m, -EPERM, "Operation not permitted");
	m.len = 0;
	error_msg(&m, -EINVAL, "bad request thing");
	expect_err("nlmsg_error_extack", &m, -EINVAL, "bad request thing");

	/* NLMSG_ERROR too short to hold its code */
	m.len = 0;
	h = msg_begin(&m, NLMSG_ERROR, 0);
	h->nlmsg_len = NLMSG_HDRLEN + 2;
	m.len = NLMSG_ALIGN(h->nlmsg_len);
	expect_err("nlmsg_error_short", &m, -EINVAL, NULL);

	/* an interrupted dump */
	m.len = 0;
	conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 3,
		 NLM_F_MULTI | NLM_F_DUMP_INTR);
	expect_err("dump_intr", &m, -EAGAIN, "interrupted");

	/* NLMSG_DONE carrying the dump's failure */
	m.len = 0;
	done_msg(&m, -ENOMEM);
	expect_err("done_with_error", &m, -ENOMEM, NULL);

	/* misaligned and empty buffers */
	{
		struct sockdiag_result res = { 0 };

		CHECK(sockdiag_parse(m.u.b + 1, 20, &res) == -EINVAL, "misaligned");
		CHECK(sockdiag_parse(m.u.b, 0, &res) == -EINVAL, "empty");
	}
}

static void test_multi_and_filter(void)
{
	struct sockdiag_result res = { 0 };
	uint16_t port = 8080;
	struct mbuf m = { .len = 0 };
	int r;

	conn_msg(&m, AF_INET, "127.0.0.1", 8080, "127.0.0.1", 5000, 1, NLM_F_MULTI);
	conn_msg(&m, AF_INET, "127.0.0.1", 5001, "127.0.0.1", 9999, 2, NLM_F_MULTI);
	conn_msg(&m, AF_INET, "127.0.0.1", 5002, "127.0.0.1", 8080, 3, NLM_F_MULTI);
	msg_begin(&m, NLMSG_NOOP, 0);
	res.ports = &port;
	res.n_ports = 1;
	r = parse(&m, &res);
	CHECK(r == 4, "r=%d", r);
	CHECK(res.count == 2 && res.conns[0].inode == 1 &&
	      res.conns[1].inode == 3, "port filter: count=%zu", res.count);
	sockdiag_result_free(&res);

	/* a last message whose length is not padded to 4: accepted */
	{
		struct nlmsghdr *h;

		m.len = 0;
		h = conn_msg(&m, AF_INET, "127.0.0.1", 8080, "127.0.0.1", 1, 7, 0);
		msg_attr(&m, h, INET_DIAG_SHUTDOWN, "\x03", 1);
		h->nlmsg_len -= 3;
		m.len -= 3;
		r = parse(&m, &res);
		CHECK(r == 1 && res.count == 1 && res.conns[0].shutdown == 3,
		      "unpadded: r=%d (%s)", r, tcpevent_last_error());
		sockdiag_result_free(&res);
	}
}

/* ---- Scripted dumps --------------------------------------------------- */

struct script {
	struct mbuf *dgrams;	/* replies, in order, across resets */
	size_t n, next;
	ssize_t fake_len[8];	/* if nonzero: report this length instead */
	int resets, sends;
	int always_intr;
};

static int fake_reset(void *ctx)
{
	((struct script *)ctx)->resets++;
	return 0;
}

static int fake_send(void *ctx, const void *msg, size_t len)
{
	const struct nlmsghdr *h = msg;
	const struct inet_diag_req_v2 *req = NLMSG_DATA(h);

	((struct script *)ctx)->sends++;
	/* the request itself must be well formed */
	if (len != NLMSG_LENGTH(sizeof(*req)) || h->nlmsg_len != len ||
	    h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    !(h->nlmsg_flags & NLM_F_DUMP) || req->sdiag_protocol != IPPROTO_TCP ||
	    !(req->idiag_ext & (1u << (INET_DIAG_INFO - 1))))
		return -EINVAL;
	return 0;
}

static ssize_t fake_recv(void *ctx, void *buf, size_t cap)
{
	struct script *s = ctx;
	struct mbuf *d;
	size_t i;

	if (s->always_intr) {
		struct mbuf m = { .len = 0 };

		conn_msg(&m, AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 9,
			 NLM_F_MULTI | NLM_F_DUMP_INTR);
		memcpy(buf, m.u.b, m.len);
		return (ssize_t)m.len;
	}
	if (s->next >= s->n)
		return -EAGAIN;	/* like SO_RCVTIMEO */
	i = s->next++;
	d = &s->dgrams[i];
	if (i < 8 && s->fake_len[i]) {
		/* an error, or a datagram the kernel says was longer */
		if (s->fake_len[i] > 0)
			memcpy(buf, d->u.b, d->len < cap ? d->len : cap);
		return s->fake_len[i];
	}
	if (d->len > cap)
		return -EMSGSIZE;
	memcpy(buf, d->u.b, d->len);
	return (ssize_t)d->len;
}

static void run_script(struct script *s, int want, size_t want_count,
		       int want_resets, const char *name)
{
	struct sockdiag_result res = { 0 };
	struct sockdiag_io io = { fake_reset, fake_send, fake_recv, s };
	struct tcpevent_conn *pre;
	int r;

	/* an entry from an earlier family must survive any restart */
	pre = calloc(1, sizeof(*pre));
	res.conns = pre;
	res.count = res.cap = 1;
	pre->inode = 4242;
	r = sockdiag_dump(&io, AF_INET, TCPEVENT_STATES_CONNECTED, &res);
	CHECK(r == want, "%s: r=%d want %d (%s)", name, r, want,
	      tcpevent_last_error());
	CHECK(res.count == want_count + 1, "%s: count=%zu want %zu", name,
	      res.count - 1, want_count);
	CHECK(res.count >= 1 && res.conns[0].inode == 4242, "%s: earlier entry", name);
	CHECK(s->resets == want_resets, "%s: resets=%d want %d", name,
	      s->resets, want_resets);
	CHECK(s->sends == want_resets + 1, "%s: sends=%d", name, s->sends);
	printf("ok %s: r=%d count=%zu resets=%d (%s)\n", name, r,
	       res.count - 1, s->resets, r ? tcpevent_last_error() : "");
	sockdiag_result_free(&res);
}

static void test_restart(void)
{
	static struct mbuf d[6];
	struct script s;

	/* interrupted after two sockets; the rerun has three */
	memset(d, 0, sizeof(d));
	conn_msg(&d[0], AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 10, NLM_F_MULTI);
	conn_msg(&d[0], AF_INET, "127.0.0.1", 1, "127.0.0.1", 3, 11, NLM_F_MULTI);
	conn_msg(&d[1], AF_INET, "127.0.0.1", 1, "127.0.0.1", 4, 12,
		 NLM_F_MULTI | NLM_F_DUMP_INTR);
	conn_msg(&d[2], AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 10, NLM_F_MULTI);
	conn_msg(&d[2], AF_INET, "127.0.0.1", 1, "127.0.0.1", 3, 11, NLM_F_MULTI);
	conn_msg(&d[3], AF_INET, "127.0.0.1", 1, "127.0.0.1", 4, 12, NLM_F_MULTI);
	done_msg(&d[3], 0);
	memset(&s, 0, sizeof(s));
	s.dgrams = d;
	s.n = 4;
	run_script(&s, 0, 3, 1, "restart_on_dump_intr");

	/* interrupted every time: bounded, then -EAGAIN */
	memset(&s, 0, sizeof(s));
	s.always_intr = 1;
	run_script(&s, -EAGAIN, 0, SOCKDIAG_MAX_RESTARTS, "intr_forever");

	/* a datagram bigger than the buffer: grow, restart, succeed */
	memset(&s, 0, sizeof(s));
	s.dgrams = d + 2;
	s.n = 2;
	s.fake_len[0] = SOCKDIAG_BUF_SIZE + 1;
	run_script(&s, 0, 1, 1, "truncated_datagram");

	/* ENOBUFS: restart; no reply at all: -ETIMEDOUT */
	memset(&s, 0, sizeof(s));
	s.dgrams = d + 1;
	s.n = 3;
	s.fake_len[0] = -ENOBUFS;
	run_script(&s, 0, 3, 1, "enobufs");
	memset(&s, 0, sizeof(s));
	s.dgrams = d + 2;
	s.n = 1;
	run_script(&s, -ETIMEDOUT, 0, 0, "no_done");

	/* the kernel refuses: no restart, the error comes back */
	memset(&d[4], 0, sizeof(d[4]));
	error_msg(&d[4], -EPERM, NULL);
	memset(&s, 0, sizeof(s));
	s.dgrams = d + 4;
	s.n = 1;
	run_script(&s, -EPERM, 0, 0, "nlmsg_error");

	/* malformed mid-dump: error, partial results dropped */
	memset(&d[5], 0, sizeof(d[5]));
	conn_msg(&d[5], AF_INET, "127.0.0.1", 1, "127.0.0.1", 2, 10, NLM_F_MULTI);
	d[5].len += 4;
	memset(&s, 0, sizeof(s));
	s.dgrams = d + 5;
	s.n = 1;
	run_script(&s, -EINVAL, 0, 0, "malformed_mid_dump");
}

/* ---- Owner helpers ---------------------------------------------------- */

static void test_procowner_units(void)
{
	struct procowner po;
	uint64_t i;
	int ok = 1;

	CHECK(procowner_parse_socket_link("socket:[123]", 12) == 123, "link");
	CHECK(!procowner_parse_socket_link("socket:[]", 9), "empty inode");
	CHECK(!procowner_parse_socket_link("socket:[12a]", 12), "junk");
	CHECK(!procowner_parse_socket_link("pipe:[123]", 10), "pipe");
	CHECK(!procowner_parse_socket_link("socket:[99999999999999999999]", 29),
	      "overflow");
	/* the hash set: grows past its initial size, finds every key */
	CHECK(procowner_init(&po, 4, 0) == 0, "init");
	for (i = 1; i <= 5000; i++)
		ok &= procowner_want(&po, i * 7919) == 0;
	ok &= procowner_want(&po, 7919) == 0;	/* duplicate */
	CHECK(ok && po.nwanted == 5000, "nwanted=%zu", po.nwanted);
	CHECK(!procowner_lookup(&po, 7919), "unowned until scanned");
	procowner_free(&po);
}

/* ---- fuzz ------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 11);
}

static int cmd_fuzz(long iters)
{
	static struct mbuf base, m;
	unsigned char info[280];
	uint32_t skmem[9] = { 0 };
	struct nlmsghdr *h;
	long i, errs = 0, oks = 0;
	int k;

	memset(info, 0x5a, sizeof(info));
	for (k = 0; k < 3; k++) {
		h = conn_msg(&base, k ? AF_INET6 : AF_INET, k ? "::1" : "127.0.0.1",
			     (uint16_t)(100 + k), k ? "::1" : "127.0.0.1", 80,
			     (uint32_t)k + 1, NLM_F_MULTI);
		msg_attr(&base, h, INET_DIAG_INFO, info, (size_t)(k * 100) % 281);
		msg_attr(&base, h, INET_DIAG_CONG, "bbr", 4);
		msg_attr(&base, h, INET_DIAG_SKMEMINFO, skmem, sizeof(skmem));
		msg_attr(&base, h, INET_DIAG_SHUTDOWN, "", 1);
	}
	done_msg(&base, 0);
	for (i = 0; i < iters; i++) {
		struct sockdiag_result res = { 0 };
		size_t len = base.len;
		int flips = 1 + (int)(rnd() % 4), r;
		void *copy;

		m = base;
		for (k = 0; k < flips; k++) {
			size_t at = rnd() % base.len;

			/* bias toward length fields: low bytes of words */
			if (rnd() % 2)
				at &= ~(size_t)1;
			m.u.b[at] = (unsigned char)rnd();
		}
		if (rnd() % 3 == 0)
			len = rnd() % base.len + 1;
		/* an exact-size heap copy, so ASan sees any overread */
		copy = malloc(len);
		memcpy(copy, m.u.b, len);
		r = sockdiag_parse(copy, len, &res);
		if (r < 0)
			errs++;
		else
			oks++;
		free(copy);
		sockdiag_result_free(&res);
	}
	printf("fuzz: %ld iterations, %ld rejected, %ld accepted\n", iters,
	       errs, oks);
	return 0;
}

/* ---- bench ------------------------------------------------------------ */

static int cmd_bench(int n)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct rlimit rl = { (rlim_t)n * 2 + 64, (rlim_t)n * 2 + 64 };
	struct tcpevent_conn_query q;
	struct tcpevent_conn *conns;
	double best_dump = 1e9, best_total = 1e9, t;
	socklen_t slen = sizeof(sa);
	uint16_t port;
	size_t count = 0;
	int lfd, *fds, i, r, owned = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n * 2 + 64) {
		rl.rlim_cur = (rlim_t)n * 2 + 64;
		if (rl.rlim_max < rl.rlim_cur)
			rl.rlim_max = rl.rlim_cur;
		if (setrlimit(RLIMIT_NOFILE, &rl)) {
			perror("setrlimit");
			return 1;
		}
	}
	fds = calloc((size_t)n * 2, sizeof(*fds));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (!fds || lfd < 0 || bind(lfd, (void *)&sa, sizeof(sa)) ||
	    listen(lfd, 4096) || getsockname(lfd, (void *)&sa, &slen)) {
		perror("listener");
		return 1;
	}
	port = ntohs(sa.sin_port);
	for (i = 0; i < n; i++) {
		fds[2 * i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[2 * i] < 0 || connect(fds[2 * i], (void *)&sa, sizeof(sa))) {
			perror("connect");
			return 1;
		}
		fds[2 * i + 1] = accept(lfd, NULL, NULL);
		if (fds[2 * i + 1] < 0) {
			perror("accept");
			return 1;
		}
	}
	tcpevent_conn_query_init(&q);
	q.family = AF_INET;
	q.ports = &port;
	q.n_ports = 1;
	for (i = 0; i < 5; i++) {
		q.with_process = 0;
		t = now_ms();
		r = tcpevent_connections(&q, &conns, &count);
		t = now_ms() - t;
		if (r) {
			fprintf(stderr, "error: %s\n", tcpevent_last_error());
			return 1;
		}
		tcpevent_connections_free(conns, count);
		best_dump = t < best_dump ? t : best_dump;
		q.with_process = 1;
		t = now_ms();
		r = tcpevent_connections(&q, &conns, &count);
		t = now_ms() - t;
		if (r) {
			fprintf(stderr, "error: %s\n", tcpevent_last_error());
			return 1;
		}
		best_total = t < best_total ? t : best_total;
		owned = 0;
		for (size_t j = 0; j < count; j++)
			owned += conns[j].pid == (uint32_t)getpid();
		tcpevent_connections_free(conns, count);
	}
	printf("{\"connections\": %d, \"sockets\": %zu, \"owned\": %d, "
	       "\"dump_ms\": %.3f, \"total_ms\": %.3f, \"attr_ms\": %.3f}\n",
	       n, count, owned, best_dump, best_total,
	       best_total > best_dump ? best_total - best_dump : 0.0);
	for (i = 0; i < 2 * n; i++)
		close(fds[i]);
	close(lfd);
	free(fds);
	return count == (size_t)n * 2 && owned == n * 2 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s list|parse-short|restart|fuzz N|bench N\n",
			argv[0]);
		return 2;
	}
	if (!strcmp(argv[1], "list"))
		return cmd_list(argc - 2, argv + 2);
	if (!strcmp(argv[1], "fuzz"))
		return cmd_fuzz(argc > 2 ? atol(argv[2]) : 10000);
	if (!strcmp(argv[1], "bench"))
		return cmd_bench(argc > 2 ? atoi(argv[2]) : 2000);
	if (!strcmp(argv[1], "parse-short")) {
		test_short_info();
		test_long_info_and_defaults();
		test_malformed();
		test_multi_and_filter();
		test_procowner_units();
	} else if (!strcmp(argv[1], "restart")) {
		test_restart();
	} else {
		fprintf(stderr, "unknown command %s\n", argv[1]);
		return 2;
	}
	printf("%s: %d failure(s)\n", argv[1], failures);
	return failures ? 1 : 0;
}
