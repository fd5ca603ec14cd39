"""The ``tcpevent`` command (also ``python -m tcpevent``): arguments and modes.

Modes (one per run; each is a function ``(args) -> exit status`` in
:data:`MODES`, so that a new mode is one option and one function):

- ``events`` (default): print each closed TCP connection, one aligned line
  each (``--format line``), the original example's block (``seed``) or JSON
  lines (``json``, also ``--json``);
- ``connections`` (``--connections``): print the live connections now, with
  their ``tcp_info``, as a table (like ``ss -tip``) or JSON lines; no BPF;
- ``install-lib``: copy the packaged ``libtcpEvent.so`` for C clients.

``tcpevent exporter ...`` and ``tcpevent ship ...`` are subcommands with
arguments of their own, the Prometheus exporter (:mod:`tcpevent.exporter`)
and the ClickHouse shipper (:mod:`tcpevent.ship.command`): :func:`main` hands
each everything after its word before parsing anything.

How things are printed is :mod:`tcpevent.cli.render`'s job.

Exit status: 0 on success, including the end by SIGINT/SIGTERM, ``--count``,
``--duration`` or a closed output pipe; 1 when the tracer cannot start (the
core's reason on stderr); 2 for bad arguments; 77 (``EX_NOPERM``) when the
privileges to load BPF are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Callable, TextIO

from tcpevent import abi
from tcpevent._options import EVENT_KINDS, parse_events
from tcpevent.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    RunBudget,
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
from tcpevent.cli.render import (
    EVENT_FORMATS,
    EXAMPLE_EVENT,
    LIFECYCLE_FORMATS,
    format_connection_json,
    format_connections_table,
)
from tcpevent.cli.udp import run_udp
from tcpevent.connections import connections, parse_states
from tcpevent.errors import TracerError
from tcpevent.event import TcpEvent

__all__ = ["DEFAULT_LIB_DIR", "MODES", "build_parser", "exit_status", "main"]

#: Where the original examples dlopen() the library from.
DEFAULT_LIB_DIR = "/opt/RealTimeKql/lib"
LIB_NAME = "libtcpEvent.so"

#: Longest wait between two checks for a signal or the end of --duration.
POLL_INTERVAL = 0.1
BATCH = 256

# ---- argument parsing --------------------------------------------------------


def _checked_state(text: str) -> str:
    parse_states(text)  # checked now; the mode parses it again
    return text


_state = argument_type(_checked_state)


def _event_kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    try:
        parse_events(kinds)  # what Tracer(events=) accepts, checked by its own code
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--events takes a comma-separated list of {', '.join(EVENT_KINDS)}, not {text!r}"
        ) from None
    return kinds


def _help_example() -> str:
    """Each ``--format`` applied to the original documentation's example event."""
    parts = []
    for name, (header, render) in EVENT_FORMATS.items():
        text = header + render(EXAMPLE_EVENT)
        parts.append(f"--format {name}:\n" + "".join("  " + line for line in text.splitlines(True)))
    return "examples of the event formats (one event):\n" + "\n".join(parts)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``tcpevent``."""
    from tcpevent import __version__

    parser = argparse.ArgumentParser(
        prog="tcpevent",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Trace TCP connections with eBPF: one event per closed connection, with its\n"
            "owner (pid, uid, command), endpoints, bytes and segments each way, and close time."
        ),
        epilog=(
            _help_example() + "\n"
            "Tracing needs root, or the capabilities CAP_BPF, CAP_PERFMON and\n"
            "CAP_DAC_READ_SEARCH; --connections needs no privilege (but shows the owners\n"
            "only of the processes it may inspect).\n"
            "Exit status: 0 ok (also on SIGINT/SIGTERM), 1 the tracer could not start,\n"
            "2 bad arguments, 77 not privileged.\n"
            "The Prometheus exporter: tcpevent exporter --help.\n"
            "Events into ClickHouse: tcpevent ship --help."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--format",
        "-f",
        choices=tuple(EVENT_FORMATS),
        help="line: one aligned line per event under a header (the default; with "
        "--connections, a table); seed: the original C example's block; json: one JSON "
        "object per line, flushed per line",
    )
    out.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        help="the same as --format json",
    )
    out.add_argument(
        "--count",
        "-n",
        type=bounded_int("count", 1, 2**63 - 1),
        metavar="N",
        help="exit after N events",
    )
    out.add_argument(
        "--duration",
        "-d",
        type=positive_seconds,
        metavar="SECONDS",
        help="exit after this many seconds",
    )
    out.add_argument(
        "--events",
        type=_event_kinds,
        metavar="KINDS",
        help="which events, comma-separated: close (the default), connect (the "
        "active side's handshake completed), accept (accept() handed the passive side "
        "out), retransmit, reset, drop (what a connection goes through, with the "
        "kernel's reasons: docs/health.md); with connect or accept, handshake and "
        "accept-queue times are measured",
    )
    add_tracer_arguments(parser)
    parser.add_argument(
        "--program",
        metavar="PATH",
        help="a custom BPF object instead of the built-in program",
    )
    modes = parser.add_argument_group("other modes")
    modes.add_argument(
        "--connections",
        "-c",
        action="store_true",
        help="print the live TCP connections now with their tcp_info (RTT, cwnd, bytes, "
        "retransmissions), like `ss -tip`, or one JSON object each with --json; "
        "takes --pid, --port, -4/-6, --state and --netns; needs no BPF",
    )
    modes.add_argument(
        "--udp",
        action="store_true",
        help="trace UDP flows instead: a line per flow report (every --flush-interval "
        "for a live flow, and at its socket's release), or JSON with --json; takes the "
        "filters, --count and --duration (docs/udp.md)",
    )
    modes.add_argument(
        "--flush-interval",
        type=positive_seconds,
        metavar="SECONDS",
        help="with --udp: report live flows this often (default: 10)",
    )
    modes.add_argument(
        "--state",
        "-s",
        action="append",
        type=_state,
        metavar="STATE",
        help="with --connections: only sockets in this state (ESTABLISHED, LISTEN, "
        "TIME_WAIT, ... or 'all'; repeatable; default: connected sockets)",
    )
    modes.add_argument(
        "--install-lib",
        nargs="?",
        const=DEFAULT_LIB_DIR,
        metavar="DIR",
        help=f"copy the packaged {LIB_NAME} into DIR (default: {DEFAULT_LIB_DIR}), "
        "creating it, and exit",
    )
    return parser


# ---- the events mode ----------------------------------------------------------


class _Printer:
    """Writes events in one ``--format``, the header (if any) before the first."""

    def __init__(self, out: TextIO, fmt: str, lifecycle: bool) -> None:
        self._out = out
        self._header, self._render = (LIFECYCLE_FORMATS if lifecycle else EVENT_FORMATS)[fmt]
        self._per_line = fmt == "json"  # flushed line by line, for pipelines

    def __call__(self, events: list[TcpEvent]) -> None:
        if not events:
            return
        if self._header:
            self._out.write(self._header)
            self._header = ""
        if self._per_line:
            for ev in events:
                self._out.write(self._render(ev))
                self._out.flush()
        else:
            self._out.write("".join(self._render(ev) for ev in events))
            self._out.flush()


def _text_stdout() -> TextIO:
    """stdout, writing undecodable bytes of a command name as escapes."""
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="backslashreplace")
    return out


def run_events(args: argparse.Namespace) -> int:
    """Print events until a signal, ``--count`` or ``--duration``."""
    lifecycle = set(args.events or ("close",)) != {"close"}
    emit = _Printer(_text_stdout(), args.format or "line", lifecycle)
    stop = Stop()
    # The handlers go in before the program attaches: a signal that comes
    # once it is attached (the moment a supervisor sees it) ends the run
    # cleanly instead of killing the process.
    with signals_stop(stop), open_tracer(args, args.events or ("close",), args.program) as tracer:
        budget = RunBudget(args.count, args.duration)
        while not stop and budget:
            timeout = budget.timeout(POLL_INTERVAL)
            if timeout <= 0:
                break
            events = tracer.dequeue_batch(budget.want(BATCH), timeout=timeout)
            emit(events)
            budget.took(len(events))
        if stop and budget:
            # Print what had been queued when the signal came, no more.
            queued = tracer.stats.queued
            while queued > 0 and budget:
                events = tracer.dequeue_batch(budget.want(min(BATCH, queued)), timeout=0)
                if not events:
                    break
                emit(events)
                queued -= len(events)
                budget.took(len(events))
        stats = tracer.stats
    if stats.dropped:
        print(
            f"tcpevent: {stats.dropped} events lost (kernel ring buffer full: "
            f"{stats.dropped_kernel}, queue full: {stats.dropped_queue}); "
            "consider a larger --queue-size",
            file=sys.stderr,
        )
    return EXIT_OK


# ---- the connections mode -------------------------------------------------------


def run_connections(args: argparse.Namespace) -> int:
    """``--connections``: print the live connections once, then exit."""
    out = _text_stdout()
    if args.netns and len(args.netns) > 1:
        raise UsageError("--connections lists one network namespace: give --netns once")
    try:
        conns = connections(
            family=args.family,
            states=args.state,
            pid=args.pid,
            ports=args.port,
            netns=args.netns[0] if args.netns else None,
        )
    except ValueError as exc:  # a --netns that is no namespace
        raise UsageError(str(exc)) from None
    if args.format == "json":
        out.write("".join(format_connection_json(c) for c in conns))
    else:
        out.write(format_connections_table(conns))
    out.flush()
    return EXIT_OK


# ---- the install-lib mode -------------------------------------------------------


def install_lib(directory: str) -> Path:
    """Copy the packaged library into ``directory`` (created), atomically.

    A wheel's library comes with the libraries it bundles (libelf and zlib,
    in ``tcpevent.libs/`` beside the package): those are copied too, and
    the library's ``$ORIGIN`` rpath finds them there. Each copy replaces an
    existing file by rename, so programs that have the old one mapped keep
    running. Returns the installed path of the library.
    """
    source = abi.library_path()
    if not source.is_file():
        raise FileNotFoundError(f"{source} is missing: the package was built without it")
    target_dir = Path(directory)
    target_dir.mkdir(parents=True, exist_ok=True)
    bundled = source.parent.parent.parent / "tcpevent.libs"
    for lib in sorted(bundled.glob("*.so*")) if bundled.is_dir() else []:
        _copy_atomically(lib, target_dir / lib.name)
    target = target_dir / LIB_NAME
    _copy_atomically(source, target)
    return target


def _copy_atomically(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as dst, source.open("rb") as src:
            shutil.copyfileobj(src, dst)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def run_install_lib(args: argparse.Namespace) -> int:
    """``--install-lib [DIR]``: print where the library went."""
    try:
        target = install_lib(args.install_lib)
    except OSError as exc:
        raise _Failure(f"cannot install {LIB_NAME} into {args.install_lib}: {exc}") from exc
    print(target)
    return EXIT_OK


#: Every mode of the command, by name.
MODES: dict[str, Callable[[argparse.Namespace], int]] = {
    "events": run_events,
    "connections": run_connections,
    "install-lib": run_install_lib,
    "udp": run_udp,
}

#: Options that only make sense in the events mode (not with --connections).
_EVENTS_ONLY = (
    ("count", "--count"),
    ("duration", "--duration"),
    ("program", "--program"),
    ("events", "--events"),
    ("cgroup", "--cgroup"),
    ("container", "--container"),
)


def select_mode(args: argparse.Namespace) -> str:
    """Which mode the arguments ask for."""
    if args.install_lib is not None:
        return "install-lib"
    if args.connections:
        return "connections"
    if args.udp:
        return "udp"
    return "events"


def _check_mode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that do not go together: a usage error (exit status 2)."""
    if args.connections and args.install_lib is not None:
        parser.error("--connections and --install-lib are separate modes")
    if args.udp:
        if args.connections or args.install_lib is not None:
            parser.error("--udp is a mode of its own: not with --connections or --install-lib")
        for flag, given in (
            ("--program", args.program),
            ("--events", args.events),
            ("--format seed", args.format == "seed" or None),
            ("--no-accept-hooks", not args.accept_hooks or None),
        ):
            if given is not None:
                parser.error(f"{flag} does not apply to --udp")
    elif args.flush_interval is not None:
        parser.error("--flush-interval applies only to --udp")
    if args.connections:
        for dest, flag in _EVENTS_ONLY:
            if getattr(args, dest) is not None:
                parser.error(f"{flag} does not apply to --connections")
        if args.format == "seed":
            parser.error("--format seed applies to events only, not to --connections")
    elif args.state:
        parser.error("--state applies only to --connections")
    if args.format == "seed" and set(args.events or ("close",)) != {"close"}:
        parser.error("--format seed shows close events only: use line or json with --events")
    check_tracer_arguments(parser, args)


