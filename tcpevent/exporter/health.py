"""The exporter's own health: the tracer's counters, read at each scrape.

The values are :class:`~tcpevent.TracerStats`, exactly the core's counters
(a collector re-exports them rather than keeping counters of its own that
could drift from them), and ``tcpevent_build_info``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Callable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tcpevent.stats import TracerStats

__all__ = ["HealthCollector"]


class HealthCollector(Collector):
    """``tcpevent_build_info`` always; the tracer's counters once ``stats()``
    returns them (it returns None before the tracer is open)."""

    def __init__(self, stats: Callable[[], TracerStats | None], version: str) -> None:
        self._stats = stats
        self._version = version

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "tcpevent_build_info",
            "The version of tcpevent, as a label; always 1.",
            labels=["version"],
        )
        info.add_metric([self._version], 1)
        yield info
        st = self._stats()
        if st is None:
            return
        yield CounterMetricFamily(
            "tcpevent_events_total",
            "Records the tracer read from the kernel's ring buffer.",
            value=st.received,
        )
        dropped = CounterMetricFamily(
            "tcpevent_events_dropped_total",
            "Events lost for want of room: in the kernel's ring buffer, or in the queue.",
            labels=["where"],
        )
        dropped.add_metric(["kernel"], st.dropped_kernel)
        dropped.add_metric(["queue"], st.dropped_queue)
        yield dropped
        yield CounterMetricFamily(
            "tcpevent_events_missed_total",
            "Events the kernel may never have shown the tracer (an upper bound).",
            value=st.missed,
        )
        yield GaugeMetricFamily(
            "tcpevent_queue_depth", "Events waiting in the tracer's queue.", value=st.queued
        )
        yield CounterMetricFamily(
            "tcpevent_sockets_untracked_total",
            "Sockets the kernel side could not track: its socket table was full.",
            value=st.untracked,
        )
