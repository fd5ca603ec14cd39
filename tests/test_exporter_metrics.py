"""The exporter's metrics without the kernel: labels, the budget, histograms,
health, and --listen. Events are real TcpEvents built field by field; what
is checked is what prometheus_client serves (its text format, parsed back)."""

from __future__ import annotations

import dataclasses
import errno
import secrets
import socket

import pytest
from nsutil import cgroup_root
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tcpevent import TcpEvent, TcpState, TracerStats, __version__
from tcpevent.event import ZERO_EVENT
from tcpevent.exporter import Listen, parse_listen
from tcpevent.exporter.health import HealthCollector
from tcpevent.exporter.metrics import (
    CLOSES,
    EVENT_KINDS,
    LABELS,
    OTHER,
    EventMetrics,
    connection_labels,
    service_port,
)

PER_LABEL_SET = CLOSES.series
FIELDS = set(TcpEvent.__dataclass_fields__)


def event(**fields: object) -> TcpEvent:
    """A close with these fields; those TcpEvent lacks (yet) are left out."""
    base = {
        "family": socket.AF_INET,
        "sport": 45000,
        "dport": 443,
        "task": "curl",
        "saddr": "127.0.0.1",
        "daddr": "127.0.0.2",
        "rx_bytes": 100,
        "tx_bytes": 20,
        "retrans": 1,
        "lifetime_ns": 2_000_000,
        "rtt_us": 50,
        "kind": "close",
        "direction": "outbound",
        "state": TcpState.FIN_WAIT2,
    }
    wanted = {**base, **fields}
    return dataclasses.replace(ZERO_EVENT, **{k: v for k, v in wanted.items() if k in FIELDS})


def samples(metrics: EventMetrics) -> list[tuple[str, dict[str, str], float]]:
    registry = CollectorRegistry()
    registry.register(metrics)
    text = generate_latest(registry).decode()
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def values(metrics: EventMetrics, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(labels[k] for k in LABELS): v for n, labels, v in samples(metrics) if n == name}


# ---- labels ---------------------------------------------------------------------------


def test_service_port_is_the_listening_side() -> None:
    assert service_port("outbound", 45000, 443) == 443
    assert service_port("inbound", 8080, 51234) == 8080
    # Unknown direction: the lower port (ephemeral ports are the high ones).
    assert service_port("unknown", 45000, 443) == 443
    assert service_port("unknown", 443, 45000) == 443


def test_labels_of_an_event() -> None:
    inbound = event(
        family=socket.AF_INET6,
        saddr="::1",
        daddr="::2",
        sport=8080,
        dport=50000,
        direction="inbound",
    )
    assert connection_labels(inbound) == ("inbound", "8080", "curl", "ipv6", "")
    assert connection_labels(inbound, peer=True) == ("inbound", "8080", "curl", "ipv6", "", "::2")
    outbound = event(sport=50000, dport=8080, direction="outbound")
    assert connection_labels(outbound) == ("outbound", "8080", "curl", "ipv4", "")
    # Direction unknown (e.g. a custom program): the lower port.
    assert connection_labels(event(sport=50000, dport=8080, direction="unknown"))[:2] == (
        "unknown",
        "8080",
    )
    assert connection_labels(event(task=""))[2] == ""


@pytest.mark.bpf  # making a cgroup needs root
def test_container_label_is_the_short_id_of_the_sockets_container() -> None:
    """A real cgroup named as docker names a container's: its events are labelled."""
    cid = secrets.token_hex(32)
    with cgroup_root() as top:
        inside = top.child(f"docker-{cid}.scope")
        assert connection_labels(event(cgroup_id=inside.id))[4] == cid[:12]
        assert connection_labels(event(cgroup_id=top.id))[4] == ""


# ---- counting and the budget -------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EVENT_KINDS))
def test_every_kind_the_exporter_asks_for_is_counted(kind: str) -> None:
    """The exporter asks the tracer for every kind it can deliver
    (EVENT_KINDS, from the C enum): each must update a metric."""
    m = EventMetrics()
    before = samples(m)
    m.observe([event(kind=kind, handshake_ns=1_000_000, accept_wait_ns=1_000_000)])
    assert samples(m) != before, f"a {kind} event counts nowhere"


