"""The ``tcpevent`` command (also ``python -m tcpevent``).

Modes (one per run; each is a function ``(args) -> exit status`` in
:data:`MODES`, so that a new mode is one option and one function):

- ``events`` (default): print one block per closed TCP connection, in the
  original example's format, or one JSON object per line with ``--json``;
- ``connections`` (``--connections``): print the live connections now, with
  their ``tcp_info``, as a table (like ``ss -tip``) or JSON lines; no BPF;
- ``install-lib``: copy the packaged ``libtcpEvent.so`` for C clients.

Exit status: 0 on success, including the end by SIGINT/SIGTERM, ``--count``,
``--duration`` or a closed output pipe; 1 when the tracer cannot start (the
core's reason on stderr); 2 for bad arguments; 77 (``EX_NOPERM``) when the
privileges to load BPF are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Callable, TextIO

from tcpevent import abi
from tcpevent._core import DEFAULT_QUEUE_SIZE
from tcpevent.connections import Connection, connections, parse_states
from tcpevent.errors import TracerError, TracerPermissionError
from tcpevent.event import TcpEvent, TcpState
from tcpevent.tracer import Tracer

__all__ = [
    "DEFAULT_LIB_DIR",
    "MODES",
    "build_parser",
    "format_block",
    "format_connection_json",
    "format_connections_table",
    "format_json",
    "main",
]

#: Where the original examples dlopen() the library from.
DEFAULT_LIB_DIR = "/opt/RealTimeKql/lib"
LIB_NAME = "libtcpEvent.so"

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOPERM = 77  # sysexits.h EX_NOPERM

#: Longest wait between two checks for a signal or the end of --duration.
POLL_INTERVAL = 0.1
BATCH = 256

_BLOCK = (
    "---\n"
    "PID: {pid}\n"
    "UID: {uid}\n"
    "Bytes received: {rx}\n"
    "Bytes sent: {tx}\n"
    "Segments out: {so}\n"
    "Segments in: {si}\n"
    "Command: {task}\n"
    "Source: {saddr}:{sport}\n"
    "Destination: {daddr}:{dport}\n"
    "Event time: {time}\n"
    "---\n"
)


def format_block(ev: TcpEvent) -> str:
    """One event in the original example's format (``---`` before and after)."""
    return _BLOCK.format(
        pid=ev.pid,
        uid=ev.uid,
        rx=ev.rx_bytes,
        tx=ev.tx_bytes,
        so=ev.segs_out,
        si=ev.segs_in,
        task=ev.task,
        saddr=ev.saddr,
        sport=ev.sport,
        daddr=ev.daddr,
        dport=ev.dport,
        time=ev.time_ns,
    )


def format_json(ev: TcpEvent) -> str:
    """One event as a compact JSON object and a newline (see ``TcpEvent.to_dict``)."""
    return json.dumps(ev.to_dict(), separators=(",", ":")) + "\n"


# ---- the connections table ------------------------------------------------------

#: ss's short state names.
_SS_STATES = {
    TcpState.ESTABLISHED: "ESTAB",
    TcpState.SYN_SENT: "SYN-SENT",
    TcpState.SYN_RECV: "SYN-RECV",
    TcpState.FIN_WAIT1: "FIN-WAIT-1",
    TcpState.FIN_WAIT2: "FIN-WAIT-2",
    TcpState.TIME_WAIT: "TIME-WAIT",
    TcpState.CLOSE: "UNCONN",
    TcpState.CLOSE_WAIT: "CLOSE-WAIT",
    TcpState.LAST_ACK: "LAST-ACK",
    TcpState.LISTEN: "LISTEN",
    TcpState.CLOSING: "CLOSING",
    TcpState.NEW_SYN_RECV: "NEW-SYN-RECV",
    TcpState.BOUND_INACTIVE: "BOUND-INACTIVE",
}
#: (title, right-aligned?) of each column.
_COLUMNS = (
    ("State", False),
    ("Local", False),
    ("Peer", False),
    ("Process", False),
    ("RTT/var ms", True),
    ("Cwnd", True),
    ("Sent", True),
    ("Acked", True),
    ("Received", True),
    ("Retrans", True),
    ("Cong", False),
)
_NONE = "-"


def _size(n: int | None) -> str:
    """Bytes for a person: exact below 10000, else 1024-based with one decimal."""
    if n is None:
        return _NONE
    if n < 10000:
        return str(n)
    value = float(n)
    for unit in "KMGTP":
        value /= 1024
        if value < 1000 or unit == "P":
            break
    return f"{value:.1f}{unit}"


