"""One TCP connection event: :class:`TcpEvent`, and :class:`TcpState`."""

from __future__ import annotations

import enum
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from tcpevent import abi

__all__ = ["EventKind", "TcpEvent", "TcpState"]

#: Why an event was emitted: the connection closed, or a periodic sample of a
#: live connection (``Tracer(snapshot_interval=...)``).
EventKind = Literal["close", "snapshot"]

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


_FAMILY_NAMES = {socket.AF_INET: "AF_INET", socket.AF_INET6: "AF_INET6"}


def _text(raw: bytes) -> str:
    """A C string field: up to the first NUL, undecodable bytes kept."""
    return raw.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _c_string(text: str, size: int) -> bytes:
    """``text`` for a ``char[size]`` field, truncated to leave the NUL."""
    return text.encode("utf-8", "surrogateescape")[: size - 1]


@dataclass(frozen=True)
class TcpEvent:
    """One TCP connection event, immutable.

    The first 13 fields are those of the original ``struct tcp_event_t``
    under Pythonic names; the last five are recorded by this core only.
    Text fields are ``str``; a byte of a process name that is not UTF-8 is
    kept as a surrogate escape, so :meth:`to_abi` gives back the same bytes.
    """

    __slots__ = (
        "daddr",
        "dport",
        "family",
        "kind",
        "lifetime_ns",
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
    """The owning process (tgid); 0 if unknown."""
    uid: int
    """The owning process's user id (``UserId``)."""
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
    """The owning process's command name (``comm``)."""
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
    """``"close"`` or ``"snapshot"``."""

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

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready builtins: one key per field.

        ``family`` becomes ``"AF_INET"``/``"AF_INET6"``, ``state`` its name
        (``"ESTABLISHED"``, ...), ``kind`` stays a ``str``.
        """
        return {
            "time_ns": self.time_ns,
            "pid": self.pid,
            "uid": self.uid,
            "rx_bytes": self.rx_bytes,
            "tx_bytes": self.tx_bytes,
            "segs_out": self.segs_out,
            "segs_in": self.segs_in,
            "family": _FAMILY_NAMES.get(self.family) or str(int(self.family)),
            "sport": self.sport,
            "dport": self.dport,
            "task": self.task,
            "saddr": self.saddr,
            "daddr": self.daddr,
            "lifetime_ns": self.lifetime_ns,
            "rtt_us": self.rtt_us,
            "retrans": self.retrans,
            "state": TcpState(self.state).name,
            "kind": str(self.kind),
        }

    @classmethod
    def from_abi(cls, raw: abi.TcpEventT | bytes | bytearray | memoryview) -> TcpEvent:
        """Build an event from the original ``struct tcp_event_t``.

        ``raw`` is an :class:`tcpevent.abi.TcpEventT` or its 430 bytes. The
        original struct has no place for the extra fields: they are 0,
        :attr:`TcpState.UNKNOWN` and ``"close"``. ``TcpEvent.from_abi(s).to_abi()``
        gives back ``s`` byte for byte (the text fields up to their NUL).
        """
        if not isinstance(raw, abi.TcpEventT):
            raw = abi.TcpEventT.from_buffer_copy(bytes(raw))
        return cls(
            time_ns=raw.EventTime,
            pid=raw.pid,
            uid=raw.UserId,
            rx_bytes=raw.rx_b,
            tx_bytes=raw.tx_b,
            segs_out=raw.tcpi_segs_out,
            segs_in=raw.tcpi_segs_in,
            family=_family(raw.family),
            sport=raw.SPT,
            dport=raw.DPT,
            task=_text(raw.task),
            saddr=_text(raw.SADDR),
            daddr=_text(raw.DADDR),
            lifetime_ns=0,
            rtt_us=0,
            retrans=0,
            state=TcpState.UNKNOWN,
            kind="close",
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


def _family(value: int) -> socket.AddressFamily:
    try:
        return socket.AddressFamily(value)
    except ValueError:
        # Not an address family Python knows: keep the number (0 = no event).
        return value  # type: ignore[return-value]
