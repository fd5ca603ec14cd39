"""``tcpevent exporter`` end to end: the real kernel, a real Prometheus server.

Debian's ``prometheus`` (installed by ``make deps``) runs on 127.0.0.1 for
the module and scrapes every second the exporters the tests start
(tests/support/promutil.py); the tests ask it over ``/api/v1/query``. The traffic
runs in a network namespace of each test's own (every port is the test's)
from processes of known pids and command names (tests/support/exporter_traffic.py),
and each exporter is filtered to those pids: the tracer sees the whole
host, other suites' connections never reach these metrics.

Each connection has two ends on loopback, and each end is one close event
(and one connect or accept event): a connection counts twice, once
``outbound`` (the end that called connect()) and once ``inbound`` (the end
accept() handed out).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from accounting import LOST_MAX
from nsutil import counters_delta, tcp_counters
from prometheus_client.parser import text_string_to_metric_families
from promutil import SCRAPES_TIMEOUT, Exporter, Prometheus

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TRAFFIC = HERE / "support" / "exporter_traffic.py"
UNIT = ROOT / "examples" / "systemd" / "tcpevent-exporter.service"
DOCS = ROOT / "docs" / "exporter.md"
NOBODY = 65534

#: The metrics whose series the budget bounds (each label set's series).
BUDGETED = (
    "tcpevent_connections_closed_total|tcpevent_received_bytes_total|tcpevent_sent_bytes_total"
    "|tcpevent_retransmits_total|tcpevent_connect_failures_total"
    "|tcpevent_retransmissions_total|tcpevent_retransmitted_segments_total"
    "|tcpevent_resets_total|tcpevent_drops_total"
    "|tcpevent_(connection_duration|rtt|handshake|accept_wait)_seconds_(bucket|sum|count)"
)
#: Every series of a target that the budget does not bound: Prometheus's own
#: per target (up, scrape_*), the exporter's health and build info, and the
#: process collector's.
FIXED_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
    "tcpevent_build_info",
    "tcpevent_events_total",
    "tcpevent_events_dropped_total",  # twice: where="kernel", where="queue"
    "tcpevent_events_missed_total",
    "tcpevent_queue_depth",
    "tcpevent_sockets_untracked_total",
    "tcpevent_series_folded_total",
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
}
FIXED_COUNT = len(FIXED_SERIES) + 1  # tcpevent_events_dropped_total has two
#: How long no new close must come before the missing ones count as lost.
STILL = 5.0


# ---- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    assert shutil.which("prometheus"), "Debian's prometheus is needed: make deps installs it"
    server = Prometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def netns() -> Iterator[str]:
    """A network namespace of the test's own, its loopback up."""
    name = f"te-exporter-{os.getpid()}-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