def _row(c: Connection) -> tuple[str, ...]:
    i = c.info
    process = f"{c.pid}/{c.task}" if c.pid else _NONE
    if i is None:
        rtt = cwnd = sent = acked = received = retrans = _NONE
    else:
        rtt = (
            _NONE
            if i.rtt_us is None or i.rttvar_us is None
            else f"{i.rtt_us / 1000:.3f}/{i.rttvar_us / 1000:.3f}"
        )
        cwnd = _NONE if i.snd_cwnd is None else str(i.snd_cwnd)
        sent, acked, received = _size(i.bytes_sent), _size(i.bytes_acked), _size(i.bytes_received)
        retrans = (
            _NONE
            if i.retrans_out is None or i.total_retrans is None
            else f"{i.retrans_out}/{i.total_retrans}"
        )
    return (
        _SS_STATES.get(c.state, c.state.name),
        c.local,
        c.peer,
        process,
        rtt,
        cwnd,
        sent,
        acked,
        received,
        retrans,
        c.cong or _NONE,
    )


def format_connections_table(conns: Sequence[Connection]) -> str:
    """The connections as a table for a person: a header line, one line each.

    Columns: state (``ss``'s names), local and peer ``addr:port`` (IPv6 in
    brackets), ``pid/command`` of the owner, smoothed RTT/variation in ms,
    congestion window (segments), bytes sent (retransmissions included),
    acknowledged and received (exact below 10000, else K/M/G, 1024-based),
    retransmitted segments unacknowledged/total, congestion control. ``-``
    where the kernel sent nothing.
    """
    rows = [tuple(title for title, _ in _COLUMNS), *(_row(c) for c in conns)]
    widths = [max(len(row[k]) for row in rows) for k in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, right) in zip(row, widths, _COLUMNS)
        ]
        lines.append("  ".join(cells).rstrip() + "\n")
    return "".join(lines)


def format_connection_json(c: Connection) -> str:
    """One connection as a compact JSON object and a newline (``Connection.to_dict``)."""
    return json.dumps(c.to_dict(), separators=(",", ":")) + "\n"


# ---- argument parsing --------------------------------------------------------


