"""What the ``tcpevent`` command, ``tcpevent exporter`` and ``tcpevent ship``
share: exit statuses, argument types, the tracer's options and how it is opened, and
stopping on SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tcpevent._core import DEFAULT_QUEUE_SIZE, DEFAULT_RETRANSMIT_INTERVAL_US, MAX_QUEUE_SIZE
from tcpevent._options import MAX_PID, MAX_PORT
from tcpevent.containers import find_container
from tcpevent.errors import TracerPermissionError
from tcpevent.tracer import Tracer

__all__ = [
    "EXIT_FAILURE",
    "EXIT_NOPERM",
    "EXIT_OK",
    "EXIT_USAGE",
    "RunBudget",
    "Stop",
    "UsageError",
    "add_tracer_arguments",
    "argument_type",
    "bounded_int",
    "construct_tracer",
    "container_cgroups",
    "exit_status",
    "open_tracer",
    "positive_seconds",
    "signals_stop",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOPERM = 77  # sysexits.h EX_NOPERM


class UsageError(Exception):
    """An argument argparse could not check (a path that is not a cgroup...): exit status 2."""


def exit_status(exc: Exception) -> int:
    """The exit status of a run that ``exc`` ended: 77 (``EX_NOPERM``) when
    privileges are missing, 2 for a bad argument, else 1."""
    if isinstance(exc, UsageError):
        return EXIT_USAGE
    return EXIT_NOPERM if isinstance(exc, TracerPermissionError) else EXIT_FAILURE


_T = TypeVar("_T")


def argument_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse type of a parser that raises ``ValueError``: its message
    becomes argparse's (``error: argument --x: <message>``, exit status 2)."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = getattr(parse, "__name__", convert.__name__)
    return convert


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def bounded_int(name: str, low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a decimal integer in ``low..high``."""

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


def add_tracer_arguments(parser: argparse.ArgumentParser) -> None:
    """The filters and the tracer's options, as both commands take them."""
    filters = parser.add_argument_group("filters (combined with AND)")
    filters.add_argument(
        "--pid",
        "-p",
        action="append",
        type=bounded_int("pid", 1, MAX_PID),
        metavar="PID",
        help="only connections owned by this process (repeatable)",
    )
    filters.add_argument(
        "--port",
        "-P",
        action="append",
        type=bounded_int("port", 1, MAX_PORT),
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
    filters.add_argument(
        "--cgroup",
        action="append",
        metavar="PATH",
        help="only sockets made in this cgroup v2 (a path under the cgroup v2 mount, or "
        "relative to it; repeatable)",
    )
    filters.add_argument(
        "--cgroup-subtree",
        action="store_true",
        help="with --cgroup: also the cgroups below it",
    )
    filters.add_argument(
        "--container",
        action="append",
        metavar="ID",
        help="only sockets made in this container (docker, podman, containerd, CRI-O): "
        "its id or a unique prefix of it, found among the cgroups of the running "
        "containers, with the cgroups below (repeatable; not with --cgroup)",
    )
    filters.add_argument(
        "--netns",
        action="append",
        metavar="NAME|PATH|INODE",
        help="only sockets of this network namespace: an `ip netns` name, a path such "
        "as /proc/PID/ns/net, or its inode number (repeatable)",
    )
    tuning = parser.add_argument_group("tracer")
    tuning.add_argument(
        "--queue-size",
        type=bounded_int("queue size", 1, MAX_QUEUE_SIZE),
        metavar="N",
        help="events buffered in user space (default: %(default)s)",
        default=DEFAULT_QUEUE_SIZE,
    )
    tuning.add_argument(
        "--no-accept-hooks",
        dest="accept_hooks",
        action="store_false",
        help="never the accept() syscall hooks (by default only for accept events, or "
        "without the release hook): no cost on other processes' system calls; without "
        "the release hook either, a passive connection reset by its peer before its "
        "process closed it has no owner",
    )


def check_tracer_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Options of add_tracer_arguments() that do not go together (exit status 2)."""
    if args.cgroup and args.container:
        parser.error("--cgroup and --container cannot be combined: a socket is in one cgroup")
    if args.cgroup_subtree and not args.cgroup:
        parser.error("--cgroup-subtree needs --cgroup (--container always takes the cgroups below)")


def container_cgroups(ids: Iterable[str]) -> list[str]:
    """The cgroups of the containers ``--container`` names (full ids or
    unique prefixes); a UsageError when one names no container or several."""
    paths: list[str] = []
    for given in ids:
        try:
            paths += find_container(given).paths
        except (ValueError, LookupError) as exc:
            raise UsageError(str(exc)) from None
    return paths


def open_tracer(
    args: argparse.Namespace,
    events: Iterable[str],
    program: str | None = None,
    retransmit_interval: float | None = DEFAULT_RETRANSMIT_INTERVAL_US / 1e6,
) -> Tracer:
    """A Tracer with the options of add_tracer_arguments(); its warnings go to
    stderr, an argument it refuses is a UsageError."""
    cgroups, subtree = args.cgroup, args.cgroup_subtree
    if args.container:
        cgroups, subtree = container_cgroups(args.container), True
    return construct_tracer(
        lambda: Tracer(
            pids=args.pid,
            ports=args.port,
            family=args.family,
            queue_size=args.queue_size,
            program=program,
            accept_hooks=args.accept_hooks,
            events=events,
            cgroups=cgroups,
            cgroup_subtree=subtree,
            netns=args.netns,
            retransmit_interval=retransmit_interval,
        )
    )


def construct_tracer(make: Callable[[], _T]) -> _T:
    """``make()`` (a Tracer's or UdpTracer's constructor) as the commands
    open a tracer: an argument it refuses (ValueError, TypeError: a --cgroup
    or --netns that is not one) is a UsageError, and the RuntimeWarnings it
    gives (what it could not do) go to stderr once it is open."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        try:
            tracer = make()
        except (ValueError, TypeError) as exc:
            raise UsageError(str(exc)) from None
    for warning in caught:
        print(f"{warning.message}", file=sys.stderr)
    return tracer


class RunBudget:
    """What ``--count`` and ``--duration`` leave of a run: how many events
    (or reports) may still be printed, and until when. Started when the
    tracer is open, so that --duration is the time spent tracing."""

    def __init__(self, count: int | None, duration: float | None) -> None:
        self.left = count  # None: no --count
        self.deadline = None if duration is None else time.monotonic() + duration

    def __bool__(self) -> bool:
        """Whether --count allows more."""
        return self.left is None or self.left > 0

    def timeout(self, interval: float) -> float:
        """How long the next wait may be: ``interval``, or what is left of
        --duration when that is less (0 or below: the time is up)."""
        if self.deadline is None:
            return interval
        return min(interval, self.deadline - time.monotonic())

    def want(self, most: int) -> int:
        """How many to ask for: ``most``, or fewer when --count leaves fewer."""
        return most if self.left is None else min(most, self.left)

    def took(self, n: int) -> None:
        """``n`` were printed."""
        if self.left is not None:
            self.left -= n


class Stop:
    """Set by SIGINT/SIGTERM: a main loop ends at its next check."""

    def __init__(self) -> None:
        self.signum = 0

    def __bool__(self) -> bool:
        return self.signum != 0

    def handler(self, signum: int, frame: types.FrameType | None) -> None:
        self.signum = signum


@contextlib.contextmanager
def signals_stop(stop: Stop) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` while in the block."""
    previous = {sig: signal.signal(sig, stop.handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
