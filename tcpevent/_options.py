"""Validation of :class:`tcpevent.Tracer`'s arguments, before anything loads."""

from __future__ import annotations

import errno
import math
import operator
import os
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Union

from tcpevent._core import (
    DEFAULT_RETRANSMIT_INTERVAL_US,
    MAX_FILTER,
    MAX_QUEUE_SIZE,
    MAX_RING_SIZE,
    MAX_SOCKETS,
)
from tcpevent._enums import EVENT_BITS
from tcpevent.cgroups import cgroup_id_of
from tcpevent.errors import InvalidProgramError, ProgramNotFoundError
from tcpevent.family import FAMILIES, FAMILY_BY_NAME
from tcpevent.netns import netns_inode

__all__ = [
    "EVENT_KINDS",
    "MAX_PID",
    "MAX_PORT",
    "FamilyArg",
    "Options",
    "parse_events",
    "parse_family",
    "parse_options",
]

#: The ranges of a pid and of a port filter (a u32 and a non-zero u16).
MAX_PID = 2**32 - 1
MAX_PORT = 2**16 - 1
MAX_INTERVAL_MS = 2**32 - 1

#: What ``family=`` accepts.
FamilyArg = Union[None, int, str, socket.AddressFamily]


@dataclass(frozen=True)
class Options:
    """Validated options, ready for ``struct tcpevent_options``."""

    pids: tuple[int, ...]
    ports: tuple[int, ...]
    family: int
    queue_size: int
    ring_size: int
    max_sockets: int
    snapshot_interval_ms: int
    program: str | None
    accept_hooks: bool = True
    events: frozenset[str] = frozenset({"close"})
    cgroups: tuple[int, ...] = ()
    cgroup_subtree: bool = False
    netns: tuple[int, ...] = ()
    retransmit_interval_us: int = DEFAULT_RETRANSMIT_INTERVAL_US


def _int(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not bool")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int, not {type(value).__name__}") from None


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def _bounded(name: str, value: object, low: int, high: int) -> int:
    number = _int(name, value)
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {number}")
    return number


def _id_list(name: str, values: object, low: int, high: int, what: str) -> tuple[int, ...]:
    if values is None:
        return ()
    if isinstance(values, (str, bytes, bytearray)) or not (
        isinstance(values, Iterable) or hasattr(values, "__index__")
    ):
        raise TypeError(
            f"{name} must be an iterable of ints (e.g. [{low + 1233}]) or None, "
            f"not {type(values).__name__}"
        )
    items: Iterable[object] = (values,) if hasattr(values, "__index__") else values  # type: ignore[assignment]
    result = sorted({_bounded(f"{what} in {name}", item, low, high) for item in items})
    if not result:
        raise ValueError(f"{name} is empty: pass None to trace every {what}")
    if len(result) > MAX_FILTER:
        raise ValueError(f"{name} has {len(result)} {what}s; at most {MAX_FILTER} can be filtered")
    return tuple(result)


def parse_family(family: FamilyArg) -> int:
    """``None``/0 (both), ``AF_INET``/2/``"ipv4"`` or ``AF_INET6``/10/``"ipv6"``."""
    if family is None:
        return 0
    if isinstance(family, str):
        found = FAMILY_BY_NAME.get(family.strip().lower())
        if found is None:
            raise ValueError(
                f"family must be None, socket.AF_INET, socket.AF_INET6, 'ipv4' or 'ipv6', "
                f"not {family!r}"
            )
        return int(found)
    number = _int("family", family)
    if number and number not in FAMILIES:
        raise ValueError(
            f"family must be None, socket.AF_INET ({int(socket.AF_INET)}) or "
            f"socket.AF_INET6 ({int(socket.AF_INET6)}), not {number}"
        )
    return number


def _ring_size(value: object) -> int:
    size = _int("ring_size", value)
    low = os.sysconf("SC_PAGE_SIZE")
    if size < low or size > MAX_RING_SIZE or size & (size - 1):
        raise ValueError(
            f"ring_size must be a power of two between {low} and {MAX_RING_SIZE} bytes, not {size}"
        )
    return size


