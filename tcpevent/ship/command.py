"""``tcpevent ship``: the host's TCP events into a ClickHouse table.

It runs a :class:`~tcpevent.Tracer` and a :class:`~tcpevent.ship.Shipper`
(its spool first: what a previous run left is sent before anything new),
and with ``--metrics`` serves its counters for Prometheus, behind TLS and
basic auth with ``--web.config.file``. See docs/fleet.md.

Exit status: 0 when stopped by SIGINT or SIGTERM (the spool keeps what
ClickHouse did not take in ``--drain-timeout``); 1 when the spool, the
host's identity or the metrics' address cannot be had, or the tracer cannot
start; 2 for bad arguments (a password that cannot be read included); 77
when the privileges to load BPF are missing. ClickHouse down or refusing
is no reason to exit: batches wait in the spool, and the log says why.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

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
    positive_seconds,
    signals_stop,
)
from tcpevent.errors import TracerError
from tcpevent.ship.clickhouse import DEFAULT_TIMEOUT, ClickHouseClient
from tcpevent.ship.identity import HostIdentity
from tcpevent.ship.schema import DEFAULT_TABLE, check_table_name
from tcpevent.ship.shipper import DEFAULT_BATCH_ROWS, DEFAULT_BATCH_SECONDS, Shipper
from tcpevent.ship.spool import Spool, parse_size
from tcpevent.tracer import Tracer

if TYPE_CHECKING:
    from tcpevent.exporter.command import Listen

__all__ = ["DEFAULT_SPOOL", "DEFAULT_SPOOL_SIZE", "build_parser", "main"]

#: systemd's StateDirectory=tcpevent (examples/systemd/tcpevent-ship.service).
DEFAULT_SPOOL = "/var/lib/tcpevent/spool"
DEFAULT_SPOOL_SIZE = "1G"
DEFAULT_LOG_INTERVAL = 60.0
DEFAULT_DRAIN_TIMEOUT = 5.0


def _seconds_or_zero(text: str) -> float:
    return 0.0 if text.strip() in ("0", "0.0") else positive_seconds(text)


_size = argument_type(parse_size)
_table = argument_type(check_table_name)


def _events(text: str) -> tuple[str, ...]:
    from tcpevent.cli.command import _event_kinds  # the command's own --events, one parser

    return _event_kinds(text)


def _listen(text: str) -> Listen:
    try:
        from tcpevent.exporter import parse_listen
    except ModuleNotFoundError as exc:
        raise argparse.ArgumentTypeError(
            f"--metrics needs {exc.name}: pip install 'tcpevent[prometheus]'"
        ) from None
    return argument_type(parse_listen)(text)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``tcpevent ship``."""
    parser = argparse.ArgumentParser(
        prog="tcpevent ship",
        description=(
            "Ship every TCP event of the host into a ClickHouse table over HTTP, in\n"
            "gzip'd batches, through an on-disk spool: nothing lost while ClickHouse is\n"
            "down or refusing (up to the spool's size, and what cannot be kept is\n"
            "counted), nothing doubled (every event has an id; the table deduplicates)."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "The password is never an argument: --password-file or --password-env.\n"
            "Tracing needs root, or CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH.\n"
            "Exit status: 0 stopped by SIGINT/SIGTERM, 1 cannot spool, serve or trace,\n"
            "2 bad arguments, 77 not privileged. See docs/fleet.md."
        ),
    )
    ch = parser.add_argument_group("ClickHouse")
    ch.add_argument(
        "--clickhouse",
        required=True,
        metavar="URL",
        help="the HTTP interface: http://HOST:8123 or https://HOST:8443 (settings such as "
        "?database=NAME may follow)",
    )
    ch.add_argument(
        "--table",
        type=_table,
        default=DEFAULT_TABLE,
        metavar="[DB.]NAME",
        help="the table, created if missing (default: %(default)s)",
    )
    ch.add_argument("--user", metavar="NAME", help="the ClickHouse user (default: default)")
    secret = ch.add_mutually_exclusive_group()
    secret.add_argument(
        "--password-file", metavar="FILE", help="read the password from FILE (one line)"
    )
    secret.add_argument(
        "--password-env", metavar="VAR", help="read the password from the environment variable VAR"
    )
    ch.add_argument("--ca-file", metavar="FILE", help="with https://: the CA certificates to trust")
    ch.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="longest wait for one insert before it is retried (default: %(default)s)",
    )
    batching = parser.add_argument_group("batches and spool")
    batching.add_argument(
        "--events",
        type=_events,
        metavar="KINDS",
        help="which events, comma-separated: close (the default), connect, accept",
    )
    batching.add_argument(
        "--batch-rows",
        type=bounded_int("batch rows", 1, 10_000_000),
        default=DEFAULT_BATCH_ROWS,
        metavar="N",
        help="a batch is sent when it has N rows (default: %(default)s) ...",
    )
    batching.add_argument(
        "--batch-seconds",
        type=positive_seconds,
        default=DEFAULT_BATCH_SECONDS,
        metavar="SECONDS",
        help="... or its first row is this old (default: %(default)s)",
    )
    batching.add_argument(
        "--spool",
        default=DEFAULT_SPOOL,
        metavar="DIR",
        help="where batches wait for ClickHouse, fsync'd (default: %(default)s)",
    )
    batching.add_argument(
        "--spool-size",
        type=_size,
        default=DEFAULT_SPOOL_SIZE,
        metavar="SIZE",
        help="at most this much in the spool, e.g. 512M, 4G (default: %(default)s); "
        "batches beyond it are dropped and counted",
    )
    batching.add_argument(
        "--drain-timeout",
        type=_seconds_or_zero,
        default=DEFAULT_DRAIN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, how long to go on sending the spool (default: %(default)s)",
    )
    obs = parser.add_argument_group("its own counters")
    obs.add_argument(
        "--log-interval",
        type=_seconds_or_zero,
        default=DEFAULT_LOG_INTERVAL,
        metavar="SECONDS",
        help="log sent/spooled/retried/dropped this often (default: %(default)s; 0: never)",
    )
    obs.add_argument(
        "--metrics",
        type=_listen,
        metavar="ADDR:PORT",
        help="serve them for Prometheus on /metrics here (PORT alone: 127.0.0.1)",
    )
    obs.add_argument(
        "--web.config.file",
        dest="web_config_file",
        metavar="FILE",
        help="with --metrics: TLS and basic auth, in the Prometheus exporter-toolkit format",
    )
    add_tracer_arguments(parser)
    return parser


