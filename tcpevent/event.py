"""One TCP connection event: :class:`TcpEvent`, and :class:`TcpState`."""

from __future__ import annotations

import enum
import errno
import socket
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Literal

from tcpevent import abi
from tcpevent.containers import CgroupNames

__all__ = [
    "FAMILIES",
    "FAMILY_NAMES",
    "Direction",
    "Endpoints",
    "EventKind",
    "TcpEvent",
    "TcpState",
    "endpoint",
    "family_name",
    "family_of",
]

#: Why an event was emitted: the connection closed; a periodic sample of a
#: live connection (``Tracer(snapshot_interval=...)``); the active side's
#: handshake completed (``connect``), or accept() handed the passive side out
#: (``accept``) (``Tracer(events=...)``).
EventKind = Literal["close", "snapshot", "connect", "accept"]
#: Which side of the connection: the one that called connect(), the one
#: accept() hands out, or not known (e.g. a snapshot, a custom program).
Direction = Literal["outbound", "inbound", "unknown"]

_NS = 1_000_000_000
_ABI_TEXT = 128  # char task[128], SADDR[128], DADDR[128]


class TcpState(enum.IntEnum):
    """The kernel's TCP states (``include/net/tcp_states.h``).

    ``UNKNOWN`` (0) is ours: the state was not recorded (e.g. an event built
    from the original ABI struct, which has no state). A value the kernel may
    add later becomes a pseudo-member named ``STATE_<n>``.
    """

    UNKNOWN = 0
    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT1 = 4
    FIN_WAIT2 = 5
    TIME_WAIT = 6
    CLOSE = 7
    CLOSE_WAIT = 8
    LAST_ACK = 9
    LISTEN = 10
    CLOSING = 11
    NEW_SYN_RECV = 12
    BOUND_INACTIVE = 13

    @classmethod
    def _missing_(cls, value: object) -> TcpState | None:
        if not isinstance(value, int) or not 0 <= value <= 255:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"STATE_{value}"
        member._value_ = value
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]

    @property
    def ss_name(self) -> str:
        """The name ``ss`` shows (``"ESTAB"``, ``"FIN-WAIT-1"``, ``"UNCONN"``...)."""
        return _SS_NAMES.get(self, self.name)

    @classmethod
    def parse(cls, text: str) -> TcpState:
        """The state named ``text``: the kernel's name or ``ss``'s, any case,
        ``-`` or ``_`` (``"established"``, ``"ESTAB"``, ``"fin-wait-1"``).
        Raises ``ValueError`` for another name."""
        state = _BY_NAME.get(_name_key(text))
        if state is None:
            names = ", ".join(s.name for s in cls if s is not cls.UNKNOWN)
            raise ValueError(f"unknown TCP state {text!r}: one of {names}")
        return state


#: ``ss``'s name of each state, where it differs from the kernel's.
_SS_NAMES: dict[TcpState, str] = {
    TcpState.ESTABLISHED: "ESTAB",
    TcpState.SYN_SENT: "SYN-SENT",
    TcpState.SYN_RECV: "SYN-RECV",
    TcpState.FIN_WAIT1: "FIN-WAIT-1",
    TcpState.FIN_WAIT2: "FIN-WAIT-2",
    TcpState.TIME_WAIT: "TIME-WAIT",
    TcpState.CLOSE: "UNCONN",
    TcpState.CLOSE_WAIT: "CLOSE-WAIT",
    TcpState.LAST_ACK: "LAST-ACK",
    TcpState.NEW_SYN_RECV: "NEW-SYN-RECV",
    TcpState.BOUND_INACTIVE: "BOUND-INACTIVE",
}


def _name_key(text: str) -> str:
    return text.strip().upper().replace("-", "").replace("_", "")


_BY_NAME: dict[str, TcpState] = {
    **{_name_key(s.name): s for s in TcpState if s is not TcpState.UNKNOWN},
    **{_name_key(name): s for s, name in _SS_NAMES.items()},
}

#: The address families of events and connections, by number.
FAMILIES: dict[int, socket.AddressFamily] = {
    int(socket.AF_INET): socket.AF_INET,
    int(socket.AF_INET6): socket.AF_INET6,
}
#: Their names in dicts and JSON.
FAMILY_NAMES: dict[int, str] = {int(socket.AF_INET): "AF_INET", int(socket.AF_INET6): "AF_INET6"}


def family_of(value: int) -> socket.AddressFamily:
    """The :class:`socket.AddressFamily` of a number; one Python does not
    know stays a plain int (0: no event)."""
    try:
        return FAMILIES.get(value) or socket.AddressFamily(value)
    except ValueError:
        return value  # type: ignore[return-value]


def endpoint(family: int, addr: str, port: int) -> str:
    """``"addr:port"``, an IPv6 address in brackets (``"[::1]:8080"``)."""
    return f"[{addr}]:{port}" if family == socket.AF_INET6 else f"{addr}:{port}"


