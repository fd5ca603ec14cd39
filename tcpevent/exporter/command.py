"""``tcpevent exporter``: a Prometheus exporter of the host's TCP connections.

It runs a :class:`~tcpevent.Tracer` and serves ``/metrics`` (prometheus_client,
the optional extra ``tcpevent[prometheus]``) on ``--listen ADDR:PORT``,
127.0.0.1:9477 unless another address is spelled out. The connection
metrics and their series budget are :mod:`tcpevent.exporter.metrics`, the tracer's
health :mod:`tcpevent.exporter.health`; see docs/exporter.md.

Exit status: 0 when stopped by SIGINT or SIGTERM; 1 when it cannot listen
or the tracer cannot start; 2 for bad arguments; 77 when the privileges to
load BPF are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server

from tcpevent.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    Stop,
    UsageError,
    add_tracer_arguments,
    argument_type,
    bounded_int,
    check_tracer_arguments,
    exit_status,
    open_tracer,
    signals_stop,
)
from tcpevent.cli.udp import open_udp_tracer
from tcpevent.errors import TracerClosedError, TracerError
from tcpevent.exporter.health import HealthCollector
from tcpevent.exporter.metrics import DEFAULT_MAX_SERIES, EVENT_KINDS, OTHER, EventMetrics
from tcpevent.exporter.udp_metrics import UdpMetrics
from tcpevent.stats import TracerStats
from tcpevent.tracer import Tracer
from tcpevent.udp_tracer import UdpTracer

__all__ = ["DEFAULT_LISTEN", "Listen", "build_parser", "main", "parse_listen"]

#: Where metrics are served unless --listen says otherwise: loopback only.
DEFAULT_PORT = 9477
DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_LISTEN = f"{DEFAULT_ADDRESS}:{DEFAULT_PORT}"
#: Longest wait between two checks for a signal.
POLL_INTERVAL = 0.1
BATCH = 1024


@dataclass(frozen=True)
class Listen:
    """An address and port to serve on."""

    address: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"


def parse_listen(text: str) -> Listen:
    """``ADDR:PORT``, ``[IPV6]:PORT``, or ``PORT`` / ``:PORT`` for 127.0.0.1.

    The address is an IP address (no name is resolved); port 0 takes any
    free port. ``ValueError`` says what is wrong.
    """
    text = text.strip()
    if text.startswith("["):
        address, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"not [ADDRESS]:PORT: {text!r}")
    elif ":" not in text:
        address, port = "", text
    else:
        address, _, port = text.rpartition(":")
        if ":" in address:
            raise ValueError(f"an IPv6 address goes in brackets, as in [::1]:{port}: {text!r}")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a port number (0 to 65535): {port!r} in {text!r}")
    if not address:
        return Listen(DEFAULT_ADDRESS, int(port))
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"not an IP address: {address!r} in {text!r}") from None
    if ip.version == 6 and "[" not in text:
        raise ValueError(f"an IPv6 address goes in brackets, as in [::1]:{port}: {text!r}")
    return Listen(str(ip), int(port))


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``tcpevent exporter``."""
    parser = argparse.ArgumentParser(
        prog="tcpevent exporter",
        description=(
            "Serve Prometheus metrics of the host's TCP connections: connections closed,\n"
            "bytes each way, retransmits, duration and RTT histograms, by direction,\n"
            "service port, command, family and container; and the tracer's own health."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Metrics are served on loopback unless another address is given: exposing\n"
            "them (e.g. --listen 0.0.0.0:9477) is a choice to spell out.\n"
            "Tracing needs root, or CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH.\n"
            "Exit status: 0 stopped by SIGINT/SIGTERM, 1 cannot listen or trace,\n"
            "2 bad arguments, 77 not privileged. See docs/exporter.md."
        ),
    )
    serving = parser.add_argument_group("serving")
    serving.add_argument(
        "--listen",
        "-l",
        type=argument_type(parse_listen),
        default=Listen(DEFAULT_ADDRESS, DEFAULT_PORT),
        metavar="ADDR:PORT",
        help=f"where to serve /metrics (default: {DEFAULT_LISTEN}); PORT alone means "
        "127.0.0.1; IPv6 in brackets ([::1]:9477); port 0: any free port",
    )
    serving.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="TLS and basic auth for /metrics, in the Prometheus exporter-toolkit format "
        "(tls_server_config, basic_auth_users; needs tcpevent[web]; docs/fleet.md)",
    )
    serving.add_argument(
        "--max-series",
        type=bounded_int("max series", 1, 2**31 - 1),
        default=DEFAULT_MAX_SERIES,
        metavar="N",
        help="at most N series of connection metrics (default: %(default)s); events of "
        f"new label sets beyond it are counted under the label set {OTHER}",
    )
    serving.add_argument(
        "--udp",
        action="store_true",
        help="also UDP flows: bytes, datagrams, receive drops and flows by the same "
        "labels, from the UDP tracer, within the same --max-series (docs/udp.md)",
    )
    serving.add_argument(
        "--label-peer",
        action="store_true",
        help="add the label peer (the remote address): one more label set per peer",
    )
    add_tracer_arguments(parser)
    return parser