class Role:
    """One process of tests/support/exporter_traffic.py in the namespace ``ns``."""

    def __init__(self, ns: str, role: str, comm: str, *args: object) -> None:
        self.comm = comm
        self.proc = subprocess.Popen(
            [
                *("ip", "netns", "exec", ns, sys.executable, str(TRAFFIC)),
                *(role, comm, *map(str, args)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.proc.pid  # ip netns exec execs in place
        try:
            assert self._line() == "ready"
        except BaseException:
            self.proc.kill()
            self.stop()
            raise

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def done(self) -> int:
        line = self._line()
        assert line.startswith("done "), line
        return int(line.split()[1])

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass(frozen=True)
class Tally:
    """What one scrape of an exporter says about closes."""

    closes: dict[frozenset[tuple[str, str]], float]
    """``tcpevent_connections_closed_total`` by label set."""
    missed: int
    """``tcpevent_events_missed_total``: closes the kernel may not have shown."""

    @property
    def total(self) -> int:
        return int(sum(self.closes.values()))


def tally(text: str) -> Tally:
    closes, missed = {}, 0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "tcpevent_connections_closed_total":
                closes[frozenset(sample.labels.items())] = sample.value
            elif sample.name == "tcpevent_events_missed_total":
                missed = int(sample.value)
    return Tally(closes, missed)


def wait_for_closes(exporter: Exporter, made: int, timeout: float = SCRAPES_TIMEOUT) -> Tally:
    """Scrape the exporter until each of the ``made`` closes is counted, or
    may have been lost and counted as missed; then check the rule of
    tests/support/accounting.py: nothing counted twice, no loss uncounted, at most
    a couple lost. Its bound on ``missed`` does not apply here: ``missed``
    is the whole host's (the kernel's recursion skips and the unseen closes
    of every socket the tracer tracks, and a pid filter selects at the
    close), so other suites' churn can raise it. On the way, no label set
    may go away and no counter go down."""
    before: dict[frozenset[tuple[str, str]], float] = {}
    deadline = time.monotonic() + timeout
    changed = time.monotonic()
    while True:
        now = tally(exporter.scrape())
        for labels, value in before.items():
            assert labels in now.closes, f"label set {dict(labels)} went away"
            assert now.closes[labels] >= value, f"{dict(labels)} went down"
        if now.closes != before:
            changed = time.monotonic()
        before = now.closes
        # Done: all counted; or nothing new for a while and the rest counted
        # as missed; or out of time.
        settled = time.monotonic() - changed > STILL and now.total + now.missed >= made
        if now.total >= made or settled or time.monotonic() > deadline:
            why = (now.total, now.missed, made)
            assert now.total <= made, why
            assert now.total + now.missed >= made, why
            assert made - now.total <= LOST_MAX, why
            return now
        time.sleep(0.2)


def assert_counts(
    got: dict[tuple[str, ...], float], expected: dict[tuple[str, ...], int], lost: int
) -> None:
    """``got`` is ``expected`` exactly, but for the ``lost`` closes that the
    tracer counted as missed (none, almost always)."""
    if lost == 0:
        assert got == expected
        return
    assert set(got) == set(expected), (got, expected)
    assert sum(expected.values()) - sum(got.values()) == lost, (got, expected, lost)
    for key, count in expected.items():
        assert count - lost <= got[key] <= count, (key, got, expected, lost)


def assert_sum_exact(prometheus: Prometheus, sel: str) -> None:
    """The sums over all label sets, ``__other__`` included, are every event
    the tracer read: each close in the closes, each connect and accept in
    the handshakes, each retransmit, reset and drop in its counter; none
    dropped, none still queued."""
    assert prometheus.scalar(f"sum(tcpevent_events_dropped_total{sel})") == 0
    assert prometheus.scalar(f"tcpevent_queue_depth{sel}") == 0
    events = prometheus.scalar(f"tcpevent_events_total{sel}")
    closes = prometheus.scalar(f"sum(tcpevent_connections_closed_total{sel})")
    opens = prometheus.scalar(f"sum(tcpevent_handshake_seconds_count{sel})")
    health = sum(
        prometheus.scalar(f"sum(tcpevent_{name}_total{sel})")
        for name in ("retransmissions", "resets", "drops")
    )
    assert closes + opens + health == events, (closes, opens, health, events)


def promql_examples() -> list[str]:
    """The PromQL examples of docs/exporter.md (its ```promql blocks)."""
    blocks = re.findall(r"```promql\n(.*?)```", DOCS.read_text(), re.S)
    assert blocks, "docs/exporter.md has no PromQL examples"
    return [b.strip() for b in blocks]


def unit_capabilities() -> tuple[set[str], set[str]]:
    """AmbientCapabilities and CapabilityBoundingSet of the systemd unit."""
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    return set(service["AmbientCapabilities"].split()), set(
        service["CapabilityBoundingSet"].split()
    )


def documented_capabilities() -> set[str]:
    """The set docs/privileges.md grants a service (its AmbientCapabilities= line)."""
    m = re.search(r"^AmbientCapabilities=(.*)$", (ROOT / "docs/privileges.md").read_text(), re.M)
    assert m, "docs/privileges.md names no AmbientCapabilities="
    return set(m[1].split())


def cap_bit(name: str) -> int:
    bits = {"CAP_DAC_READ_SEARCH": 2, "CAP_PERFMON": 38, "CAP_BPF": 39}
    return 1 << bits[name]


def proc_status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def run_exporter(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tcpevent", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# ---- known traffic, counted exactly ----------------------------------------------------


PORT_A, PORT_B = 8080, 5432
#: Where nothing listens: every connect there is refused.
PORT_REFUSED, REFUSED = 9099, 4
#: Per service port: connections, bytes each client sends, bytes the server sends back.
TRAFFIC_PLAN = {PORT_A: (12, 1000, 3000), PORT_B: (8, 300, 20000)}
#: bytes_acked counts the SYN and the FIN, bytes_received the FIN: per end.
ALLOWANCE = 2


@pytest.mark.bpf
def test_prometheus_counts_known_traffic_exactly(prometheus: Prometheus, netns: str) -> None:
    """Two commands connect to two service ports over IPv4 and IPv6, a third
    is refused by a third port; what Prometheus stores is exactly that."""
    roles: list[Role] = []
    exporter = None
    try:
        specs = [f"{port}:{sent}:{back}" for port, (_, sent, back) in TRAFFIC_PLAN.items()]
        server = Role(netns, "serve", "te-exp-srv", *specs)
        roles.append(server)
        clients = {
            port: Role(netns, "connect", comm, port, sent, back, n)
            for comm, (port, (n, sent, back)) in zip(("te-exp-a", "te-exp-b"), TRAFFIC_PLAN.items())
        }
        roles += clients.values()
        refused = Role(netns, "refused", "te-exp-refused", PORT_REFUSED, REFUSED)
        roles.append(refused)
        filters = [*(a for r in roles for a in ("--pid", str(r.pid)))]
        filters += [a for p in (PORT_A, PORT_B, PORT_REFUSED) for a in ("--port", str(p))]
        exporter = Exporter(filters)
        prometheus.add_target("counts", exporter.hostport)
        for role in (*clients.values(), refused):
            role.go()
        for port, client in clients.items():
            assert client.done() == TRAFFIC_PLAN[port][0]
        assert refused.done() == REFUSED
        ends = 2 * sum(n for n, _, _ in TRAFFIC_PLAN.values()) + REFUSED
        lost = ends - wait_for_closes(exporter, ends).total
        prometheus.wait_scrapes("counts", time.time())

        sel = '{test="counts"}'
        assert prometheus.scalar(f"up{sel}") == 1
        assert_sum_exact(prometheus, sel)
        closed = f"tcpevent_connections_closed_total{sel}"

        # Each connection once outbound (the client's end), once inbound
        # (the server's); a refused connect has its outbound end only.
        by_port = prometheus.by(
            f"sum by (service_port, direction) ({closed})", "service_port", "direction"
        )
        expected = {(str(PORT_REFUSED), "outbound"): REFUSED}
        for port, (n, _, _) in TRAFFIC_PLAN.items():
            expected[(str(port), "outbound")] = expected[(str(port), "inbound")] = n
        assert_counts(by_port, expected, lost)

        # Each command's own ends, under its own name.
        by_comm = prometheus.by(f"sum by (comm, service_port) ({closed})", "comm", "service_port")
        expected = {(refused.comm, str(PORT_REFUSED)): REFUSED}
        for port, (n, _, _) in TRAFFIC_PLAN.items():
            expected[(clients[port].comm, str(port))] = expected[(server.comm, str(port))] = n
        assert_counts(by_comm, expected, lost)

        # Every command alternates IPv4 and IPv6.
        by_family = prometheus.by(f"sum by (family) ({closed})", "family")
        assert_counts(by_family, {("ipv4",): ends // 2, ("ipv6",): ends // 2}, lost)
        assert prometheus.query(f'{closed.rstrip("}")},container!=""}}') == []

        # Bytes each way, per service port, within the SYN/FIN allowance per end.
        for metric in ("tcpevent_received_bytes_total", "tcpevent_sent_bytes_total"):
            got = prometheus.by(f"sum by (service_port) ({metric}{sel})", "service_port")
            assert set(got) == {(str(p),) for p in (*TRAFFIC_PLAN, PORT_REFUSED)}, (metric, got)
            for port, (n, sent, back) in TRAFFIC_PLAN.items():
                payload = n * (sent + back)
                low = payload - lost * (max(sent, back) + ALLOWANCE)
                assert low <= got[(str(port),)] <= payload + 2 * n * ALLOWANCE, (metric, port)
            assert got[(str(PORT_REFUSED),)] <= REFUSED * ALLOWANCE
        if lost == 0:
            # The accepted end received what the client sent, and the other way round.
            rx = prometheus.by(
                f"sum by (service_port, direction) (tcpevent_received_bytes_total{sel})",
                "service_port",
                "direction",
            )
            for port, (n, sent, back) in TRAFFIC_PLAN.items():
                assert n * sent <= rx[(str(port), "inbound")] <= n * (sent + ALLOWANCE)
                assert n * back <= rx[(str(port), "outbound")] <= n * (back + ALLOWANCE)

        # The duration histogram counts every close; its +Inf bucket too.
        counted = ends - lost
        durations = f"tcpevent_connection_duration_seconds_count{sel}"
        assert prometheus.scalar(f"sum({durations})") == counted
        inf = 'tcpevent_connection_duration_seconds_bucket{test="counts",le="+Inf"}'
        assert prometheus.scalar(f"sum({inf})") == counted
        assert 0 < prometheus.scalar(f"sum(tcpevent_rtt_seconds_count{sel})") <= counted

        # The lifecycle: a handshake for each end of each connection, an
        # accept for each inbound end, a failure for each refused connect.
        handshakes = prometheus.by(
            f"sum by (service_port, direction) (tcpevent_handshake_seconds_count{sel})",
            "service_port",
            "direction",
        )
        expected = {}
        for port, (n, _, _) in TRAFFIC_PLAN.items():
            expected[(str(port), "outbound")] = expected[(str(port), "inbound")] = n
        assert_counts(handshakes, expected, lost)
        waits = prometheus.by(
            f"sum by (service_port, direction) (tcpevent_accept_wait_seconds_count{sel})",
            "service_port",
            "direction",
        )
        expected = {(str(port), "inbound"): n for port, (n, _, _) in TRAFFIC_PLAN.items()}
        assert_counts(waits, expected, lost)
        failures = prometheus.by(
            f"sum by (error, service_port, direction) (tcpevent_connect_failures_total{sel})",
            "error",
            "service_port",
            "direction",
        )
        expected = {("ECONNREFUSED", str(PORT_REFUSED), "outbound"): REFUSED}
        assert_counts(failures, expected, lost)
        # Each refused connect: a reset its client received. (The resets
        # sent for no socket have no owner: the pid filter leaves them out.)
        resets = prometheus.by(
            f"sum by (direction, service_port, comm) (tcpevent_resets_total{sel})",
            "direction",
            "service_port",
            "comm",
        )
        expected = {("received", str(PORT_REFUSED), refused.comm): REFUSED}
        assert_counts(resets, expected, lost)
        assert prometheus.scalar(f"tcpevent_series_folded_total{sel}") == 0

        # Every PromQL example of docs/exporter.md runs and finds something.
        for expr in promql_examples():
            assert prometheus.query(expr), f"no result for the documented query {expr!r}"
    finally:
        prometheus.remove_target("counts")
        status = exporter.stop() if exporter is not None else 0
        for role in roles:
            role.stop()
    assert status == 0
    assert "Traceback" not in exporter.stderr()


# ---- retransmits, resets and drops --------------------------------------------------------

HEALTH_WORKLOAD = HERE / "support" / "health_workload.py"
LOSSY_PORT = 7200


@pytest.mark.bpf
def test_prometheus_counts_retransmits_resets_and_drops(prometheus: Prometheus, netns: str) -> None:
    """In a namespace whose nftables rules drop one data segment in 11 each
    way, first SYNs and first SYN-ACKs: Prometheus stores exactly the
    segments the namespace's RetransSegs counted, by cause, the drops by
    the kernel's reason, and the resets each way."""
    rules = f"""
table inet te_exporter_health {{
  set syn_seen {{ type inet_service; }}
  set synack_seen {{ type inet_service; }}
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {LOSSY_PORT} tcp flags & (syn | ack) == syn tcp sport != @syn_seen \\
      add @syn_seen {{ tcp sport }} counter drop
    tcp sport {LOSSY_PORT} tcp flags & (syn | ack) == syn | ack tcp dport != @synack_seen \\
      add @synack_seen {{ tcp dport }} counter drop
    tcp dport {LOSSY_PORT} tcp flags & (syn | rst | fin) == 0 meta length > 1000 \\
      numgen inc mod 11 == 0 counter drop
    tcp sport {LOSSY_PORT} tcp flags & (syn | rst | fin) == 0 meta length > 1000 \\
      numgen inc mod 11 == 0 counter drop
  }}
}}
"""
    nft = ["ip", "netns", "exec", netns, "nft"]
    subprocess.run([*nft, "-f", "-"], input=rules, text=True, check=True)
    exporter = Exporter(["--netns", netns])
    try:
        prometheus.add_target("health", exporter.hostport)
        before = tcp_counters(netns)
        for what in ("lossy", "resets"):
            subprocess.run(
                [
                    *("ip", "netns", "exec", netns, sys.executable, str(HEALTH_WORKLOAD)),
                    *(what, str(LOSSY_PORT), "4"),
                ],
                check=True,
                capture_output=True,
            )
        d = counters_delta(before, tcp_counters(netns))
        table = json.loads(
            subprocess.run(
                [*nft, "-j", "list", "table", "inet", "te_exporter_health"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        nft_dropped = sum(
            e["counter"]["packets"]
            for item in table["nftables"]
            if "rule" in item
            for e in item["rule"]["expr"]
            if "counter" in e
        )
        ends = d["ActiveOpens"] + d["PassiveOpens"]
        lost = ends - wait_for_closes(exporter, ends).total
        assert lost == 0, "a close the kernel never showed: the counts below would be off"
        prometheus.wait_scrapes("health", time.time())
        sel = '{test="health"}'
        assert_sum_exact(prometheus, sel)
        segments = prometheus.scalar(f"sum(tcpevent_retransmitted_segments_total{sel})")
        assert segments == d["RetransSegs"] > 0, (segments, d)
        causes = prometheus.by(f"sum by (cause) (tcpevent_retransmissions_total{sel})", "cause")
        syn = causes.get(("syn",), 0) + causes.get(("synack",), 0)
        assert syn == d["TCPSynRetrans"] > 0, (causes, d)
        drops = prometheus.by(f"sum by (reason) (tcpevent_drops_total{sel})", "reason")
        assert drops[("NETFILTER_DROP",)] == nft_dropped, (drops, nft_dropped)
        resets = prometheus.by(f"sum by (direction) (tcpevent_resets_total{sel})", "direction")
        assert resets[("sent",)] == d["OutRsts"] == 6, (resets, d)
        assert resets[("received",)] == 6, resets
        assert prometheus.scalar(f"tcpevent_series_folded_total{sel}") == 0
    finally:
        prometheus.remove_target("health")
        status = exporter.stop()
    assert status == 0
    assert "Traceback" not in exporter.stderr()


# ---- the series budget ---------------------------------------------------------------------

LISTENERS, PER_LISTENER = 2000, 10
LISTEN_BASE, CLIENT_BASE = 10000, 30000
MAX_SERIES = 500


@pytest.mark.bpf
def test_budget_bounds_series_and_keeps_the_sum_exact(prometheus: Prometheus, netns: str) -> None:
    """20,000 connections to 2,000 service ports from 20,000 client ports,
    --max-series 500: at most 500 series besides the fixed ones, and still
    every close counted."""
    connections = LISTENERS * PER_LISTENER
    gen = Role(netns, "budget", "te-exp-budget", LISTEN_BASE, LISTENERS, CLIENT_BASE, PER_LISTENER)
    exporter = None
    try:
        exporter = Exporter(["--pid", str(gen.pid), "--max-series", str(MAX_SERIES)])
        prometheus.add_target("budget", exporter.hostport)
        gen.go()
        assert gen.done() == connections
        counted = wait_for_closes(exporter, 2 * connections, timeout=60).total
        prometheus.wait_scrapes("budget", time.time())

        sel = '{test="budget"}'
        assert prometheus.scalar(f"up{sel}") == 1
        assert_sum_exact(prometheus, sel)
        budgeted = prometheus.scalar(f'count({{test="budget",__name__=~"{BUDGETED}"}})')
        fixed = prometheus.by(
            f'count by (__name__) ({{test="budget",__name__!~"{BUDGETED}"}})', "__name__"
        )
        assert {name for (name,) in fixed} == FIXED_SERIES
        assert sum(fixed.values()) == FIXED_COUNT
        assert 0 < budgeted <= MAX_SERIES
        assert prometheus.scalar(f"count({sel})") <= MAX_SERIES + FIXED_COUNT
        assert prometheus.scalar(f"tcpevent_series_folded_total{sel}") > 0

        # The sum over every label set, __other__ included, is every close
        # counted (every close made, but for what the tracer counted as missed).
        assert prometheus.scalar(f"sum(tcpevent_connections_closed_total{sel})") == counted
        durations = prometheus.scalar(f"sum(tcpevent_connection_duration_seconds_count{sel})")
        assert durations == counted
        # A connect or accept event for each end too.
        opens = prometheus.scalar(f"sum(tcpevent_handshake_seconds_count{sel})")
        assert 2 * connections - LOST_MAX <= opens <= 2 * connections
        closed = "tcpevent_connections_closed_total"
        other = 'test="budget",service_port="__other__",comm="__other__",direction="__other__"'
        assert prometheus.scalar(f"sum({closed}{{{other}}})") > 0
        by_direction = prometheus.by(
            f'sum by (direction) ({closed}{{test="budget",direction!="__other__"}})', "direction"
        )
        assert set(by_direction) == {("outbound",), ("inbound",)}

        # The label sets that fit name service ports, never a client's port.
        ports = prometheus.by(
            f'sum by (service_port) ({closed}{{test="budget",service_port!="__other__"}})',
            "service_port",
        )
        assert ports
        assert all(LISTEN_BASE <= int(p) < LISTEN_BASE + LISTENERS for (p,) in ports), ports
    finally:
        prometheus.remove_target("budget")
        status = exporter.stop() if exporter is not None else 0
        gen.stop()
    assert status == 0


# ---- least privilege -------------------------------------------------------------------------


def test_unit_grants_exactly_the_documented_capabilities() -> None:
    ambient, bounding = unit_capabilities()
    assert ambient == bounding == documented_capabilities()
    assert documented_capabilities() == {"CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"}


@pytest.mark.bpf
def test_exporter_as_nobody_with_the_units_capabilities(prometheus: Prometheus, netns: str) -> None:
    """uid 65534 holding only the unit's capabilities: traces (the accepted
    ends under their owner's name too), serves, is scraped, stops on SIGINT."""
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed"
    caps, _ = unit_capabilities()
    spec = ",".join("+" + c.removeprefix("CAP_").lower() for c in sorted(caps))
    prefix = [
        *("setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"),
        *("--inh-caps", spec, "--ambient-caps", spec),
    ]
    made = 6
    roles: list[Role] = []
    exporter = None
    try:
        server = Role(netns, "serve", "te-exp-srv", f"{PORT_A}:100:200")
        roles.append(server)
        client = Role(netns, "connect", "te-exp-cli", PORT_A, 100, 200, made)
        roles.append(client)
        exporter = Exporter(["--pid", str(server.pid), "--pid", str(client.pid)], prefix=prefix)
        status = proc_status(exporter.pid)
        assert status["Uid"].split() == [str(NOBODY)] * 4
        assert int(status["CapEff"], 16) == sum(cap_bit(c) for c in caps)
        prometheus.add_target("privileges", exporter.hostport)
        client.go()
        assert client.done() == made
        lost = 2 * made - wait_for_closes(exporter, 2 * made).total
        prometheus.wait_scrapes("privileges", time.time())
        sel = '{test="privileges"}'
        assert prometheus.scalar(f"up{sel}") == 1
        assert_sum_exact(prometheus, sel)
        by_comm = prometheus.by(
            f"sum by (comm, service_port) (tcpevent_connections_closed_total{sel})",
            "comm",
            "service_port",
        )
        expected = {("te-exp-cli", str(PORT_A)): made, ("te-exp-srv", str(PORT_A)): made}
        assert_counts(by_comm, expected, lost)
        assert prometheus.by(f"tcpevent_build_info{sel}", "version")
    finally:
        prometheus.remove_target("privileges")
        code = exporter.stop(signal.SIGINT) if exporter is not None else 0
        for role in roles:
            role.stop()
    assert code == 0, exporter.stderr()
    # Full attribution: nothing degraded, nothing to warn about.
    assert exporter.stderr().strip().splitlines()[1:] == [], exporter.stderr()


# ---- bad input -----------------------------------------------------------------------------------


def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = run_exporter("--listen", f"127.0.0.1:{port}")
    assert r.returncode == 1, r
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in r.stderr
    assert "Traceback" not in r.stderr


def test_an_address_that_cannot_be_bound_is_a_clear_error() -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: bind() fails, nothing is sent.
    r = run_exporter("--listen", "192.0.2.1:9477")
    assert r.returncode == 1, r
    assert "cannot listen on 192.0.2.1:9477: Cannot assign requested address" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-series", "0"], "max series must be between 1 and"),
        (["--max-series=-5"], "max series must be between 1 and"),
        (["--max-series", "many"], "max series must be an integer"),
        (["--max-series", "10"], "--max-series 10 is too small"),
        (["--listen", "::1:9477"], "an IPv6 address goes in brackets"),
        (["--listen", "localhost:9477"], "not an IP address"),
        (["--listen", "127.0.0.1:65536"], "not a port number"),
        (["--listen", "[::1]9477"], "not [ADDRESS]:PORT"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    r = run_exporter(*args)
    assert r.returncode == 2, r
    assert message in r.stderr
    assert r.stderr.startswith("usage: tcpevent exporter")
    assert "Traceback" not in r.stderr


def test_without_prometheus_client_it_says_what_to_install() -> None:
    hide = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "from tcpevent.cli import main; sys.exit(main(['exporter']))"
    )
    r = subprocess.run([sys.executable, "-c", hide], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert r.stderr == (
        "tcpevent exporter: needs prometheus_client: pip install 'tcpevent[prometheus]'\n"
    )


def test_help_and_the_events_mode_are_unchanged() -> None:
    r = run_exporter("--help")
    assert r.returncode == 0 and "--max-series" in r.stdout and "--listen" in r.stdout
    r = subprocess.run([sys.executable, "-m", "tcpevent", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "tcpevent exporter --help" in r.stdout
    assert "--max-series" not in r.stdout


# ---- the systemd unit ----------------------------------------------------------------------


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` accepts the unit, and systemd's own reading
    of it runs as a non-root user with no new privileges and no capability
    in its bounding set but CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH.

    systemd is not PID 1 here: ``verify`` and ``security --offline`` read
    the unit without a running manager. The ExecStart binary must exist, so
    the copy that is checked runs this tree's ``python -m tcpevent``.
    """
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed: make deps installs systemd"
    tcpevent = tmp_path / "tcpevent"
    tcpevent.write_text(f'#!/bin/sh\nexec {sys.executable} -m tcpevent "$@"\n')
    tcpevent.chmod(0o755)
    text = UNIT.read_text()
    assert "ExecStart=/usr/local/bin/tcpevent exporter" in text
    unit = tmp_path / UNIT.name
    unit.write_text(text.replace("/usr/local/bin/tcpevent", str(tcpevent)))
    r = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r

    r = subprocess.run(
        [analyze, "security", "--offline=true", "--json=short", str(unit)],
        capture_output=True,
        text=True,
    )
    checks = {c["json_field"]: c["set"] for c in json.loads(r.stdout)}
    assert checks["UserOrDynamicUser"] is True
    assert checks["NoNewPrivileges"] is True
    assert checks["AmbientCapabilities"] is False  # it does receive ambient capabilities
    # systemd's checks of the bounding set: all pass but CAP_BPF's and the
    # one covering CAP_DAC_* (CAP_DAC_READ_SEARCH); CAP_PERFMON has none.
    kept = {k for k, ok in checks.items() if k.startswith("CapabilityBoundingSet_") and not ok}
    assert kept == {
        "CapabilityBoundingSet_CAP_BPF",
        "CapabilityBoundingSet_CAP_DAC_FOWNER_IPC_OWNER",
    }
    assert checks["CapabilityBoundingSet_CAP_SYS_ADMIN"] is True