def family_name(value: int) -> str:
    """``"AF_INET"``, ``"AF_INET6"``, or the number as text."""
    return FAMILY_NAMES.get(int(value)) or str(int(value))


def _text(raw: bytes) -> str:
    """A C string field: up to the first NUL, undecodable bytes kept."""
    return raw.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _c_string(text: str, size: int) -> bytes:
    """``text`` for a ``char[size]`` field, truncated to leave the NUL."""
    return text.encode("utf-8", "surrogateescape")[: size - 1]


class Endpoints:
    """``local`` and ``peer`` of a socket: ``"addr:port"``, an IPv6 address
    in brackets (``"[::1]:8080"``). For the dataclasses that have ``family``,
    ``saddr``/``sport`` (this end) and ``daddr``/``dport`` (the remote one)."""

    __slots__ = ()
    family: int
    saddr: str
    sport: int
    daddr: str
    dport: int

    @property
    def local(self) -> str:
        """``"addr:port"`` of this end."""
        return endpoint(self.family, self.saddr, self.sport)

    @property
    def peer(self) -> str:
        """``"addr:port"`` of the remote end."""
        return endpoint(self.family, self.daddr, self.dport)


@dataclass(frozen=True)
class TcpEvent(Endpoints, CgroupNames):
    """One TCP connection event, immutable.

    The first 13 fields are those of the original ``struct tcp_event_t``
    under Pythonic names; the others are recorded by this core only.
    Text fields are ``str``; a byte of a process name that is not UTF-8 is
    kept as a surrogate escape, so :meth:`to_abi` gives back the same bytes.
    """

    __slots__ = (
        "accept_wait_ns",
        "cgroup_id",
        "daddr",
        "direction",
        "dport",
        "error",
        "family",
        "handshake_ns",
        "kind",
        "lifetime_ns",
        "netns",
        "origin_pid",
        "origin_task",
        "origin_uid",
        "pid",
        "retrans",
        "rtt_us",
        "rx_bytes",
        "saddr",
        "segs_in",
        "segs_out",
        "sport",
        "state",
        "task",
        "time_ns",
        "tx_bytes",
        "uid",
    )

    time_ns: int
    """Wall-clock time of the event, ns since the Unix epoch (``EventTime``)."""
    pid: int
    """The owner (tgid): the process that ended the connection in process
    context (its close(), shutdown() or exit), or when none did (a reset, a
    timeout) the last one seen holding it (connect(), accept(), the release
    of a socket reset while open); 0 if unknown. The process that set it up
    is :attr:`origin_pid` (docs/attribution.md)."""
    uid: int
    """The owner's user id (``UserId``)."""
    rx_bytes: int
    """Bytes received: ``tcp_sock->bytes_received`` (``rx_b``)."""
    tx_bytes: int
    """Bytes sent and acknowledged: ``tcp_sock->bytes_acked`` (``tx_b``)."""
    segs_out: int
    """Data segments sent: ``tcp_sock->data_segs_out`` (``tcpi_segs_out``)."""
    segs_in: int
    """Data segments received: ``tcp_sock->data_segs_in`` (``tcpi_segs_in``)."""
    family: socket.AddressFamily
    """``socket.AF_INET`` or ``socket.AF_INET6``."""
    sport: int
    """Local port (``SPT``)."""
    dport: int
    """Remote port (``DPT``)."""
    task: str
    """The owner's command name (``comm``)."""
    saddr: str
    """Local address, ``inet_ntop`` text (``SADDR``)."""
    daddr: str
    """Remote address, ``inet_ntop`` text (``DADDR``)."""
    lifetime_ns: int
    """From the first sighting of the socket to this event; 0 if unknown."""
    rtt_us: int
    """Smoothed round-trip time in microseconds; 0 if unknown."""
    retrans: int
    """Total retransmitted segments."""
    state: TcpState
    """TCP state before the close (or the current one, for a snapshot)."""
    kind: EventKind
    """``"close"``, ``"snapshot"``, ``"connect"`` or ``"accept"``."""
    direction: Direction
    """``"outbound"`` (it called connect()), ``"inbound"`` (accept() hands it
    out) or ``"unknown"``."""
    error: int
    """The socket's pending error at a close, an ``errno`` value
    (``errno.ECONNREFUSED``, ``ETIMEDOUT``, ``ECONNRESET``...); 0 for an
    orderly close, and for other kinds. See :attr:`error_name`."""
    handshake_ns: int
    """SYN_SENT (or SYN_RECV) to ESTABLISHED, measured in the kernel; 0 when
    not measured (only with connect or accept events: ``Tracer(events=)``)."""
    accept_wait_ns: int
    """Of an ``accept`` event: ESTABLISHED to accept() returning it, the time
    it waited in the listen queue; else 0."""
    cgroup_id: int
    """The cgroup v2 id the socket was made in (an accepted socket: its
    listener's); 0 if unknown. It equals the inode number of that cgroup's
    directory."""
    netns: int
    """The inode number of the socket's network namespace (as
    ``readlink /proc/PID/ns/net`` shows); 0 if unknown."""
    origin_pid: int
    """The process that set the connection up (tgid): the one that called
    connect(), or for the passive side the one that called listen() on its
    listening socket; 0 if unknown (docs/attribution.md). :attr:`pid` is the
    one that ended it."""
    origin_uid: int
    """:attr:`origin_pid`'s user id."""
    origin_task: str
    """:attr:`origin_pid`'s command name."""

    @property
    def error_name(self) -> str | None:
        """:attr:`error` as its ``errno`` name (``"ECONNREFUSED"``); None for 0."""
        if not self.error:
            return None
        return errno.errorcode.get(self.error, str(self.error))

    @property
    def failed(self) -> bool:
        """A close of a connection that never reached ESTABLISHED: a connect()
        that failed (refused, timed out, aborted) or a handshake not completed."""
        return self.kind == "close" and self.state in (TcpState.SYN_SENT, TcpState.SYN_RECV)

    @property
    def time(self) -> datetime:
        """:attr:`time_ns` as an aware UTC datetime (microsecond precision)."""
        seconds, ns = divmod(self.time_ns, _NS)
        return datetime.fromtimestamp(seconds, timezone.utc).replace(microsecond=ns // 1000)

    @property
    def source(self) -> str:
        """``"saddr:sport"``, as the original example prints it."""
        return f"{self.saddr}:{self.sport}"

    @property
    def destination(self) -> str:
        """``"daddr:dport"``, as the original example prints it."""
        return f"{self.daddr}:{self.dport}"

    def to_dict(self, resolve: bool = False) -> dict[str, Any]:
        """The event as JSON-ready builtins: one key per field.

        ``family`` becomes ``"AF_INET"``/``"AF_INET6"``, ``state`` its name
        (``"ESTABLISHED"``, ...), ``error`` its ``errno`` name
        (``"ECONNREFUSED"``, None for 0); ``kind`` and ``direction`` stay
        ``str``. ``resolve=True`` adds :attr:`cgroup`, :attr:`container_id`
        and :attr:`pod_uid` (looked up, then cached: see :attr:`cgroup`).
        """
        out = {name: getattr(self, name) for name in _FIELDS}
        out["family"] = family_name(self.family)
        out["state"] = TcpState(self.state).name
        out["error"] = self.error_name
        if resolve:
            out.update(self.cgroup_names())
        return out

    @classmethod
    def from_abi(cls, raw: abi.TcpEventT | bytes | bytearray | memoryview) -> TcpEvent:
        """Build an event from the original ``struct tcp_event_t``.

        ``raw`` is an :class:`tcpevent.abi.TcpEventT` or its 430 bytes. The
        original struct has no place for the other fields: they are what an
        all-zero ``struct tcpevent_event`` gives (0, ``""``,
        :attr:`TcpState.UNKNOWN`, ``"close"``). ``TcpEvent.from_abi(s).to_abi()``
        gives back ``s`` byte for byte (the text fields up to their NUL).
        """
        from tcpevent._convert import ZERO_EVENT  # the native core, loaded on use

        if not isinstance(raw, abi.TcpEventT):
            raw = abi.TcpEventT.from_buffer_copy(bytes(raw))
        return replace(
            ZERO_EVENT,
            time_ns=raw.EventTime,
            pid=raw.pid,
            uid=raw.UserId,
            rx_bytes=raw.rx_b,
            tx_bytes=raw.tx_b,
            segs_out=raw.tcpi_segs_out,
            segs_in=raw.tcpi_segs_in,
            family=family_of(raw.family),
            sport=raw.SPT,
            dport=raw.DPT,
            task=_text(raw.task),
            saddr=_text(raw.SADDR),
            daddr=_text(raw.DADDR),
        )

    def to_abi(self) -> abi.TcpEventT:
        """The event as the original ``struct tcp_event_t`` (ctypes).

        Text longer than 127 bytes is truncated; the extra fields are dropped.
        """
        out = abi.TcpEventT()
        out.EventTime = self.time_ns
        out.pid = self.pid
        out.UserId = self.uid
        out.rx_b = self.rx_bytes
        out.tx_b = self.tx_bytes
        out.tcpi_segs_out = self.segs_out
        out.tcpi_segs_in = self.segs_in
        out.family = int(self.family)
        out.SPT = self.sport
        out.DPT = self.dport
        out.task = _c_string(self.task, _ABI_TEXT)
        out.SADDR = _c_string(self.saddr, _ABI_TEXT)
        out.DADDR = _c_string(self.daddr, _ABI_TEXT)
        return out

    def __reduce__(self) -> tuple[type[TcpEvent], tuple[Any, ...]]:
        # Frozen and slotted: pickle through the constructor.
        return (type(self), tuple(getattr(self, name) for name in _FIELDS))


_FIELDS: tuple[str, ...] = tuple(TcpEvent.__dataclass_fields__)