def read_password(args: argparse.Namespace) -> str | None:
    """The password from ``--password-file`` or ``--password-env``; a
    UsageError when it cannot be read (the message never shows it)."""
    if args.password_file:
        try:
            text = Path(args.password_file).read_text()
        except OSError as exc:
            raise UsageError(
                f"cannot read the password file {args.password_file}: {exc.strerror}"
            ) from None
        return text.rstrip("\r\n")
    if args.password_env:
        value = os.environ.get(args.password_env)
        if value is None:
            raise UsageError(f"the environment variable {args.password_env} is not set")
        return value
    return None


def _log(line: str) -> None:
    print(f"tcpevent ship: {line}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    """Ship until SIGINT or SIGTERM."""
    from tcpevent import __version__

    try:
        client = ClickHouseClient(
            args.clickhouse,
            user=args.user,
            password=read_password(args),
            ca_file=args.ca_file,
            timeout=args.timeout,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    web_config = None
    if args.web_config_file:
        from tcpevent.webconfig import WebConfigError, load_web_config

        try:
            web_config = load_web_config(args.web_config_file)
        except WebConfigError as exc:
            raise UsageError(str(exc)) from None
    identity = HostIdentity.of_this_host()
    events = args.events or ("close",)
    tracer: Tracer | None = None
    stop = Stop()
    with signals_stop(stop), Spool(args.spool, args.spool_size) as spool:
        shipper = Shipper(
            client,
            spool,
            args.table,
            identity=identity,
            batch_rows=args.batch_rows,
            batch_seconds=args.batch_seconds,
            log=_log,
        )
        server = None
        if args.metrics is not None:
            from tcpevent.ship.metrics import ship_registry
            from tcpevent.webserver import MetricsServer

            render = ship_registry(
                lambda: shipper.stats,
                lambda: tracer.stats if tracer is not None else None,
                __version__,
            )
            try:
                server = MetricsServer(
                    args.metrics.address, args.metrics.port, render, web_config, _log
                )
            except OSError as exc:
                raise _Failure(f"cannot listen on {args.metrics}: {exc.strerror or exc}") from None
        try:
            waiting = spool.rows
            shipper.start()  # the spool's batches go first, tracer or not
            tracer = open_tracer(args, events)
            with tracer:
                _log(
                    f"shipping {','.join(events)} events to {client.where}, table "
                    f"{args.table} (spool {spool.directory}: {waiting} rows waiting)"
                )
                if server is not None:
                    _log(f"serving {server.url}")
                shipper.ship(tracer, lambda: bool(stop), args.log_interval)
                lost = tracer.stats
            empty = shipper.close(args.drain_timeout)
            final = shipper.stats
            _log(f"stopped: {final.line()}" + ("" if empty else "; the spool keeps the rest"))
            if lost.dropped:
                _log(f"the tracer lost {lost.dropped} events (its queue or ring buffer was full)")
        finally:
            shipper.close(0)
            if server is not None:
                server.close()
    return EXIT_OK


class _Failure(Exception):
    """It cannot do its work: the message says why (exit status 1)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tcpevent ship`` (the arguments after ``ship``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_tracer_arguments(parser, args)
    if args.web_config_file and args.metrics is None:
        parser.error("--web.config.file applies to --metrics")
    try:
        return run(args)
    except (TracerError, UsageError) as exc:
        print(f"tcpevent ship: {exc}", file=sys.stderr)
        return exit_status(exc)
    except (_Failure, OSError) as exc:  # the spool, the host's ids
        print(f"tcpevent ship: {exc}", file=sys.stderr)
        return EXIT_FAILURE
