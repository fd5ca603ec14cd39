"""``tcpevent ship --metrics``: the shipper's counters, read at each scrape
from :attr:`Shipper.stats` (never a second count that could drift), with
the tracer's health (the exporter's collector) and the process's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Callable

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tcpevent.exporter.health import HealthCollector
from tcpevent.ship.shipper import ShipStats
from tcpevent.stats import TracerStats

__all__ = ["ShipCollector", "ship_registry"]


class ShipCollector(Collector):
    def __init__(self, stats: Callable[[], ShipStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        st = self._stats()
        for name, value, text in (
            ("sent", st.sent, "Rows (events) ClickHouse acknowledged."),
            ("spooled", st.spooled, "Rows that had to wait in the spool for ClickHouse."),
            ("dropped", st.dropped, "Rows lost: the spool was full or could not be written."),
        ):
            yield CounterMetricFamily(f"tcpevent_ship_rows_{name}_total", text, value=value)
        yield CounterMetricFamily(
            "tcpevent_ship_retries_total",
            "Failed attempts at sending a batch (each one is tried again).",
            value=st.retried,
        )
        yield GaugeMetricFamily(
            "tcpevent_ship_spool_rows", "Rows in the spool now.", value=st.spool_rows
        )
        yield GaugeMetricFamily(
            "tcpevent_ship_spool_bytes", "Bytes of batches in the spool now.", value=st.spool_bytes
        )
        yield GaugeMetricFamily(
            "tcpevent_ship_spool_batches", "Batches in the spool now.", value=st.spool_batches
        )
        yield GaugeMetricFamily(
            "tcpevent_ship_clickhouse_up",
            "1 if the last attempt at a batch succeeded (or none was made yet), else 0.",
            value=1 if st.up else 0,
        )


def ship_registry(
    ship: Callable[[], ShipStats], tracer: Callable[[], TracerStats | None], version: str
) -> Callable[[], tuple[bytes, str]]:
    """A registry of the shipper's, the tracer's and the process's metrics,
    as what a :class:`~tcpevent.webconfig.MetricsServer` renders."""
    registry = CollectorRegistry()
    registry.register(ShipCollector(ship))
    registry.register(HealthCollector(tracer, version))
    ProcessCollector(registry=registry)

    def render() -> tuple[bytes, str]:
        return generate_latest(registry), CONTENT_TYPE_LATEST

    return render
