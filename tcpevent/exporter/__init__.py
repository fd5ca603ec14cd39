"""``tcpevent exporter``, the Prometheus exporter: :mod:`.command` runs the
tracer and serves ``/metrics``, :mod:`.metrics` turns events into series
under a budget, :mod:`.health` reports the tracer's own counters.

With :mod:`tcpevent.ship.metrics` (``tcpevent ship --metrics``, which
serves this package's health collector too), the only part of the package
that imports ``prometheus_client`` (the optional extra
``tcpevent[prometheus]``)."""

from tcpevent.exporter.command import DEFAULT_LISTEN, Listen, build_parser, main, parse_listen

__all__ = ["DEFAULT_LISTEN", "Listen", "build_parser", "main", "parse_listen"]
