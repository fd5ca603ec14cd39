"""The exporter's UDP flow metrics (``tcpevent exporter --udp``).

Every flow report (:class:`~tcpevent.UdpFlow`) adds its interval's bytes,
datagrams and receive drops to one label set, and a flow's last report
(its socket released, or the flow retired after idle intervals) counts one
flow ended. The labels are those of the connection metrics: ``direction``,
``service_port``, ``comm``, ``family``, ``container`` (and ``peer`` with
--label-peer). UDP has no connect() or accept() to say who serves: the
service port is the lower of the two ports (ephemeral ports are drawn from
the top of the range) and the direction is ``inbound`` when it is the
socket's own port, ``outbound`` when it is the peer's. Label sets take
series from the exporter's one budget (:class:`SeriesBudget`), shared with
the connection metrics, and fold into ``__other__`` when it is spent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from tcpevent.exporter.metrics import (
    LABELS,
    OTHER,
    PEER_LABEL,
    SHORT_ID,
    Counter,
    Group,
    GroupSpec,
    SeriesBudget,
)
from tcpevent.family import family_label
from tcpevent.udp_flow import UdpFlow

__all__ = ["UDP_FLOWS", "UdpMetrics", "udp_labels"]

#: What every UDP flow report updates.
UDP_FLOWS = GroupSpec(
    counters=(
        Counter("tcpevent_udp_flows_total", "UDP flows ended (socket released, or idle)."),
        Counter("tcpevent_udp_received_bytes_total", "UDP payload bytes received."),
        Counter("tcpevent_udp_sent_bytes_total", "UDP payload bytes sent."),
        Counter(
            "tcpevent_udp_received_datagrams_total",
            "UDP datagrams that reached their socket (receive drops included).",
        ),
        Counter("tcpevent_udp_sent_datagrams_total", "UDP datagrams sent."),
        Counter(
            "tcpevent_udp_receive_drops_total",
            "UDP datagrams their socket's full receive queue refused.",
        ),
    ),
)


def udp_labels(flow: UdpFlow, peer: bool = False) -> tuple[str, ...]:
    """The label values of ``flow``, in the order of :data:`LABELS` (and the
    remote address when ``peer``)."""
    service = min(flow.sport, flow.dport)
    direction = "inbound" if service == flow.sport else "outbound"
    found = flow.container_id
    labels = (
        direction,
        str(service),
        flow.task,
        family_label(flow.family),
        "" if found is None else found[:SHORT_ID],
    )
    return (*labels, flow.daddr) if peer else labels


class UdpMetrics(Collector):
    """The UDP flow metrics, fed with reports, read by scrapes (thread-safe)."""

    def __init__(self, budget: SeriesBudget, label_peer: bool = False) -> None:
        self._lock = threading.Lock()
        self._peer = label_peer
        labels = (*LABELS, PEER_LABEL) if label_peer else LABELS
        self._group = Group(UDP_FLOWS, labels, budget)
        self.folded = 0
        """Reports counted under ``__other__`` for want of budget."""

    def observe(self, flows: Iterable[UdpFlow]) -> None:
        with self._lock:
            for f in flows:
                ended = 1 if (f.final or f.retired) else 0
                counts = (
                    ended,
                    f.rx_bytes,
                    f.tx_bytes,
                    f.rx_datagrams,
                    f.tx_datagrams,
                    f.rx_drops,
                )
                if self._group.add(udp_labels(f, self._peer), counts, ()):
                    self.folded += 1

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            metrics = self._group.collect()
            folded = self.folded
        yield from metrics
        yield CounterMetricFamily(
            "tcpevent_udp_series_folded_total",
            f"UDP flow reports counted under the {OTHER} label set because the series "
            "budget (--max-series) was spent.",
            value=folded,
        )