def _interval_ms(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"snapshot_interval must be a number of seconds, not {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"snapshot_interval must be > 0 seconds (or None), not {value!r}")
    ms = max(1, math.ceil(value * 1000))
    if ms > MAX_INTERVAL_MS:
        raise ValueError(f"snapshot_interval must be at most {MAX_INTERVAL_MS // 1000} s")
    return ms


def _program(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError(f"program must be a path (str or os.PathLike), not {type(value).__name__}")
    path = os.fsdecode(value)
    if not path:
        raise ValueError("program is empty: pass None for the built-in program")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ProgramNotFoundError(
            errno.ENOENT, f"BPF program file {path} does not exist", path
        ) from None
    except OSError as exc:
        raise InvalidProgramError(
            exc.errno or errno.EINVAL, f"cannot use BPF program file {path}: {exc.strerror}", path
        ) from None
    if not stat.S_ISREG(mode):
        raise InvalidProgramError(
            errno.EINVAL, f"BPF program path {path} is not a regular file", path
        )
    return path


#: The event kinds ``events=`` may ask for (snapshots have their own option):
#: those of ``enum tcpevent_kind`` with a ``TCPEVENT_EVENT_*`` bit.
EVENT_KINDS: tuple[str, ...] = tuple(EVENT_BITS)


def _retransmit_interval_us(value: object) -> int:
    """Seconds between two retransmit events of a connection (None or 0: no
    limit), as whole microseconds."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"retransmit_interval must be a number of seconds or None, not {type(value).__name__}"
        )
    if not math.isfinite(value) or not 0 <= value <= MAX_INTERVAL_MS / 1e6:
        raise ValueError(
            f"retransmit_interval must be between 0 and {MAX_INTERVAL_MS / 1e6:.0f} seconds, "
            f"not {value}"
        )
    return round(value * 1e6)


def parse_events(value: object) -> frozenset[str]:
    """``events=``: one kind of :data:`EVENT_KINDS` or an iterable of them."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise TypeError(f"events must be an iterable of {EVENT_KINDS}, not {type(value).__name__}")
    kinds = set()
    for item in value:
        if item not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {item!r}: events are {', '.join(EVENT_KINDS)}")
        kinds.add(item)
    if not kinds:
        raise ValueError(f"events is empty: ask for at least one of {', '.join(EVENT_KINDS)}")
    return frozenset(kinds)


def _listed(name: str, values: object) -> list[object]:
    """One value or an iterable of them, as a list (None: empty)."""
    if values is None:
        return []
    if isinstance(values, (str, bytes, os.PathLike, int)):
        return [values]
    if not isinstance(values, Iterable):
        raise TypeError(
            f"{name} must be one value or an iterable of them, not {type(values).__name__}"
        )
    return list(values)


def _filter_set(name: str, items: list[int]) -> tuple[int, ...]:
    result = tuple(sorted(set(items)))
    if len(result) > MAX_FILTER:
        raise ValueError(f"{name} has {len(result)} entries; at most {MAX_FILTER} can be filtered")
    return result


def _cgroups(values: object) -> tuple[int, ...]:
    """cgroup v2 ids (ints) or cgroup paths, as ids."""
    ids = []
    for item in _listed("cgroups", values):
        if isinstance(item, bool):
            raise TypeError("a cgroup must be an id or a path, not bool")
        if isinstance(item, int):
            ids.append(_bounded("cgroup id", item, 1, 2**64 - 1))
        elif isinstance(item, (str, os.PathLike)):
            ids.append(cgroup_id_of(item))
        else:
            raise TypeError(f"a cgroup must be an id or a path, not {type(item).__name__}")
    if values is not None and not ids:
        raise ValueError("cgroups is empty: pass None to trace every cgroup")
    return _filter_set("cgroups", ids)


def _netns(values: object) -> tuple[int, ...]:
    """Network namespaces as inode numbers, paths or ``ip netns`` names."""
    inodes = [netns_inode(item) for item in _listed("netns", values)]  # type: ignore[arg-type]
    if values is not None and not inodes:
        raise ValueError("netns is empty: pass None to trace every network namespace")
    return _filter_set("netns", inodes)


def parse_options(
    *,
    pids: object,
    ports: object,
    family: FamilyArg,
    queue_size: object,
    ring_size: object,
    max_sockets: object,
    snapshot_interval: object,
    program: object,
    accept_hooks: object = True,
    events: object = ("close",),
    cgroups: object = None,
    cgroup_subtree: object = False,
    netns: object = None,
    retransmit_interval: object = DEFAULT_RETRANSMIT_INTERVAL_US / 1e6,
) -> Options:
    """Check every argument; raise ``TypeError``/``ValueError`` naming the culprit."""
    options = Options(
        pids=_id_list("pids", pids, 1, MAX_PID, "pid"),
        ports=_id_list("ports", ports, 1, MAX_PORT, "port"),
        family=parse_family(family),
        queue_size=_bounded("queue_size", queue_size, 1, MAX_QUEUE_SIZE),
        ring_size=_ring_size(ring_size),
        max_sockets=_bounded("max_sockets", max_sockets, 1, MAX_SOCKETS),
        snapshot_interval_ms=_interval_ms(snapshot_interval),
        program=_program(program),
        accept_hooks=_bool("accept_hooks", accept_hooks),
        events=parse_events(events),
        cgroups=_cgroups(cgroups),
        cgroup_subtree=_bool("cgroup_subtree", cgroup_subtree),
        netns=_netns(netns),
        retransmit_interval_us=_retransmit_interval_us(retransmit_interval),
    )
    if "accept" in options.events and not options.accept_hooks:
        raise ValueError("accept events come from the accept() hooks: not with accept_hooks=False")
    if options.cgroup_subtree and not options.cgroups:
        raise ValueError("cgroup_subtree=True needs cgroups= to say below which cgroups")
    return options