def _bounded_int(name: str, low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, not {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{name} must be between {low} and {high}, not {value}"
            )
        return value

    parse.__name__ = name
    return parse


def _state(text: str) -> str:
    try:
        parse_states(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``tcpevent``."""
    from tcpevent import __version__

    parser = argparse.ArgumentParser(
        prog="tcpevent",
        description=(
            "Trace TCP connections with eBPF: one event per closed connection, with its "
            "owner (pid, uid, command), endpoints, bytes and segments each way, and close time."
        ),
        epilog=(
            "Tracing needs root, or the capabilities CAP_BPF and CAP_PERFMON; "
            "--connections needs no privilege (but shows the owners only of the "
            "processes it may inspect). "
            "Exit status: 0 ok (also on SIGINT/SIGTERM), 1 the tracer could not start, "
            "2 bad arguments, 77 not privileged."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per line (flushed per line) instead of text blocks",
    )
    out.add_argument(
        "--count",
        "-n",
        type=_bounded_int("count", 1, 2**63 - 1),
        metavar="N",
        help="exit after N events",
    )
    out.add_argument(
        "--duration",
        "-d",
        type=_seconds,
        metavar="SECONDS",
        help="exit after this many seconds",
    )
    filters = parser.add_argument_group("filters (combined with AND)")
    filters.add_argument(
        "--pid",
        "-p",
        action="append",
        type=_bounded_int("pid", 1, 2**32 - 1),
        metavar="PID",
        help="only connections owned by this process (repeatable)",
    )
    filters.add_argument(
        "--port",
        "-P",
        action="append",
        type=_bounded_int("port", 1, 65535),
        metavar="PORT",
        help="only connections with this local or remote port (repeatable)",
    )
    family = filters.add_mutually_exclusive_group()
    family.add_argument(
        "-4", "--ipv4", dest="family", action="store_const", const="ipv4", help="only IPv4"
    )
    family.add_argument(
        "-6", "--ipv6", dest="family", action="store_const", const="ipv6", help="only IPv6"
    )
    tuning = parser.add_argument_group("tracer")
    tuning.add_argument(
        "--queue-size",
        type=_bounded_int("queue size", 1, 2**24),
        metavar="N",
        help="events buffered in user space (default: %(default)s)",
        default=DEFAULT_QUEUE_SIZE,
    )
    tuning.add_argument(
        "--no-accept-hooks",
        dest="accept_hooks",
        action="store_false",
        help="leave out the accept() syscall hooks: no cost on other processes' system "
        "calls, but a passive connection reset by its peer before its process closed "
        "it has no owner",
    )
    tuning.add_argument(
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
        "takes --pid, --port, -4/-6 and --state; needs no BPF",
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


class _Stop:
    """Set by SIGINT/SIGTERM: the main loop ends at its next check."""

    def __init__(self) -> None:
        self.signum = 0

    def __bool__(self) -> bool:
        return self.signum != 0

    def handler(self, signum: int, frame: types.FrameType | None) -> None:
        self.signum = signum


@contextlib.contextmanager
def _signals_stop(stop: _Stop) -> Iterator[None]:
    previous = {sig: signal.signal(sig, stop.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _open_tracer(args: argparse.Namespace) -> Tracer:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        tracer = Tracer(
            pids=args.pid,
            ports=args.port,
            family=args.family,
            queue_size=args.queue_size,
            program=args.program,
            accept_hooks=args.accept_hooks,
        )
    for warning in caught:
        print(f"{warning.message}", file=sys.stderr)
    return tracer


def _emit(out: TextIO, events: list[TcpEvent], json_lines: bool) -> None:
    if json_lines:
        for ev in events:
            out.write(format_json(ev))
            out.flush()
    else:
        out.write("".join(format_block(ev) for ev in events))
        out.flush()


def run_events(args: argparse.Namespace) -> int:
    """Print events until a signal, ``--count`` or ``--duration``."""
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="backslashreplace")  # odd bytes in a command name
    stop = _Stop()
    with _signals_stop(stop):
        try:
            tracer = _open_tracer(args)
        except TracerPermissionError as exc:
            print(f"tcpevent: {exc}", file=sys.stderr)
            return EXIT_NOPERM
        except TracerError as exc:
            print(f"tcpevent: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        with tracer:
            left = args.count
            deadline = None if args.duration is None else time.monotonic() + args.duration
            while not stop and (left is None or left > 0):
                timeout = POLL_INTERVAL
                if deadline is not None:
                    timeout = min(timeout, deadline - time.monotonic())
                    if timeout <= 0:
                        break
                want = BATCH if left is None else min(BATCH, left)
                events = tracer.dequeue_batch(want, timeout=timeout)
                _emit(out, events, args.json)
                if left is not None:
                    left -= len(events)
            if stop and (left is None or left > 0):
                # Print what had been queued when the signal came, no more.
                queued = tracer.stats.queued
                while queued > 0 and (left is None or left > 0):
                    want = min(BATCH, queued) if left is None else min(BATCH, queued, left)
                    events = tracer.dequeue_batch(want, timeout=0)
                    if not events:
                        break
                    _emit(out, events, args.json)
                    queued -= len(events)
                    if left is not None:
                        left -= len(events)
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
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="backslashreplace")
    try:
        conns = connections(
            family=args.family,
            states=args.state,
            pid=args.pid,
            ports=args.port,
        )
    except TracerPermissionError as exc:
        print(f"tcpevent: {exc}", file=sys.stderr)
        return EXIT_NOPERM
    except TracerError as exc:
        print(f"tcpevent: cannot list connections: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        out.write("".join(format_connection_json(c) for c in conns))
    else:
        out.write(format_connections_table(conns))
    out.flush()
    return EXIT_OK


# ---- the install-lib mode -------------------------------------------------------


def install_lib(directory: str) -> Path:
    """Copy the packaged library into ``directory`` (created), atomically.

    The copy replaces an existing file by rename, so programs that have the
    old one mapped keep running. Returns the installed path.
    """
    source = abi.library_path()
    if not source.is_file():
        raise FileNotFoundError(f"{source} is missing: the package was built without it")
    target_dir = Path(directory)
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / LIB_NAME
    fd, tmp = tempfile.mkstemp(prefix=f".{LIB_NAME}.", dir=target_dir)
    try:
        with os.fdopen(fd, "wb") as dst, source.open("rb") as src:
            shutil.copyfileobj(src, dst)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target


def run_install_lib(args: argparse.Namespace) -> int:
    """``--install-lib [DIR]``: print where the library went."""
    try:
        target = install_lib(args.install_lib)
    except OSError as exc:
        print(
            f"tcpevent: cannot install {LIB_NAME} into {args.install_lib}: {exc}", file=sys.stderr
        )
        return EXIT_FAILURE
    print(target)
    return EXIT_OK


#: Every mode of the command, by name.
MODES: dict[str, Callable[[argparse.Namespace], int]] = {
    "events": run_events,
    "connections": run_connections,
    "install-lib": run_install_lib,
}

#: Options that only make sense in the events mode (not with --connections).
_EVENTS_ONLY = (("count", "--count"), ("duration", "--duration"), ("program", "--program"))


def select_mode(args: argparse.Namespace) -> str:
    """Which mode the arguments ask for."""
    if args.install_lib is not None:
        return "install-lib"
    if args.connections:
        return "connections"
    return "events"


def _check_mode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options that do not go together: a usage error (exit status 2)."""
    if args.connections and args.install_lib is not None:
        parser.error("--connections and --install-lib are separate modes")
    if args.connections:
        for dest, flag in _EVENTS_ONLY:
            if getattr(args, dest) is not None:
                parser.error(f"{flag} does not apply to --connections")
    elif args.state:
        parser.error("--state applies only to --connections")


def _quiet_broken_pipe() -> None:
    """stdout's reader went away: make the interpreter's final flush a no-op."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tcpevent``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_mode(parser, args)
    try:
        return MODES[select_mode(args)](args)
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