class ListenError(Exception):
    """The metrics cannot be served where asked (exit status 1)."""


def _serve_http(
    where: Listen, registry: CollectorRegistry, web_config: str | None = None
) -> tuple[Any, str]:
    """Start serving ``registry``; the server (``shutdown()``,
    ``server_close()``) and its URL. With a web configuration file: the
    server of :mod:`tcpevent.webconfig` (TLS, basic auth)."""
    try:
        if web_config is not None:
            return _serve_web_config(where, registry, web_config)
        server, _thread = start_http_server(where.port, where.address, registry)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ListenError(f"cannot listen on {where}: {reason}") from None
    return server, f"http://{Listen(where.address, int(server.server_address[1]))}/metrics"


def _serve_web_config(where: Listen, registry: CollectorRegistry, path: str) -> tuple[Any, str]:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from tcpevent.webconfig import WebConfigError, load_web_config
    from tcpevent.webserver import MetricsServer

    try:
        config = load_web_config(path)
    except WebConfigError as exc:
        raise UsageError(str(exc)) from None

    def log(line: str) -> None:
        print(f"tcpevent exporter: {line}", file=sys.stderr, flush=True)

    def render() -> tuple[bytes, str]:
        return generate_latest(registry), CONTENT_TYPE_LATEST

    server = MetricsServer(where.address, where.port, render, config, log)
    return server, server.url


def _open_tracer(args: argparse.Namespace) -> Tracer:
    # Accept events come from the accept() hooks: none without them. Every
    # retransmission is an event (no rate limit): counted by its cause.
    kinds = EVENT_KINDS if args.accept_hooks else EVENT_KINDS - {"accept"}
    return open_tracer(args, kinds, retransmit_interval=None)


def _drain_udp(tracer: UdpTracer, metrics: UdpMetrics) -> None:
    """The UDP tracer's reports into its metrics, until it is closed and drained."""
    with contextlib.suppress(TracerClosedError):
        while True:
            metrics.observe(tracer.dequeue_batch(BATCH, timeout=POLL_INTERVAL))


def run(args: argparse.Namespace, metrics: EventMetrics, udp: UdpMetrics | None = None) -> int:
    """Serve until SIGINT or SIGTERM."""
    from tcpevent import __version__

    tracer: Tracer | None = None
    udp_tracer: UdpTracer | None = None
    drainer: threading.Thread | None = None

    def stats() -> TracerStats | None:
        return tracer.stats if tracer is not None else None

    registry = CollectorRegistry()
    registry.register(metrics)
    if udp is not None:
        registry.register(udp)
    registry.register(HealthCollector(stats, __version__))
    ProcessCollector(registry=registry)
    stop = Stop()
    with signals_stop(stop):
        # Listen first: a port in use is found before anything is loaded.
        server, url = _serve_http(args.listen, registry, args.web_config_file)
        try:
            tracer = _open_tracer(args)
            if udp is not None:
                udp_tracer = open_udp_tracer(args)
                drainer = threading.Thread(target=_drain_udp, args=(udp_tracer, udp), daemon=True)
                drainer.start()
            with tracer:
                print(
                    f"tcpevent exporter: serving {url}",
                    file=sys.stderr,
                    flush=True,
                )
                while not stop:
                    metrics.observe(tracer.dequeue_batch(BATCH, timeout=POLL_INTERVAL))
        finally:
            if udp_tracer is not None:
                udp_tracer.close()  # its last reports are counted, then the thread ends
            if drainer is not None:
                drainer.join(10)
            server.shutdown()
            server.server_close()
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tcpevent exporter`` (the arguments after ``exporter``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tracer_arguments(parser, args)
    try:
        metrics = EventMetrics(args.max_series, label_peer=args.label_peer)
        udp = UdpMetrics(metrics.budget, args.label_peer) if args.udp else None
    except ValueError as exc:
        parser.error(f"--max-series {args.max_series} is too small: {exc}")
    try:
        return run(args, metrics, udp)
    except (TracerError, UsageError, ListenError) as exc:
        print(f"tcpevent exporter: {exc}", file=sys.stderr)
        return EXIT_FAILURE if isinstance(exc, ListenError) else exit_status(exc)
