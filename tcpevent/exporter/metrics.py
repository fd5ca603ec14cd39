"""The exporter's connection metrics: labels, the series budget, the collector.

Every event becomes one label set (:func:`connection_labels`) and updates
the metrics of its *group* under it: a close updates the counters and the
duration and RTT histograms of :data:`CLOSES`. A group's label set costs a
fixed number of Prometheus series (a counter one; a histogram one per
bucket, ``+Inf``, ``_sum`` and ``_count``), and :class:`SeriesBudget` bounds
their total: a label set seen when the budget is spent is counted under the
group's ``__other__`` label set instead (every label ``"__other__"``), whose
series are reserved from the start. A label set, once exported, stays for
the life of the process (counters stay monotonic for ``rate()``), and
every event is counted exactly once, folded or not: the sum over all label
sets is exact.

Connect and accept events (the tracer is opened with ``events={"connect",
"accept", "close"}``) update the handshake and accept-wait histograms; a
close of a connection that never reached ESTABLISHED also counts in
``tcpevent_connect_failures_total``, by its error. Retransmit, reset and
drop events (docs/health.md) count retransmissions by cause, resets by
which way they went and drops by the kernel's reason (the exporter's tracer
has no retransmit rate limit: every retransmission is an event). Everything
an event
gives the labels is read in :func:`connection_labels` (the container id in
:func:`container_of`, from ``TcpEvent.container_id``).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from tcpevent._options import EVENT_KINDS as _TRACER_EVENT_KINDS
from tcpevent.event import TcpEvent
from tcpevent.family import family_label

__all__ = [
    "DEFAULT_MAX_SERIES",
    "EVENT_KINDS",
    "LABELS",
    "OTHER",
    "EventMetrics",
    "SeriesBudget",
    "connection_labels",
    "service_port",
]

DEFAULT_MAX_SERIES = 5000
#: The value of every label of the label set that takes what the budget refuses.
OTHER = "__other__"
#: The labels of every connection metric, in order; ``peer`` follows with --label-peer.
LABELS = ("direction", "service_port", "comm", "family", "container")
PEER_LABEL = "peer"
#: Length of the short container id (as ``docker ps`` shows it).
SHORT_ID = 12

#: The kinds of events the metrics are made of (``Tracer(events=...)``):
#: every kind a tracer delivers on request (:meth:`EventMetrics.observe` has
#: metrics for each; a test checks that each one counts).
EVENT_KINDS: frozenset[str] = frozenset(_TRACER_EVENT_KINDS)

_DIRECTIONS = frozenset({"outbound", "inbound"})

_NS = 1e9


# ---- labels ---------------------------------------------------------------------


def container_of(ev: TcpEvent) -> str:
    """The short (12 hex digits) id of the socket's container, ``""`` if none
    (``TcpEvent.container_id``: resolved from its cgroup, then cached)."""
    container_id = ev.container_id
    return "" if container_id is None else container_id[:SHORT_ID]


def service_port(direction: str, sport: int, dport: int) -> int:
    """The listening side's port: the remote port of an outbound connection,
    the local port of an inbound one. Of a connection whose direction is
    unknown, the lower port: ephemeral ports are drawn from the top of the
    range (Linux: 32768-60999), service ports are mostly below."""
    if direction == "outbound":
        return dport
    if direction == "inbound":
        return sport
    return min(sport, dport)


def connection_labels(ev: TcpEvent, peer: bool = False) -> tuple[str, ...]:
    """The label values of ``ev``, in the order of :data:`LABELS` (and
    ``peer``, the remote address, when ``peer`` is true)."""
    direction = ev.direction if ev.direction in _DIRECTIONS else "unknown"
    labels = (
        direction,
        str(service_port(direction, ev.sport, ev.dport)),
        ev.task,
        family_label(ev.family),
        container_of(ev),
    )
    return (*labels, ev.daddr) if peer else labels


# ---- metric definitions -------------------------------------------------------------


@dataclass(frozen=True)
class Counter:
    name: str
    help: str

    @property
    def series(self) -> int:
        return 1


@dataclass(frozen=True)
class Histogram:
    name: str
    help: str
    bounds: tuple[float, ...]
    """Upper bounds of the buckets, seconds, increasing (``+Inf`` is implied)."""

    @property
    def series(self) -> int:
        return len(self.bounds) + 3  # the buckets, +Inf, _sum, _count


@dataclass(frozen=True)
class GroupSpec:
    """Metrics updated together by one event, under one label set."""

    counters: tuple[Counter, ...] = ()
    histograms: tuple[Histogram, ...] = ()
    extra_labels: tuple[str, ...] = ()

    @property
    def series(self) -> int:
        """Prometheus series of one label set."""
        return len(self.counters) + sum(h.series for h in self.histograms)


#: What every close updates.
CLOSES = GroupSpec(
    counters=(
        Counter("tcpevent_connections_closed_total", "TCP connections closed."),
        Counter(
            "tcpevent_received_bytes_total",
            "Bytes received by closed connections (tcp_sock bytes_received; the FIN counts one).",
        ),
        Counter(
            "tcpevent_sent_bytes_total",
            "Bytes sent and acknowledged by closed connections "
            "(tcp_sock bytes_acked; the SYN and the FIN count one each).",
        ),
        Counter("tcpevent_retransmits_total", "Segments retransmitted by closed connections."),
    ),
    histograms=(
        Histogram(
            "tcpevent_connection_duration_seconds",
            "Lifetime of closed connections, from the first sighting of the socket to its close.",
            (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600),
        ),
        Histogram(
            "tcpevent_rtt_seconds",
            "Smoothed round-trip time of closed connections, at the close.",
            (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1),
        ),
    ),
)
#: Connections that never reached ESTABLISHED, by error.
FAILURES = GroupSpec(
    counters=(
        Counter(
            "tcpevent_connect_failures_total",
            "Connections closed before their handshake completed (a failed connect(): "
            "closed in SYN_SENT; or SYN_RECV), by the socket's error.",
        ),
    ),
    extra_labels=("error",),
)
_HANDSHAKE_BOUNDS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 3, 10)
#: What connect and accept events update.
HANDSHAKES = GroupSpec(
    histograms=(
        Histogram(
            "tcpevent_handshake_seconds",
            "TCP handshake time: SYN_SENT to ESTABLISHED (outbound), SYN_RECV to "
            "ESTABLISHED (inbound).",
            _HANDSHAKE_BOUNDS,
        ),
    ),
)
#: What accept events update.
ACCEPT_WAITS = GroupSpec(
    histograms=(
        Histogram(
            "tcpevent_accept_wait_seconds",
            "Time accepted connections waited in the listen queue: ESTABLISHED to accept().",
            _HANDSHAKE_BOUNDS,
        ),
    ),
)


#: Retransmissions by cause, as they happen.
RETRANSMISSIONS = GroupSpec(
    counters=(
        Counter(
            "tcpevent_retransmissions_total",
            "Retransmissions (a segment, or a burst of them, sent again) by cause: "
            "timeout, loss, fast, probe, syn, synack.",
        ),
        Counter(
            "tcpevent_retransmitted_segments_total",
            "Segments retransmitted, by the cause of their retransmission.",
        ),
    ),
    extra_labels=("cause",),
)
#: Resets, sent or received (the label direction says which).
RESETS = GroupSpec(
    counters=(
        Counter(
            "tcpevent_resets_total",
            "TCP resets this host sent or received (direction: sent, received).",
        ),
    ),
)
#: TCP packets the kernel dropped, by reason.
DROPS = GroupSpec(
    counters=(
        Counter(
            "tcpevent_drops_total",
            "TCP packets the kernel dropped, by its drop reason (enum skb_drop_reason).",
        ),
    ),
    extra_labels=("reason",),
)


# ---- the budget and the groups -----------------------------------------------------------


class SeriesBudget:
    """At most ``max_series`` series, taken by label sets as they come."""

    def __init__(self, max_series: int) -> None:
        self.max_series = max_series
        self.used = 0

    def reserve(self, series: int, what: str) -> None:
        """Set ``series`` aside for good; ``ValueError`` if they do not fit."""
        if self.used + series > self.max_series:
            raise ValueError(
                f"a budget of {self.max_series} series cannot hold {what} "
                f"({self.used + series} series are needed at least)"
            )
        self.used += series

    def take(self, series: int) -> bool:
        """Take ``series`` if there is room."""
        if self.used + series > self.max_series:
            return False
        self.used += series
        return True


class _Row:
    """The values of one label set of a group."""

    __slots__ = ("buckets", "counts", "sums")

    def __init__(self, spec: GroupSpec) -> None:
        self.counts = [0] * len(spec.counters)
        # Per histogram: the count of each bucket (not cumulative), +Inf last.
        self.buckets = [[0] * (len(h.bounds) + 1) for h in spec.histograms]
        self.sums = [0.0] * len(spec.histograms)


class Group:
    """The label sets of one :class:`GroupSpec`, within a budget."""

    def __init__(self, spec: GroupSpec, labels: Sequence[str], budget: SeriesBudget) -> None:
        self.spec = spec
        self.labels = (*labels, *spec.extra_labels)
        self._budget = budget
        self._other = (OTHER,) * len(self.labels)
        self._rows: dict[tuple[str, ...], _Row] = {}
        names = ", ".join(c.name for c in spec.counters) or ", ".join(
            h.name for h in spec.histograms
        )
        budget.reserve(spec.series, f"the {OTHER} label set of {names}")

    def add(
        self, key: tuple[str, ...], counts: Sequence[int], values: Sequence[float | None]
    ) -> bool:
        """Add ``counts`` to the counters and observe ``values`` (seconds; None:
        not observed) under ``key``; True if the budget folded it into ``__other__``."""
        row = self._rows.get(key)
        folded = False
        if row is None:
            if not self._budget.take(self.spec.series):
                folded = True
                key = self._other
                row = self._rows.get(key)
            if row is None:
                row = self._rows[key] = _Row(self.spec)
        for i, count in enumerate(counts):
            row.counts[i] += count
        for i, value in enumerate(values):
            if value is not None:
                row.buckets[i][bisect.bisect_left(self.spec.histograms[i].bounds, value)] += 1
                row.sums[i] += value
        return folded

    def collect(self) -> list[Metric]:
        out: list[Metric] = []
        rows = self._rows.items()
        for i, c in enumerate(self.spec.counters):
            counter = CounterMetricFamily(c.name, c.help, labels=self.labels)
            for key, row in rows:
                counter.add_metric(key, row.counts[i])
            out.append(counter)
        for i, h in enumerate(self.spec.histograms):
            les = [*map(floatToGoString, h.bounds), "+Inf"]
            hist = HistogramMetricFamily(h.name, h.help, labels=self.labels)
            for key, row in rows:
                cumulative, total = [], 0
                for le, n in zip(les, row.buckets[i]):
                    total += n
                    cumulative.append((le, float(total)))
                hist.add_metric(key, cumulative, row.sums[i])
            out.append(hist)
        return out


# ---- the collector ------------------------------------------------------------------------


def _seconds(ns: int) -> float | None:
    """ns as seconds; None for 0, which the tracer uses for "unknown"."""
    return ns / _NS if ns > 0 else None


class EventMetrics(Collector):
    """The connection metrics, fed with events, read by scrapes (thread-safe).

    ``max_series`` bounds the series of every label set of every group
    together (``ValueError`` if it cannot even hold their ``__other__``
    label sets); ``label_peer`` adds the ``peer`` label (the remote address).
    """

    GROUPS = (CLOSES, FAILURES, HANDSHAKES, ACCEPT_WAITS, RETRANSMISSIONS, RESETS, DROPS)

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES, label_peer: bool = False) -> None:
        self._lock = threading.Lock()
        self._peer = label_peer
        self.budget = SeriesBudget(max_series)
        labels = (*LABELS, PEER_LABEL) if label_peer else LABELS
        self._groups = [Group(spec, labels, self.budget) for spec in self.GROUPS]
        (
            self._closes,
            self._failures,
            self._handshakes,
            self._accept_waits,
            self._retransmissions,
            self._resets,
            self._drops,
        ) = self._groups
        self.folded = 0
        """Events counted under ``__other__`` for want of budget."""

    @classmethod
    def minimum_series(cls) -> int:
        """The smallest budget: the ``__other__`` label set of every group."""
        return sum(g.series for g in cls.GROUPS)

    def observe(self, events: Iterable[TcpEvent]) -> None:
        """Count ``events``: closes, connects and accepts (snapshots describe
        connections still open: their close counts them)."""
        with self._lock:
            for ev in events:
                if self._observe(ev, connection_labels(ev, self._peer)):
                    self.folded += 1

    def _observe(self, ev: TcpEvent, key: tuple[str, ...]) -> bool:
        """Count one event under ``key``; True if any of it was folded."""
        folded = False
        if ev.kind == "close":
            folded = self._closes.add(
                key,
                (1, ev.rx_bytes, ev.tx_bytes, ev.retrans),
                (_seconds(ev.lifetime_ns), _seconds(ev.rtt_us * 1000)),
            )
            if ev.failed:
                folded |= self._failures.add((*key, ev.error_name or ""), (1,), ())
        elif ev.kind in ("connect", "accept"):
            folded = self._handshakes.add(key, (), (_seconds(ev.handshake_ns),))
            if ev.kind == "accept":
                folded |= self._accept_waits.add(key, (), (_seconds(ev.accept_wait_ns),))
        elif ev.kind == "retransmit":
            # skipped: the rate limit's, 0 with the exporter's tracer.
            folded = self._retransmissions.add(
                (*key, ev.cause), (1 + ev.skipped, ev.segs + ev.skipped), ()
            )
        elif ev.kind == "reset":
            folded = self._resets.add((ev.cause, *key[1:]), (1,), ())
        elif ev.kind == "drop":
            folded = self._drops.add((*key, ev.reason_name or str(ev.reason)), (1,), ())
        return folded

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            metrics = [m for g in self._groups for m in g.collect()]
            folded = self.folded
        yield from metrics
        yield CounterMetricFamily(
            "tcpevent_series_folded_total",
            f"Events counted under the {OTHER} label set because the series budget "
            "(--max-series) was spent.",
            value=folded,
        )
