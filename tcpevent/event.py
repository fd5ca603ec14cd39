"""One TCP connection event: :class:`TcpEvent`, and :class:`TcpState`."""

from __future__ import annotations

import enum
import errno
import socket
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, get_args

from tcpevent import abi
from tcpevent._enums import (
    CAUSE_NAMES,
    CAUSES,
    DIRECTION_NAMES,
    DIRECTIONS,
    KIND_NAMES,
    KINDS,
    TCP_STATES,
)
from tcpevent.cgroups import cgroup_path as _lookup_cgroup
from tcpevent.containers import CgroupNames
from tcpevent.family import FAMILIES, FAMILY_NAMES, endpoint, family_name, family_of

__all__ = [
    "FAMILIES",
    "FAMILY_NAMES",
    "ZERO_EVENT",
    "Cause",
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
#: (``accept``); a segment was retransmitted, a reset sent or received, a
#: packet dropped (``retransmit``, ``reset``, ``drop``: docs/health.md)
#: (``Tracer(events=...)``).
EventKind = Literal["close", "snapshot", "connect", "accept", "retransmit", "reset", "drop"]
#: Of a retransmit event, why (``"timeout"``, ``"loss"``, ``"fast"``,
#: ``"probe"``, ``"syn"``, ``"synack"``); of a reset, which way (``"sent"``,
#: ``"received"``); ``"none"`` for other events (docs/health.md).
Cause = Literal["none", "timeout", "loss", "fast", "probe", "syn", "synack", "sent", "received"]
#: Which side of the connection: the one that called connect(), the one
#: accept() hands out, or not known (e.g. a snapshot, a custom program).
Direction = Literal["outbound", "inbound", "unknown"]

# The Literal types are what a type checker sees; the values are the C enums'.
if (
    set(get_args(EventKind)) != set(KINDS)
    or set(get_args(Direction)) != set(DIRECTIONS)
    or set(get_args(Cause)) != set(CAUSES)
):
    raise ImportError(  # pragma: no cover - header and Literal disagree
        f"tcpevent: EventKind {get_args(EventKind)}, Direction {get_args(Direction)} or "
        f"Cause {get_args(Cause)} differ from enum tcpevent_kind {tuple(KINDS)}, "
        f"enum tcpevent_direction {tuple(DIRECTIONS)} or enum tcpevent_cause {tuple(CAUSES)}"
    )

_NS = 1_000_000_000
#: Size of the text fields of ``struct tcp_event_t`` (task, SADDR, DADDR).
_ABI_TEXT: int = abi.TcpEventT.task.size


class _TcpStateBase(enum.IntEnum):
    """What :class:`TcpState` does; its members come from the C header."""

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
        return _SS_NAMES.get(int(self), self.name)

    @classmethod
    def parse(cls, text: str) -> TcpState:
        """The state named ``text``: the kernel's name or ``ss``'s, any case,
        ``-`` or ``_`` (``"established"``, ``"ESTAB"``, ``"fin-wait-1"``).
        Raises ``ValueError`` for another name."""
        state = _BY_NAME.get(_name_key(text))
        if state is None:
            names = ", ".join(s.name for s in cls if s)  # not UNKNOWN (0)
            raise ValueError(f"unknown TCP state {text!r}: one of {names}")
        return state


_TCP_STATE_DOC = """The kernel's TCP states (``include/net/tcp_states.h``).

    The members are ``enum tcpevent_tcp_state`` of ``tcpevent_conn.h``, read
    through cffi. ``UNKNOWN`` (0) is ours: the state was not recorded (e.g. an
    event built from the original ABI struct, which has no state). A value
    the kernel may add later becomes a pseudo-member named ``STATE_<n>``.
    """

if TYPE_CHECKING:
    # The type checker's view, names only; at run time the members are made
    # from the header (below), and a test checks that both list the same.

    class TcpState(_TcpStateBase):
        UNKNOWN = 0
        ESTABLISHED = enum.auto()
        SYN_SENT = enum.auto()
        SYN_RECV = enum.auto()
        FIN_WAIT1 = enum.auto()
        FIN_WAIT2 = enum.auto()
        TIME_WAIT = enum.auto()
        CLOSE = enum.auto()
        CLOSE_WAIT = enum.auto()
        LAST_ACK = enum.auto()
        LISTEN = enum.auto()
        CLOSING = enum.auto()
        NEW_SYN_RECV = enum.auto()
        BOUND_INACTIVE = enum.auto()

else:
    TcpState = _TcpStateBase(
        "TcpState", {"UNKNOWN": 0, **TCP_STATES}, module=__name__, qualname="TcpState"
    )
    TcpState.__doc__ = _TCP_STATE_DOC


#: ``ss``'s name of each state, where it differs from the kernel's (by the
#: kernel's name: the names and values themselves are the header's).
_SS_SPELLINGS: dict[str, str] = {
    "ESTABLISHED": "ESTAB",
    "SYN_SENT": "SYN-SENT",
    "SYN_RECV": "SYN-RECV",
    "FIN_WAIT1": "FIN-WAIT-1",
    "FIN_WAIT2": "FIN-WAIT-2",
    "TIME_WAIT": "TIME-WAIT",
    "CLOSE": "UNCONN",
    "CLOSE_WAIT": "CLOSE-WAIT",
    "LAST_ACK": "LAST-ACK",
    "NEW_SYN_RECV": "NEW-SYN-RECV",
    "BOUND_INACTIVE": "BOUND-INACTIVE",
}
_SS_NAMES: dict[int, str] = {
    TcpState[name]: ss for name, ss in _SS_SPELLINGS.items() if name in TcpState.__members__
}


def _name_key(text: str) -> str:
    return text.strip().upper().replace("-", "").replace("_", "")


_BY_NAME: dict[str, TcpState] = {
    **{_name_key(s.name): s for s in TcpState if s is not TcpState.UNKNOWN},
    **{
        _name_key(ss): TcpState[name]
        for name, ss in _SS_SPELLINGS.items()
        if name in TcpState.__members__
    },
}


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

    The fields from ``time_ns`` to ``daddr`` are those of the original
    ``struct tcp_event_t`` under Pythonic names (:meth:`from_abi`,
    :meth:`to_abi`); the ones after them are recorded by this core only.
    Text fields are ``str``; a byte of a process name that is not UTF-8 is
    kept as a surrogate escape, so :meth:`to_abi` gives back the same bytes.
    """

    __slots__ = (
        "accept_wait_ns",
        "cause",
        "cgroup_id",
        "cgroup_path",
        "daddr",
        "direction",
        "dport",
        "drops",
        "error",
        "family",
        "first_retrans_ns",
        "handshake_ns",
        "kind",
        "last_retrans_ns",
        "lifetime_ns",
        "netns",
        "origin_pid",
        "origin_task",
        "origin_uid",
        "pid",
        "reason",
        "resets_received",
        "resets_sent",
        "retrans",
        "retrans_fast",
        "retrans_loss",
        "retrans_probe",
        "retrans_segs",
        "retrans_syn",
        "retrans_timeout",
        "rtt_us",
        "rx_bytes",
        "saddr",
        "segs",
        "segs_in",
        "segs_out",
        "skipped",
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
    # What the connection went through (docs/health.md): counted only while
    # retransmit, reset or drop events are on, else 0. A retransmit, reset
    # or drop event carries the counts up to it, a close event the totals.
    first_retrans_ns: int
    """Wall-clock time of the connection's first retransmission; 0: none."""
    last_retrans_ns: int
    """Wall-clock time of its last retransmission; 0: none."""
    retrans_segs: int
    """Segments it retransmitted (as the kernel's ``RetransSegs`` counts)."""
    retrans_timeout: int
    """Retransmissions the retransmission timer made (an RTO's own)."""
    retrans_loss: int
    """Retransmissions after a timeout, in loss recovery."""
    retrans_fast: int
    """Fast retransmissions, in recovery (duplicate ACKs, SACK, RACK)."""
    retrans_probe: int
    """Tail-loss probes that retransmitted a segment."""
    retrans_syn: int
    """SYNs retransmitted."""
    resets_sent: int
    """Resets it sent."""
    resets_received: int
    """Resets it received."""
    drops: int
    """Its packets the kernel dropped, with a reason."""
    skipped: int
    """Of a retransmit event: the connection's retransmit events the rate
    limit left out since its previous one (``Tracer(retransmit_interval=)``);
    of a close event, those left out since its last one."""
    reason: int
    """Of a drop event: the kernel's ``enum skb_drop_reason`` value; of a
    reset sent: its ``enum sk_rst_reason`` (6.10+). See :attr:`reason_name`."""
    cause: Cause
    """Of a retransmit event, why; of a reset, which way (:data:`Cause`)."""
    segs: int
    """Of a retransmit event: the segments it sent."""
    cgroup_path: str | None
    """The path of :attr:`cgroup_id` under the cgroup v2 mount, as the
    tracer stored it when the event was dequeued, from the names it learnt
    as cgroups were made: known however short the cgroup's life, and carried
    by pickling and :meth:`to_dict` (docs/containers.md). None: unknown, or
    an event not from a tracer (then :attr:`cgroup` looks it up). Not a
    field of the core's struct."""

    @property
    def cgroup(self) -> str | None:
        """The path of :attr:`cgroup_id` under the cgroup v2 mount
        (``"/libpod_parent/libpod-<id>"``; ``"/"`` for the root), or None if
        unknown: :attr:`cgroup_path`, stored by the tracer; for an event
        without it, looked up on access (a cgroup removed before then is
        unknown). :attr:`container_id` and :attr:`pod_uid` are read from it."""
        path = self.cgroup_path
        return path if path is not None else _lookup_cgroup(self.cgroup_id or 0)

    @property
    def error_name(self) -> str | None:
        """:attr:`error` as its ``errno`` name (``"ECONNREFUSED"``); None for 0."""
        if not self.error:
            return None
        return errno.errorcode.get(self.error, str(self.error))

    @property
    def reason_name(self) -> str | None:
        """:attr:`reason` as the running kernel names it (its BTF):
        ``"TCP_LISTEN_OVERFLOW"``, ``"NETFILTER_DROP"`` for a drop,
        ``"NO_SOCKET"`` for a reset sent; None for other events, or a value
        this kernel does not name."""
        if self.kind not in ("drop", "reset") or (self.kind == "reset" and self.cause != "sent"):
            return None
        from tcpevent._reasons import reason_name  # the native core, loaded on use

        return reason_name(self.kind, self.reason)

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
        (``"ECONNREFUSED"``, None for 0), ``reason`` its kernel's name
        (:attr:`reason_name`; the number if the kernel names it not, None
        for 0); ``kind``, ``direction`` and ``cause`` stay
        ``str``; ``cgroup_path`` is the path the tracer stored.
        ``resolve=True`` adds :attr:`cgroup`, :attr:`container_id` and
        :attr:`pod_uid` (from ``cgroup_path``; for an event without it,
        looked up, then cached: see :attr:`cgroup`).
        """
        out = {name: getattr(self, name) for name in _FIELDS}
        out["family"] = family_name(self.family)
        out["state"] = TcpState(self.state).name
        out["error"] = self.error_name
        out["reason"] = self.reason_name or self.reason or None
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

# cgroup_path came last, after the core's fields: an event built by hand
# without it (as before it existed) has None, and looks its cgroup up. A
# class-level default would clash with the explicit __slots__ (Python 3.9
# has no dataclass(slots=True)), so the default is the generated __init__'s.
assert _FIELDS[-1] == "cgroup_path"
TcpEvent.__init__.__defaults__ = (None,)

#: The value of a field of each type in an all-zero ``struct tcpevent_event``
#: (a field of a type not listed here is an ImportError: say what its zero is).
_ZERO_OF_TYPE: dict[str, object] = {
    "int": 0,
    "str": "",
    "socket.AddressFamily": family_of(0),
    "TcpState": TcpState(0),
    "EventKind": KIND_NAMES[0],
    "Direction": DIRECTION_NAMES[0],
    "Cause": CAUSE_NAMES[0],
    "str | None": None,
}
#: What an all-zero ``struct tcpevent_event`` means: the value of every field
#: an event from elsewhere (the original ABI) has no place for. Built from
#: the dataclass; a test checks it against the core's conversion of zeros.
ZERO_EVENT: TcpEvent = TcpEvent(
    **{f.name: _ZERO_OF_TYPE[str(f.type)] for f in fields(TcpEvent)}  # type: ignore[arg-type]
)