def test_closes_are_counted_and_snapshots_are_not() -> None:
    m = EventMetrics()
    m.observe([event(), event(rx_bytes=5, tx_bytes=7, retrans=0), event(kind="snapshot")])
    key = connection_labels(event())
    assert values(m, "tcpevent_connections_closed_total") == {key: 2}
    assert values(m, "tcpevent_received_bytes_total") == {key: 105}
    assert values(m, "tcpevent_sent_bytes_total") == {key: 27}
    assert values(m, "tcpevent_retransmits_total") == {key: 1}
    folded = [v for n, _, v in samples(m) if n == "tcpevent_series_folded_total"]
    assert folded == [0]


def test_histograms_bucket_at_their_bounds_and_skip_unknown_values() -> None:
    m = EventMetrics()
    m.observe(
        [
            event(lifetime_ns=1_000_000, rtt_us=100),  # exactly at le="0.001" and le="0.0001"
            event(lifetime_ns=1_000_001, rtt_us=0),  # just above; no RTT sample
            event(lifetime_ns=0, rtt_us=3_000_000),  # lifetime unknown; RTT beyond the buckets
        ]
    )
    got = {
        (n, labels.get("le")): v
        for n, labels, v in samples(m)
        if n.startswith(("tcpevent_connection_duration", "tcpevent_rtt"))
    }
    assert got[("tcpevent_connection_duration_seconds_bucket", "0.001")] == 1
    assert got[("tcpevent_connection_duration_seconds_bucket", "0.005")] == 2
    assert got[("tcpevent_connection_duration_seconds_bucket", "+Inf")] == 2
    assert got[("tcpevent_connection_duration_seconds_count", None)] == 2
    assert got[("tcpevent_connection_duration_seconds_sum", None)] == pytest.approx(0.002000001)
    assert got[("tcpevent_rtt_seconds_bucket", "0.0001")] == 1
    assert got[("tcpevent_rtt_seconds_bucket", "1.0")] == 1
    assert got[("tcpevent_rtt_seconds_bucket", "+Inf")] == 2
    assert got[("tcpevent_rtt_seconds_sum", None)] == pytest.approx(3.0001)


def test_budget_folds_new_label_sets_and_keeps_sums_exact() -> None:
    # Room for the __other__ label sets and two label sets of closes.
    m = EventMetrics(max_series=EventMetrics.minimum_series() + 2 * PER_LABEL_SET)
    events = [event(dport=1000 + i % 10, rx_bytes=i) for i in range(100)]
    m.observe(events[:50])
    first = values(m, "tcpevent_connections_closed_total")
    m.observe(events[50:])
    closed = values(m, "tcpevent_connections_closed_total")
    other = (OTHER,) * len(LABELS)
    # Ports 1000 and 1001 came first; the eight others fold, 10 events each.
    assert set(closed) == {connection_labels(events[0]), connection_labels(events[1]), other}
    assert closed[other] == 80
    assert sum(closed.values()) == 100
    assert sum(values(m, "tcpevent_received_bytes_total").values()) == sum(range(100))
    folded = [v for n, _, v in samples(m) if n == "tcpevent_series_folded_total"]
    assert folded == [80]
    # No label set went away; counters only grew.
    assert set(first) <= set(closed)
    assert all(closed[k] >= v for k, v in first.items())
    # The budget bounds what is served.
    series = [s for s in samples(m) if s[0] != "tcpevent_series_folded_total"]
    assert len(series) == 3 * PER_LABEL_SET


def test_the_smallest_budget_folds_everything() -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        EventMetrics(max_series=EventMetrics.minimum_series() - 1)
    m = EventMetrics(max_series=EventMetrics.minimum_series())
    m.observe([event(dport=p) for p in range(1, 6)])
    other = (OTHER,) * len(LABELS)
    assert values(m, "tcpevent_connections_closed_total") == {other: 5}


