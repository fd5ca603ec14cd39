"""One UDP flow report: :class:`UdpFlow`, and the tracer's counters :class:`UdpStats`."""

from __future__ import annotations

import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from tcpevent._udp_core import REPORT_FIELDS, REPORT_FORMAT, REPORT_SIZE, STATS_FIELDS, ffi, lib
from tcpevent.containers import CgroupNames
from tcpevent.event import Endpoints
from tcpevent.family import family_name, family_of

__all__ = ["UdpFlow", "UdpStats", "flows_from_buffer"]

_NS = 1_000_000_000
_FINAL = int(lib.UDPEVENT_REPORT_FINAL)
_OWNER = int(lib.UDPEVENT_REPORT_OWNER)
_IDLE = int(lib.UDPEVENT_REPORT_IDLE)


@dataclass(frozen=True)
class UdpFlow(Endpoints, CgroupNames):
    """One report of a UDP flow: a socket and one remote endpoint.

    A connected socket has one flow; an unconnected one (a DNS server, a
    client using ``sendto``) one per peer. Each report carries what
    happened since the flow's previous report (:attr:`interval_ns`): sums
    over a flow's reports are exact. The last report of a flow whose socket
    was released has :attr:`final` set. Its fields are those of ``struct
    udpevent_report`` (csrc/include/udpevent.h), checked at import.
    """

    __slots__ = (
        "cgroup_id",
        "cookie",
        "daddr",
        "dport",
        "family",
        "flags",
        "interval_ns",
        "netns",
        "pid",
        "rx_bytes",
        "rx_datagrams",
        "rx_drops",
        "saddr",
        "sport",
        "start_ns",
        "task",
        "time_ns",
        "tx_bytes",
        "tx_datagrams",
        "uid",
    )

    time_ns: int
    """Wall clock of the report, ns since the Unix epoch."""
    start_ns: int
    """Wall clock of the flow's first datagram."""
    interval_ns: int
    """What the counts cover: since the flow's previous report, or its start."""
    rx_bytes: int
    """Payload bytes that reached the socket from the peer in the interval."""
    tx_bytes: int
    """Payload bytes the socket sent to the peer."""
    cgroup_id: int
    """The socket's cgroup v2 id (see :attr:`cgroup`, :attr:`container_id`)."""
    cookie: int
    """The socket's cookie: the same for all flows of one socket, never reused."""
    rx_datagrams: int
    """Datagrams that reached the socket (its filters passed), :attr:`rx_drops` included."""
    tx_datagrams: int
    """Datagrams sent (each GSO segment counts)."""
    rx_drops: int
    """Of :attr:`rx_datagrams`, those its receive queue refused (buffer full)."""
    pid: int
    """Owner (tgid) from the socket's creation or first send; 0 if unknown."""
    uid: int
    netns: int
    """Inode of the socket's network namespace."""
    family: socket.AddressFamily
    """The socket's: an IPv4 peer of an AF_INET6 socket is ``::ffff:a.b.c.d``."""
    sport: int
    """Local port."""
    dport: int
    """Remote port."""
    flags: int
    task: str
    """The owner's command name."""
    saddr: str
    """Local address (of the flow's first datagram)."""
    daddr: str
    """Remote address."""

    @property
    def final(self) -> bool:
        """The socket was released: this is the flow's last report."""
        return bool(self.flags & _FINAL)

    @property
    def owner_known(self) -> bool:
        """``pid``, ``uid`` and ``task`` are the owner's."""
        return bool(self.flags & _OWNER)

    @property
    def retired(self) -> bool:
        """Idle for several export intervals, the flow left the table; its
        socket lives on, and a later datagram starts a new flow."""
        return bool(self.flags & _IDLE)

    @property
    def delivered_datagrams(self) -> int:
        """Datagrams queued for the application: received minus dropped."""
        return self.rx_datagrams - self.rx_drops

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.time_ns / _NS, tz=timezone.utc)

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ns / _NS, tz=timezone.utc)

    @property
    def interval(self) -> float:
        """:attr:`interval_ns` in seconds."""
        return self.interval_ns / _NS

    def to_dict(self, resolve: bool = False) -> dict[str, Any]:
        """Every field (``family`` by name) and ``final``; ``resolve=True``
        adds ``cgroup``, ``container_id`` and ``pod_uid``."""
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        out["family"] = family_name(self.family)
        out["final"] = self.final
        out["local"], out["peer"] = self.local, self.peer
        if resolve:
            out.update(self.cgroup_names())
        return out


if set(UdpFlow.__slots__) != set(REPORT_FIELDS):  # pragma: no cover - a coding error
    raise ImportError(
        "tcpevent: UdpFlow's fields differ from struct udpevent_report's: "
        f"missing {sorted(set(REPORT_FIELDS) - set(UdpFlow.__slots__))}, "
        f"extra {sorted(set(UdpFlow.__slots__) - set(REPORT_FIELDS))}"
    )

_TEXT = {i for i, name in enumerate(REPORT_FIELDS) if name in ("task", "saddr", "daddr")}
_FAMILY = REPORT_FIELDS.index("family")


def _value(i: int, v: Any) -> Any:
    if i in _TEXT:
        return v.partition(b"\0")[0].decode("utf-8", "surrogateescape")
    if i == _FAMILY:
        return family_of(v)
    return v


def flows_from_buffer(buf: Any, count: int) -> list[UdpFlow]:
    """Convert the first ``count`` reports of a cffi ``struct udpevent_report[]``."""
    if count <= 0:
        return []
    rows = REPORT_FORMAT.iter_unpack(ffi.buffer(buf, count * REPORT_SIZE))
    return [UdpFlow(**{REPORT_FIELDS[i]: _value(i, v) for i, v in enumerate(row)}) for row in rows]


@dataclass(frozen=True)
class UdpStats:
    """A snapshot of a UDP tracer's counters (``struct udpevent_stats``):
    every loss is one of them."""

    reports: int
    """Flow reports made."""
    delivered: int
    """Dequeued."""
    dropped_queue: int
    """Lost: the queue was full."""
    filtered: int
    """Left out by the user-space filters."""
    queued: int
    """Waiting in the queue now."""
    flows: int
    """Flows tracked now."""
    untracked: int
    """Datagrams of flows the full flow table could not take (``max_flows``)."""
    no_storage: int
    """Datagrams of sockets the kernel gave no storage (out of memory)."""
    releases_lost: int
    """Socket releases not seen (ring buffer full): their flows end as retired."""
    scans: int
    """Reads of the flow table."""

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_c(cls, st: Any) -> UdpStats:
        return cls(**{name: int(getattr(st, name)) for name in STATS_FIELDS})


if set(UdpStats.__dataclass_fields__) != set(STATS_FIELDS):  # pragma: no cover
    raise ImportError("tcpevent: UdpStats' fields differ from struct udpevent_stats'")