class _Failure(Exception):
    """A mode could not do its work: the message says why (exit status 1)."""


def _quiet_broken_pipe() -> None:
    """stdout's reader went away: make the interpreter's final flush a no-op."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _run_exporter(argv: Sequence[str]) -> int:
    """``tcpevent exporter ARGS``: the exporter parses ``ARGS`` itself."""
    try:
        from tcpevent import exporter
    except ModuleNotFoundError as exc:
        if exc.name != "prometheus_client":
            raise
        print(
            "tcpevent exporter: needs prometheus_client: pip install 'tcpevent[prometheus]'",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return exporter.main(argv)


def _run_ship(argv: Sequence[str]) -> int:
    """``tcpevent ship ARGS``: the shipper parses ``ARGS`` itself."""
    from tcpevent.ship import command as ship

    return ship.main(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tcpevent``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["exporter"]:
        return _run_exporter(argv[1:])
    if argv[:1] == ["ship"]:
        return _run_ship(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_mode(parser, args)
    mode = select_mode(args)
    try:
        return MODES[mode](args)
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_OK
    except (TracerError, UsageError, _Failure) as exc:
        what = "cannot list connections: " if mode == "connections" else ""
        print(f"tcpevent: {what}{exc}", file=sys.stderr)
        return exit_status(exc)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