def test_connects_accepts_and_failures() -> None:
    m = EventMetrics()
    m.observe(
        [
            event(kind="connect", handshake_ns=40_000),
            event(
                kind="accept",
                direction="inbound",
                sport=443,
                dport=45000,
                handshake_ns=5_000,
                accept_wait_ns=300_000_000,
            ),
            event(state=TcpState.SYN_SENT, error=errno.ECONNREFUSED, rx_bytes=0, tx_bytes=0),
            event(state=TcpState.SYN_SENT, error=0, rx_bytes=0, tx_bytes=0),
            event(),  # an orderly close: no failure
        ]
    )
    out = ("outbound", "443", "curl", "ipv4", "")
    inb = ("inbound", "443", "curl", "ipv4", "")
    got = {(n, tuple(lab.get(k, "") for k in (*LABELS, "error"))): v for n, lab, v in samples(m)}
    assert got[("tcpevent_handshake_seconds_count", (*out, ""))] == 1
    assert got[("tcpevent_handshake_seconds_sum", (*out, ""))] == pytest.approx(40e-6)
    assert got[("tcpevent_handshake_seconds_count", (*inb, ""))] == 1
    assert got[("tcpevent_accept_wait_seconds_count", (*inb, ""))] == 1
    assert got[("tcpevent_accept_wait_seconds_sum", (*inb, ""))] == pytest.approx(0.3)
    assert ("tcpevent_accept_wait_seconds_count", (*out, "")) not in got
    # Connects and accepts are not closes; the failed connects are.
    assert values(m, "tcpevent_connections_closed_total") == {out: 3}
    assert got[("tcpevent_connect_failures_total", (*out, "ECONNREFUSED"))] == 1
    assert got[("tcpevent_connect_failures_total", (*out, ""))] == 1
    assert sum(v for (n, _), v in got.items() if n == "tcpevent_connect_failures_total") == 2


def test_peer_label_only_when_asked() -> None:
    m = EventMetrics(label_peer=True)
    m.observe([event(daddr="127.0.0.9")])
    (labels,) = [lab for n, lab, _ in samples(m) if n == "tcpevent_connections_closed_total"]
    assert labels["peer"] == "127.0.0.9"
    m = EventMetrics()
    m.observe([event()])
    (labels,) = [lab for n, lab, _ in samples(m) if n == "tcpevent_connections_closed_total"]
    assert "peer" not in labels


# ---- health ------------------------------------------------------------------------------------


def test_health_reads_the_tracers_counters() -> None:
    stats = TracerStats(
        received=10,
        dropped_kernel=2,
        dropped_queue=3,
        queued=4,
        delivered=5,
        malformed=0,
        untracked=6,
        filtered=0,
        snapshots=0,
        snapshot_errors=0,
        missed=7,
        buffered=0,
    )
    current: list[TracerStats | None] = [None]
    registry = CollectorRegistry()
    registry.register(HealthCollector(lambda: current[0], __version__))

    def served() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = generate_latest(registry).decode()
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }

    # Before the tracer is open: the build info only.
    assert served() == {("tcpevent_build_info", (("version", __version__),)): 1}
    current[0] = stats
    assert served() == {
        ("tcpevent_build_info", (("version", __version__),)): 1,
        ("tcpevent_events_total", ()): 10,
        ("tcpevent_events_dropped_total", (("where", "kernel"),)): 2,
        ("tcpevent_events_dropped_total", (("where", "queue"),)): 3,
        ("tcpevent_events_missed_total", ()): 7,
        ("tcpevent_queue_depth", ()): 4,
        ("tcpevent_sockets_untracked_total", ()): 6,
    }


# ---- --listen ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "listen"),
    [
        ("127.0.0.1:9477", Listen("127.0.0.1", 9477)),
        ("9100", Listen("127.0.0.1", 9100)),
        (":9100", Listen("127.0.0.1", 9100)),
        ("0.0.0.0:9477", Listen("0.0.0.0", 9477)),
        ("[::1]:9477", Listen("::1", 9477)),
        ("[::]:0", Listen("::", 0)),
    ],
)
def test_listen_addresses(text: str, listen: Listen) -> None:
    assert parse_listen(text) == listen


@pytest.mark.parametrize(
    "text", ["::1:9477", "localhost:9477", "127.0.0.1:", "127.0.0.1:70000", "[::1]", "1.2.3:80"]
)
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_listen(text)


def test_listen_prints_ipv6_in_brackets() -> None:
    assert str(Listen("::1", 9477)) == "[::1]:9477"
    assert str(Listen("127.0.0.1", 9477)) == "127.0.0.1:9477"
