"""Live TCP connections with their full ``tcp_info``: :func:`connections`.

Close events say what a connection did once it is gone; this says what the
live ones are doing now (RTT, retransmissions, congestion window, bytes so
far), as ``ss -tip`` does::

    for c in tcpevent.connections(ports=[443]):
        print(c.pid, c.task, c.local, c.peer, c.info.rtt_us, c.info.bytes_acked)

It asks the kernel through netlink sock_diag (``tcpevent_connections()`` of
the core), which needs no privilege and no BPF; finding each socket's owner
reads ``/proc/<pid>/fd`` (see docs/connections.md for what that may see).

Conversion is the hot path: the core's array of ``struct tcpevent_conn`` is
read as one buffer with a :class:`struct.Struct` built at import from cffi's
own view of the header (so it cannot drift), and the frozen dataclasses are
built without running their ``__init__``. A ``tcp_info`` field the kernel did
not send (one that does not end within ``info_len``) is ``None``, decided
from the field's offset and size, never read as whatever the buffer holds.
"""

from __future__ import annotations

import os
import re
import socket
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, Union

from tcpevent import _core
from tcpevent._convert import decode_c_string, text_cache
from tcpevent._options import FamilyArg, _id_list, parse_family
from tcpevent.errors import error_from_code
from tcpevent.event import TcpState

__all__ = [
    "ACCECN_LAYOUT",
    "STATES_ALL",
    "STATES_CONNECTED",
    "Connection",
    "SocketMemory",
    "StatesArg",
    "TcpInfo",
    "connections",
    "connections_from_cdata",
    "parse_states",
    "tcp_info_from_cdata",
]

ffi = _core.ffi

#: What ``states=`` accepts: one state or an iterable of them, each a
#: :class:`TcpState`, its value, or its name (any case; ``ss``'s spellings
#: such as ``"FIN-WAIT-1"``, ``"ESTAB"`` too); ``"all"`` for every state;
#: ``None`` for :data:`STATES_CONNECTED`.
StatesArg = Union[None, int, str, TcpState, Iterable[Union[int, str, TcpState]]]

#: The states of real connections (the default): sockets with an inode, an
#: owner and a ``tcp_info``. Leaves out ``LISTEN``, ``CLOSE``, ``TIME_WAIT``
#: and ``SYN_RECV``/``NEW_SYN_RECV`` (the last ones are kernel mini-sockets).
STATES_CONNECTED: frozenset[TcpState] = frozenset(
    {
        TcpState.ESTABLISHED,
        TcpState.SYN_SENT,
        TcpState.FIN_WAIT1,
        TcpState.FIN_WAIT2,
        TcpState.CLOSE_WAIT,
        TcpState.LAST_ACK,
        TcpState.CLOSING,
    }
)
#: Every state the kernel has (``states="all"``).
STATES_ALL: frozenset[TcpState] = frozenset(s for s in TcpState if s is not TcpState.UNKNOWN)

_MASK_ALL = 0xFFFFFFFF

# idiag_timer values (include/uapi/linux/inet_diag.h, as ss reads them).
_TIMERS: dict[int, str | None] = {
    0: None,
    1: "retransmit",
    2: "keepalive",
    3: "time_wait",
    4: "zero_window_probe",
}

# Attribute numbers of enum INET_DIAG_* (bits of tcpevent_conn.attrs).
_ATTR_CONG = 4
_ATTR_TOS = 5
_ATTR_TCLASS = 6
_ATTR_SHUTDOWN = 8
_ATTR_SKV6ONLY = 11
_ATTR_MARK = 15
_ATTR_CGROUP_ID = 21


# ---- the dataclasses ----------------------------------------------------------------


@dataclass(frozen=True)
class TcpInfo:
    """The kernel's ``struct tcp_info`` of one socket, units in the names.

    Field by field the C struct in its order (``tcpi_state`` is
    :attr:`Connection.state`). A field the running kernel did not send is
    ``None``; the kernel version that brought each is in docs/connections.md.
    Times carry their unit in the name (``_us``, ``_ms``); counts are
    segments unless the name or the field's text says bytes. Immutable,
    hashable, picklable.
    """

    __slots__ = (
        "accecn_fail_mode",
        "accecn_opt_seen",
        "advmss",
        "ato_us",
        "backoff",
        "busy_time_us",
        "bytes_acked",
        "bytes_received",
        "bytes_retrans",
        "bytes_sent",
        "ca_state",
        "data_segs_in",
        "data_segs_out",
        "delivered",
        "delivered_ce",
        "delivered_ce_bytes",
        "delivered_e0_bytes",
        "delivered_e1_bytes",
        "delivery_rate",
        "delivery_rate_app_limited",
        "dsack_dups",
        "fackets",
        "fastopen_client_fail",
        "last_ack_recv_ms",
        "last_ack_sent_ms",
        "last_data_recv_ms",
        "last_data_sent_ms",
        "lost",
        "max_pacing_rate",
        "min_rtt_us",
        "notsent_bytes",
        "options",
        "pacing_rate",
        "pmtu",
        "probes",
        "rcv_mss",
        "rcv_ooopack",
        "rcv_rtt_us",
        "rcv_space",
        "rcv_ssthresh",
        "rcv_wnd",
        "rcv_wscale",
        "received_ce",
        "received_ce_bytes",
        "received_e0_bytes",
        "received_e1_bytes",
        "rehash",
        "reord_seen",
        "reordering",
        "retrans_out",
        "retransmits",
        "rto_us",
        "rtt_us",
        "rttvar_us",
        "rwnd_limited_us",
        "sacked",
        "segs_in",
        "segs_out",
        "snd_cwnd",
        "snd_mss",
        "snd_ssthresh",
        "snd_wnd",
        "snd_wscale",
        "sndbuf_limited_us",
        "total_retrans",
        "total_rto",
        "total_rto_recoveries",
        "total_rto_time_ms",
        "unacked",
    )

    ca_state: int | None
    """Congestion avoidance state: 0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss."""
    retransmits: int | None
    """Unrecovered RTO timeouts at the current sequence (reset on progress)."""
    probes: int | None
    """Unanswered zero-window probes (or keepalives) in a row."""
    backoff: int | None
    """Exponential backoff of the retransmission timer (RTO doublings)."""
    options: int | None
    """Negotiated options, ``TCPI_OPT_*`` bits: 1 timestamps, 2 SACK, 4 window
    scaling, 8 ECN, 16 ECN seen, 32 SYN data acked, 64 µs timestamps (6.7)."""
    snd_wscale: int | None
    """Window scale (bit shift) of the peer's advertised window."""
    rcv_wscale: int | None
    """Window scale (bit shift) of our advertised window."""
    delivery_rate_app_limited: bool | None
    """True if :attr:`delivery_rate` was limited by the application, not the path."""
    fastopen_client_fail: int | None
    """Why TCP Fast Open failed on the client (0: n/a or not failed; 5.5+, 0 before)."""
    rto_us: int | None
    """Retransmission timeout, µs."""
    ato_us: int | None
    """Delayed-ACK timeout, µs."""
    snd_mss: int | None
    """Current send MSS, bytes."""
    rcv_mss: int | None
    """MSS estimated from the peer's segments, bytes."""
    unacked: int | None
    """Segments sent and not yet acknowledged (``packets_out``)."""
    sacked: int | None
    """Segments selectively acknowledged (SACK scoreboard)."""
    lost: int | None
    """Segments presumed lost."""
    retrans_out: int | None
    """Retransmitted segments not yet acknowledged (``tcpi_retrans``)."""
    fackets: int | None
    """FACK count; FACK was removed in 4.18: always 0 since."""
    last_data_sent_ms: int | None
    """Time since the last data segment was sent, ms."""
    last_ack_sent_ms: int | None
    """Never recorded by Linux: always 0."""
    last_data_recv_ms: int | None
    """Time since the last data segment was received, ms."""
    last_ack_recv_ms: int | None
    """Time since the last ACK was received, ms."""
    pmtu: int | None
    """Path MTU, bytes."""
    rcv_ssthresh: int | None
    """Receive window clamp (slow-start threshold of our window), bytes."""
    rtt_us: int | None
    """Smoothed round-trip time, µs."""
    rttvar_us: int | None
    """Round-trip time variation (mean deviation), µs."""
    snd_ssthresh: int | None
    """Slow-start threshold, segments (2147483647: not set yet)."""
    snd_cwnd: int | None
    """Congestion window, segments."""
    advmss: int | None
    """MSS we advertised, bytes."""
    reordering: int | None
    """Reordering distance the sender tolerates, segments."""
    rcv_rtt_us: int | None
    """Receiver-side RTT estimate, µs (0: none yet)."""
    rcv_space: int | None
    """Receive buffer space the auto-tuning aims at, bytes."""
    total_retrans: int | None
    """Segments retransmitted over the connection's life."""
    pacing_rate: int | None
    """Current pacing rate, bytes/s (2**64-1: unlimited)."""
    max_pacing_rate: int | None
    """``SO_MAX_PACING_RATE``, bytes/s (2**64-1: unlimited)."""
    bytes_acked: int | None
    """Bytes sent and acknowledged by the peer."""
    bytes_received: int | None
    """Bytes received in order."""
    segs_out: int | None
    """Segments sent, including pure ACKs and retransmissions."""
    segs_in: int | None
    """Segments received, including pure ACKs."""
    notsent_bytes: int | None
    """Bytes in the send queue not yet sent."""
    min_rtt_us: int | None
    """Minimum RTT seen (windowed), µs (4294967295: no sample)."""
    data_segs_in: int | None
    """Segments received carrying data."""
    data_segs_out: int | None
    """Segments sent carrying data (retransmissions included)."""
    delivery_rate: int | None
    """Most recent delivery rate sample, bytes/s."""
    busy_time_us: int | None
    """Time with data in flight, µs."""
    rwnd_limited_us: int | None
    """Time limited by the peer's receive window, µs."""
    sndbuf_limited_us: int | None
    """Time limited by the send buffer, µs."""
    delivered: int | None
    """Segments delivered (acknowledged, SACKed included)."""
    delivered_ce: int | None
    """Segments delivered that carried an ECN CE mark."""
    bytes_sent: int | None
    """Bytes sent, retransmissions included."""
    bytes_retrans: int | None
    """Bytes retransmitted."""
    dsack_dups: int | None
    """Duplicate segments reported by D-SACK."""
    reord_seen: int | None
    """Reordering events seen."""
    rcv_ooopack: int | None
    """Out-of-order segments received."""
    snd_wnd: int | None
    """The peer's advertised receive window, bytes (after scaling)."""
    rcv_wnd: int | None
    """Our advertised receive window, bytes (after scaling)."""
    rehash: int | None
    """Path rehash attempts (PLB or timeouts)."""
    total_rto: int | None
    """RTO timeouts over the connection's life (SYN/SYN-ACK and repeats included)."""
    total_rto_recoveries: int | None
    """RTO recoveries, an unfinished one included."""
    total_rto_time_ms: int | None
    """Time spent in RTO recoveries, ms."""
    received_ce: int | None
    """Segments received with a CE mark (Accurate ECN)."""
    delivered_e1_bytes: int | None
    """Bytes delivered with ECT(1) (Accurate ECN feedback)."""
    delivered_e0_bytes: int | None
    """Bytes delivered with ECT(0) (Accurate ECN feedback)."""
    delivered_ce_bytes: int | None
    """Bytes delivered with CE (Accurate ECN feedback)."""
    received_e1_bytes: int | None
    """Bytes received with ECT(1)."""
    received_e0_bytes: int | None
    """Bytes received with ECT(0)."""
    received_ce_bytes: int | None
    """Bytes received with CE."""
    accecn_fail_mode: int | None
    """Accurate ECN failure bits (two u16 up to 6.x, a 4-bit field from 7.0:
    see :data:`ACCECN_LAYOUT`)."""
    accecn_opt_seen: int | None
    """Accurate ECN option seen (which kind of option)."""

    def to_dict(self) -> dict[str, int | bool | None]:
        """Every field by name (absent ones ``None``): JSON-ready."""
        return {name: getattr(self, name) for name in _INFO_FIELDS}

    def __reduce__(self) -> tuple[type[TcpInfo], tuple[Any, ...]]:
        return (type(self), tuple(getattr(self, name) for name in _INFO_FIELDS))


@dataclass(frozen=True)
class SocketMemory:
    """Socket memory (``ss -m``'s ``skmem``, ``SK_MEMINFO_*``), bytes.

    ``None``: not sent by the kernel (``backlog`` came in 3.11, ``drops`` in 4.x).
    """

    __slots__ = (
        "backlog",
        "drops",
        "fwd_alloc",
        "optmem",
        "rcvbuf",
        "rmem_alloc",
        "sndbuf",
        "wmem_alloc",
        "wmem_queued",
    )

    rmem_alloc: int | None
    """Bytes held by received data (``r``)."""
    rcvbuf: int | None
    """Receive buffer size (``rb``, ``SO_RCVBUF``)."""
    wmem_alloc: int | None
    """Bytes of sent data in the qdisc/driver (``t``)."""
    sndbuf: int | None
    """Send buffer size (``tb``, ``SO_SNDBUF``)."""
    fwd_alloc: int | None
    """Memory reserved ahead (``f``)."""
    wmem_queued: int | None
    """Bytes in the send queue, sent or not (``w``)."""
    optmem: int | None
    """Option memory, e.g. socket filters (``o``)."""
    backlog: int | None
    """Bytes in the backlog queue (``bl``)."""
    drops: int | None
    """Packets dropped before reaching the socket (``d``), a count."""

    def to_dict(self) -> dict[str, int | None]:
        """Every field by name."""
        return {name: getattr(self, name) for name in _SKMEM_FIELDS}

    def __reduce__(self) -> tuple[type[SocketMemory], tuple[Any, ...]]:
        return (type(self), tuple(getattr(self, name) for name in _SKMEM_FIELDS))


@dataclass(frozen=True)
class Connection:
    """One live TCP socket, as sock_diag reports it now. Immutable.

    ``pid``/``task`` are 0 and ``""`` when the owner is unknown (not asked
    with ``with_process=False``, a process we may not inspect, or a kernel
    mini-socket); ``cmdline`` is ``None`` unless asked for.
    """

    __slots__ = (
        "cgroup_id",
        "cmdline",
        "cong",
        "cookie",
        "daddr",
        "dport",
        "family",
        "ifindex",
        "info",
        "inode",
        "mark",
        "pid",
        "recv_q",
        "saddr",
        "send_q",
        "shutdown",
        "skmem",
        "sport",
        "state",
        "task",
        "tclass",
        "timer",
        "timer_expires_ms",
        "timer_retrans",
        "tos",
        "uid",
        "v6only",
    )

    family: socket.AddressFamily
    """``socket.AF_INET`` or ``socket.AF_INET6``."""
    saddr: str
    """Local address (``inet_ntop`` text; ``"::ffff:a.b.c.d"`` for IPv4-mapped)."""
    sport: int
    """Local port."""
    daddr: str
    """Remote address."""
    dport: int
    """Remote port."""
    state: TcpState
    """Current TCP state."""
    uid: int
    """User id of the socket (its creator's)."""
    inode: int
    """Socket inode (``socket:[inode]`` in ``/proc/<pid>/fd``); 0 for mini-sockets."""
    pid: int
    """Owning process (lowest pid holding the socket); 0 if unknown."""
    task: str
    """Its command name (``/proc/<pid>/comm``); ``""`` if unknown."""
    cmdline: str | None
    """Its arguments joined by spaces (``with_cmdline=True`` and an owner), else None."""
    cong: str | None
    """Congestion control algorithm (``"cubic"``, ``"bbr"``...), None if not sent."""
    shutdown: int | None
    """``shutdown()`` seen: bit 1 receive side, bit 2 send side; None if not sent."""
    recv_q: int
    """Bytes received and not read yet (``LISTEN``: accept queue length)."""
    send_q: int
    """Bytes sent and not acknowledged yet (``LISTEN``: backlog limit)."""
    timer: str | None
    """Pending timer: ``"retransmit"``, ``"keepalive"``, ``"time_wait"``,
    ``"zero_window_probe"`` (``"timer_<n>"`` for another), None if none."""
    timer_expires_ms: int
    """When the timer fires, ms from now."""
    timer_retrans: int
    """Retransmissions or probes made by that timer."""
    ifindex: int
    """Bound network interface (``SO_BINDTODEVICE``), 0 if none."""
    tos: int | None
    """IPv4 TOS / DSCP+ECN byte; None if not sent."""
    tclass: int | None
    """IPv6 traffic class; None if not sent (IPv4 sockets)."""
    v6only: bool | None
    """``IPV6_V6ONLY`` of an IPv6 socket in ``LISTEN`` or ``CLOSE`` (the kernel
    sends it for those only); None otherwise."""
    mark: int | None
    """``SO_MARK``; the kernel sends it only to ``CAP_NET_ADMIN``: None otherwise."""
    cgroup_id: int | None
    """cgroup v2 id of the socket; None if not sent."""
    cookie: int
    """Socket cookie, the same as BPF's ``bpf_get_socket_cookie()``."""
    skmem: SocketMemory | None
    """Socket memory, None if not sent."""
    info: TcpInfo | None
    """The full ``tcp_info``; None if not sent (mini-sockets, ``LISTEN`` on old kernels)."""

    @property
    def local(self) -> str:
        """``"addr:port"``, IPv6 in brackets (``"[::1]:8080"``)."""
        return _endpoint(self.family, self.saddr, self.sport)

    @property
    def peer(self) -> str:
        """``"addr:port"`` of the remote end, IPv6 in brackets."""
        return _endpoint(self.family, self.daddr, self.dport)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready builtins: ``family`` as ``"AF_INET"``/``"AF_INET6"``,
        ``state`` as its name, ``skmem`` and ``info`` as nested dicts (or None)."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _CONN_FIELDS}
        out["family"] = _FAMILY_NAMES.get(int(self.family)) or str(int(self.family))
        out["state"] = TcpState(self.state).name
        out["skmem"] = None if self.skmem is None else self.skmem.to_dict()
        out["info"] = None if self.info is None else self.info.to_dict()
        return out

    def __reduce__(self) -> tuple[type[Connection], tuple[Any, ...]]:
        return (type(self), tuple(getattr(self, name) for name in _CONN_FIELDS))


_INFO_FIELDS: tuple[str, ...] = tuple(TcpInfo.__dataclass_fields__)
_SKMEM_FIELDS: tuple[str, ...] = tuple(SocketMemory.__dataclass_fields__)
_CONN_FIELDS: tuple[str, ...] = tuple(Connection.__dataclass_fields__)
_FAMILY_NAMES = {int(socket.AF_INET): "AF_INET", int(socket.AF_INET6): "AF_INET6"}


def _endpoint(family: int, addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if family == socket.AF_INET6 else f"{addr}:{port}"


# ---- the layout, from cffi's view of sockdiag.h --------------------------------------

#: TcpInfo field -> ``struct tcpevent_tcp_info`` member, where the names differ
#: by more than the ``tcpi_`` prefix. Bitfields are handled by name too.
_INFO_C_NAMES: dict[str, str] = {
    "rto_us": "tcpi_rto",
    "ato_us": "tcpi_ato",
    "retrans_out": "tcpi_retrans",
    "last_data_sent_ms": "tcpi_last_data_sent",
    "last_ack_sent_ms": "tcpi_last_ack_sent",
    "last_data_recv_ms": "tcpi_last_data_recv",
    "last_ack_recv_ms": "tcpi_last_ack_recv",
    "rtt_us": "tcpi_rtt",
    "rttvar_us": "tcpi_rttvar",
    "rcv_rtt_us": "tcpi_rcv_rtt",
    "min_rtt_us": "tcpi_min_rtt",
    "busy_time_us": "tcpi_busy_time",
    "rwnd_limited_us": "tcpi_rwnd_limited",
    "sndbuf_limited_us": "tcpi_sndbuf_limited",
    "total_rto_time_ms": "tcpi_total_rto_time",
}
_INFO_SKIPPED = ("tcpi_state",)  # = Connection.state

_CODES = {
    "uint8_t": "B",
    "uint16_t": "H",
    "uint32_t": "I",
    "uint64_t": "Q",
    "int": "i",
    "char": "c",
}


def _leaves(ctype: Any, base: int, prefix: str) -> list[tuple[str, int, str]]:
    """(dotted name, offset, struct code) of every plain member of ``ctype``.

    A bitfield's byte appears once, as ``"<prefix>bits@<offset>"`` (code ``B``);
    char arrays are ``"<n>s"``; other arrays and pointers are left out (padding).
    """
    out: list[tuple[str, int, str]] = []
    seen_bits: set[int] = set()
    for name, field in ctype.fields:
        t = field.type
        off = base + field.offset
        if field.bitsize >= 0:
            if t.cname != "uint8_t":  # pragma: no cover - header changed
                raise ImportError(f"tcpevent: unexpected bitfield type {t.cname} of {name}")
            if off not in seen_bits:
                seen_bits.add(off)
                out.append((f"{prefix}bits@{off - base}", off, "B"))
        elif t.kind == "struct":
            out.extend(_leaves(t, off, f"{prefix}{name}."))
        elif t.kind == "array":
            if t.item.cname == "char":
                out.append((prefix + name, off, f"{t.length}s"))
        elif t.kind == "primitive":
            out.append((prefix + name, off, _CODES[t.cname]))
    return out


def _struct_for(leaves: list[tuple[str, int, str]], size: int) -> struct.Struct:
    """A native-order, unaligned Struct reading ``leaves`` with explicit padding."""
    fmt = "="
    pos = 0
    for _name, off, code in leaves:
        if off < pos:  # pragma: no cover - overlapping members
            raise ImportError(f"tcpevent: overlapping members at offset {off}")
        if off > pos:
            fmt += f"{off - pos}x"
        fmt += code
        pos = off + struct.calcsize("=" + code)
    if size > pos:
        fmt += f"{size - pos}x"
    s = struct.Struct(fmt)
    if s.size != size:  # pragma: no cover - a coding error
        raise ImportError(f"tcpevent: layout of {size} bytes read as {s.size}")
    return s


_CONN_T = ffi.typeof("struct tcpevent_conn")
_INFO_T = ffi.typeof("struct tcpevent_tcp_info")
CONN_SIZE: int = ffi.sizeof(_CONN_T)
INFO_SIZE: int = ffi.sizeof(_INFO_T)

_CONN_LEAVES = _leaves(_CONN_T, 0, "")
_CONN_STRUCT = _struct_for(_CONN_LEAVES, CONN_SIZE)
_CONN_INDEX = {name: i for i, (name, _, _) in enumerate(_CONN_LEAVES)}
_INFO_LEAVES = _leaves(_INFO_T, 0, "")
_INFO_STRUCT = _struct_for(_INFO_LEAVES, INFO_SIZE)
_INFO_START = _CONN_INDEX["info." + _INFO_LEAVES[0][0]]
_INFO_STOP = _INFO_START + len(_INFO_LEAVES)
_SKMEM_START = _CONN_INDEX["skmem.rmem_alloc"]
_SKMEM_STOP = _SKMEM_START + len(_SKMEM_FIELDS)
if [n for n, _, _ in _CONN_LEAVES[_SKMEM_START:_SKMEM_STOP]] != [
    "skmem." + n for n in _SKMEM_FIELDS
]:  # pragma: no cover - header changed
    raise ImportError("tcpevent: SocketMemory's fields differ from struct tcpevent_skmem's")


def _bitfield(name: str) -> tuple[int, int, int]:
    """(byte offset, shift, mask) of a bitfield member of tcp_info."""
    field = dict(_INFO_T.fields)[name]
    return field.offset, field.bitshift, (1 << field.bitsize) - 1


def _info_plan() -> tuple[list[int], dict[str, tuple[int, int, int]]]:
    """For each TcpInfo field in order, the byte where it ends in tcp_info;
    and the bitfields. Checks that TcpInfo follows the C struct exactly."""
    c_fields = [(n, f) for n, f in _INFO_T.fields if n not in _INFO_SKIPPED]
    c_names = [n for n, _ in c_fields]
    ours = [_INFO_C_NAMES.get(n, "tcpi_" + n) for n in _INFO_FIELDS]
    if ours != c_names:
        raise ImportError(
            "tcpevent: TcpInfo's fields differ from struct tcpevent_tcp_info's: "
            f"missing {sorted(set(c_names) - set(ours))}, extra {sorted(set(ours) - set(c_names))}"
            " (or out of order)"
        )
    ends = []
    bits = {}
    for name, field in c_fields:
        if field.bitsize >= 0:
            ends.append(field.offset + 1)
            bits[name] = _bitfield(name)
        else:
            ends.append(field.offset + ffi.sizeof(field.type))
    return ends, bits


_INFO_ENDS, _INFO_BITS = _info_plan()
if [b[0] for b in _INFO_BITS.values()] != [6, 6, 7, 7] or [n for n, _, _ in _INFO_LEAVES[:9]] != [
    "tcpi_state",
    "tcpi_ca_state",
    "tcpi_retransmits",
    "tcpi_probes",
    "tcpi_backoff",
    "tcpi_options",
    "bits@6",
    "bits@7",
    "tcpi_rto",
]:  # pragma: no cover - header changed: _info_from_raw() must follow
    raise ImportError("tcpevent: the head of struct tcpevent_tcp_info changed")
if sorted(_INFO_ENDS) != _INFO_ENDS:  # pragma: no cover - header changed
    raise ImportError("tcpevent: tcp_info members out of offset order")

_WS_SHIFT, _WS_MASK = _INFO_BITS["tcpi_snd_wscale"][1:]
_WR_SHIFT, _WR_MASK = _INFO_BITS["tcpi_rcv_wscale"][1:]
_APP_SHIFT, _APP_MASK = _INFO_BITS["tcpi_delivery_rate_app_limited"][1:]
_TFO_SHIFT, _TFO_MASK = _INFO_BITS["tcpi_fastopen_client_fail"][1:]
_N_INFO = len(_INFO_FIELDS)
_NONES: tuple[None, ...] = (None,) * _N_INFO


def _present_count(info_len: int) -> int:
    """How many TcpInfo fields (a prefix, in struct order) end within info_len."""
    n = 0
    for end in _INFO_ENDS:
        if end > info_len:
            break
        n += 1
    return n


_PRESENT = [_present_count(n) for n in range(INFO_SIZE + 1)]


# ---- building objects fast -----------------------------------------------------------

_Setter = Callable[[Any, Any], None]


def _setters(cls: type, names: tuple[str, ...]) -> tuple[_Setter, ...]:
    return tuple(cls.__dict__[name].__set__ for name in names)


_INFO_SET = _setters(TcpInfo, _INFO_FIELDS)
_SKMEM_SET = _setters(SocketMemory, _SKMEM_FIELDS)
_CONN_SET = dict(zip(_CONN_FIELDS, _setters(Connection, _CONN_FIELDS)))
_new = object.__new__


def _make_info(values: tuple[Any, ...]) -> TcpInfo:
    obj: TcpInfo = _new(TcpInfo)
    for setter, value in zip(_INFO_SET, values):
        setter(obj, value)
    return obj


def _info_from_raw(
    raw: tuple[Any, ...], info_len: int, accecn_layout: str = "u16"
) -> TcpInfo | None:
    """TcpInfo from the unpacked leaves of tcp_info (see :data:`_INFO_LEAVES`)."""
    if info_len <= 0:
        return None
    b6 = raw[6]
    b7 = raw[7]
    values = (
        *raw[1:6],
        (b6 >> _WS_SHIFT) & _WS_MASK,
        (b6 >> _WR_SHIFT) & _WR_MASK,
        bool((b7 >> _APP_SHIFT) & _APP_MASK),
        (b7 >> _TFO_SHIFT) & _TFO_MASK,
        *raw[8:],
    )
    present = _PRESENT[info_len] if info_len <= INFO_SIZE else _N_INFO
    if present < _N_INFO:
        values = values[:present] + _NONES[present:]
    elif accecn_layout != "u16":
        values = values[:-2] + _accecn_repacked(values[-2], values[-1], accecn_layout)
    return _make_info(values)


def _kernel_major() -> int:
    try:
        return int(os.uname().release.split(".", 1)[0])
    except ValueError:  # pragma: no cover - an odd release string
        return 0


#: How the last 4 bytes of tcp_info (276..280) are laid out by the running
#: kernel: two u16 (``accecn_fail_mode``, ``accecn_opt_seen``) up to 6.x;
#: from 7.0 one u32 bitfield (ecn_mode:2, accecn_opt_seen:2,
#: accecn_fail_mode:4, options2:24), decoded here on little-endian machines
#: ("packed"); elsewhere unknown ("unknown": both fields None).
ACCECN_LAYOUT: str = (
    "u16" if _kernel_major() < 7 else "packed" if sys.byteorder == "little" else "unknown"
)


def _accecn_repacked(first: int, second: int, layout: str) -> tuple[int | None, int | None]:
    """(accecn_fail_mode, accecn_opt_seen) from the two u16 read at 276 and 278."""
    if layout != "packed":
        return None, None
    word = first | second << 16  # the u32 at 276, little-endian
    return (word >> 4) & 0xF, (word >> 2) & 0x3


def _skmem_from_raw(raw: tuple[Any, ...], count: int) -> SocketMemory | None:
    if count <= 0:
        return None
    if count < len(raw):
        raw = raw[:count] + (None,) * (len(raw) - count)
    obj: SocketMemory = _new(SocketMemory)
    for setter, value in zip(_SKMEM_SET, raw):
        setter(obj, value)
    return obj


def tcp_info_from_cdata(
    info: Any, info_len: int, accecn_layout: str | None = None
) -> TcpInfo | None:
    """A :class:`TcpInfo` from a cffi ``struct tcpevent_tcp_info *`` of which
    the kernel sent ``info_len`` bytes: fields past it are ``None`` whatever
    the struct holds there; ``info_len`` 0 gives ``None``. ``accecn_layout``:
    see :data:`ACCECN_LAYOUT` (None: the running kernel's)."""
    raw = _INFO_STRUCT.unpack(ffi.buffer(info, INFO_SIZE))
    return _info_from_raw(raw, int(info_len), accecn_layout or ACCECN_LAYOUT)


_STATES: tuple[TcpState, ...] = tuple(TcpState(v) for v in range(256))
_FAMILIES: dict[int, socket.AddressFamily] = {
    int(socket.AF_INET): socket.AF_INET,
    int(socket.AF_INET6): socket.AF_INET6,
}


def _family(value: int) -> socket.AddressFamily:
    try:
        return socket.AddressFamily(value)
    except ValueError:
        return value  # type: ignore[return-value]


def _timer(value: int) -> str | None:
    return _TIMERS.get(value, f"timer_{value}")


def connections_from_cdata(conns: Any, count: int, with_cmdline: bool = False) -> list[Connection]:
    """Convert the first ``count`` entries of a cffi ``struct tcpevent_conn[]``.

    ``with_cmdline`` reads each ``cmdline`` pointer (else ``cmdline`` is None).
    """
    if count <= 0:
        return []
    ix = _CONN_INDEX
    i_family, i_sport, i_dport = ix["family"], ix["sport"], ix["dport"]
    i_state, i_shutdown = ix["state"], ix["shutdown"]
    i_saddr, i_daddr, i_task, i_cong = ix["saddr"], ix["daddr"], ix["task"], ix["cong"]
    i_ifindex, i_uid, i_inode, i_cookie = ix["ifindex"], ix["uid"], ix["inode"], ix["cookie"]
    i_rq, i_wq, i_exp = ix["rqueue"], ix["wqueue"], ix["expires_ms"]
    i_timer, i_retrans = ix["timer"], ix["retrans"]
    i_tos, i_tclass, i_v6only = ix["tos"], ix["tclass"], ix["v6only"]
    i_skc, i_mark, i_attrs, i_cg = ix["skmem_count"], ix["mark"], ix["attrs"], ix["cgroup_id"]
    i_pid, i_info_len = ix["pid"], ix["info_len"]
    s0, s1, k0, k1 = _INFO_START, _INFO_STOP, _SKMEM_START, _SKMEM_STOP
    set_ = _CONN_SET
    (
        set_family,
        set_saddr,
        set_sport,
        set_daddr,
        set_dport,
        set_state,
        set_uid,
        set_inode,
        set_pid,
        set_task,
        set_cmdline,
        set_cong,
        set_shutdown,
        set_recv_q,
        set_send_q,
        set_timer,
        set_timer_expires_ms,
        set_timer_retrans,
        set_ifindex,
        set_tos,
        set_tclass,
        set_v6only,
        set_mark,
        set_cgroup_id,
        set_cookie,
        set_skmem,
        set_info,
    ) = (set_[name] for name in _CONN_FIELDS)
    cache = text_cache
    decode = decode_c_string
    families = _FAMILIES
    states = _STATES
    timers = _TIMERS
    info_from_raw = _info_from_raw
    accecn_layout = ACCECN_LAYOUT
    skmem_from_raw = _skmem_from_raw
    out: list[Connection] = []
    append = out.append
    buf = ffi.buffer(conns, count * CONN_SIZE)
    for i, raw in enumerate(_CONN_STRUCT.iter_unpack(buf)):
        attrs = raw[i_attrs]
        c: Connection = _new(Connection)
        family = raw[i_family]
        set_family(c, families.get(family) or _family(family))
        saddr = raw[i_saddr]
        set_saddr(c, cache.get(saddr) or decode(saddr))
        set_sport(c, raw[i_sport])
        daddr = raw[i_daddr]
        set_daddr(c, cache.get(daddr) or decode(daddr))
        set_dport(c, raw[i_dport])
        set_state(c, states[raw[i_state]])
        set_uid(c, raw[i_uid])
        set_inode(c, raw[i_inode])
        pid = raw[i_pid]
        set_pid(c, pid)
        task = raw[i_task]
        set_task(c, cache.get(task) or decode(task))
        cmdline = None
        if with_cmdline and pid:
            ptr = conns[i].cmdline
            if ptr != ffi.NULL:
                cmdline = ffi.string(ptr).decode("utf-8", "surrogateescape")
        set_cmdline(c, cmdline)
        if attrs >> _ATTR_CONG & 1:
            cong = raw[i_cong]
            set_cong(c, cache.get(cong) or decode(cong))
        else:
            set_cong(c, None)
        shutdown = raw[i_shutdown]
        set_shutdown(c, None if shutdown == 0xFF else shutdown)
        set_recv_q(c, raw[i_rq])
        set_send_q(c, raw[i_wq])
        timer = raw[i_timer]
        set_timer(c, timers[timer] if timer in timers else _timer(timer))
        set_timer_expires_ms(c, raw[i_exp])
        set_timer_retrans(c, raw[i_retrans])
        set_ifindex(c, raw[i_ifindex])
        set_tos(c, raw[i_tos] if attrs >> _ATTR_TOS & 1 else None)
        set_tclass(c, raw[i_tclass] if attrs >> _ATTR_TCLASS & 1 else None)
        set_v6only(c, bool(raw[i_v6only]) if attrs >> _ATTR_SKV6ONLY & 1 else None)
        set_mark(c, raw[i_mark] if attrs >> _ATTR_MARK & 1 else None)
        set_cgroup_id(c, raw[i_cg] if attrs >> _ATTR_CGROUP_ID & 1 else None)
        set_cookie(c, raw[i_cookie])
        set_skmem(c, skmem_from_raw(raw[k0:k1], raw[i_skc]))
        set_info(c, info_from_raw(raw[s0:s1], raw[i_info_len], accecn_layout))
        append(c)
    return out


# ---- the query -----------------------------------------------------------------------


#: ss's names that differ from the kernel's (after "-" -> "_").
_SS_ALIASES = {"ESTAB": "ESTABLISHED", "UNCONN": "CLOSE"}


def _state_of(item: object) -> TcpState:
    if isinstance(item, bool):
        raise TypeError("a state must be a TcpState, its value or its name, not bool")
    if isinstance(item, str):
        key = re.sub(r"_(\d)$", r"\1", item.strip().upper().replace("-", "_"))
        try:
            state = TcpState[_SS_ALIASES.get(key, key)]
        except KeyError:
            names = ", ".join(s.name for s in sorted(STATES_ALL))
            raise ValueError(f"unknown TCP state {item!r}: one of {names} or 'all'") from None
    elif isinstance(item, int):
        if not 1 <= item <= 31:
            raise ValueError(f"a TCP state value must be between 1 and 31, not {item}")
        state = TcpState(item)
    else:
        raise TypeError(
            f"a state must be a TcpState, its value or its name, not {type(item).__name__}"
        )
    if state is TcpState.UNKNOWN:
        raise ValueError("TcpState.UNKNOWN is not a state the kernel lists")
    return state


def parse_states(states: StatesArg) -> int:
    """The ``TCPEVENT_STATE_BIT`` mask for ``states=`` (0: the C default,
    :data:`STATES_CONNECTED`)."""
    if states is None:
        return 0
    if isinstance(states, str) and states.strip().lower() == "all":
        return _MASK_ALL
    items: Iterable[object]
    if isinstance(states, (str, int)):
        items = (states,)
    elif isinstance(states, Iterable):
        items = states
    else:
        raise TypeError(
            "states must be a TcpState, its value or name, an iterable of them, 'all' "
            f"or None, not {type(states).__name__}"
        )
    mask = 0
    for item in items:
        if isinstance(item, str) and item.strip().lower() == "all":
            return _MASK_ALL
        mask |= 1 << int(_state_of(item))
    if not mask:
        raise ValueError("states is empty: pass None for connected sockets, or 'all'")
    return mask


def connections(
    family: FamilyArg = None,
    states: StatesArg = None,
    pid: int | Iterable[int] | None = None,
    with_process: bool = True,
    ports: int | Iterable[int] | None = None,
    with_cmdline: bool = False,
) -> list[Connection]:
    """The host's TCP sockets now, with their ``tcp_info``, in kernel order.

    - ``family``: None (both), ``socket.AF_INET``/``"ipv4"``, ``socket.AF_INET6``/``"ipv6"``;
    - ``states``: a :class:`TcpState` (or value, or name such as
      ``"established"``), an iterable of them, or ``"all"``; None:
      :data:`STATES_CONNECTED` (no listening sockets, no ``TIME_WAIT``);
    - ``pid``: only sockets held open by this process (or these, an
      iterable); implies finding owners;
    - ``with_process``: find each socket's owner (``pid``, ``task``) by
      scanning ``/proc/<pid>/fd``; False skips that work (``pid`` 0);
    - ``ports``: only sockets whose local or remote port is one of these;
    - ``with_cmdline``: also read the owner's command line.

    Needs no privilege; owners are found only in processes whose
    ``/proc/<pid>/fd`` we may read (same user, or ``CAP_SYS_PTRACE`` with
    ``CAP_DAC_READ_SEARCH``, as root has): others give ``pid`` 0. Raises
    ``ValueError``/``TypeError`` for bad arguments, a
    :class:`~tcpevent.TracerError` (:class:`~tcpevent.TracerPermissionError`
    for ``EPERM``/``EACCES``) when the kernel refuses.
    """
    fam = parse_family(family)
    mask = parse_states(states)
    pids = _id_list("pid", pid, 1, 2**32 - 1, "pid")
    port_list = _id_list("ports", ports, 1, 65535, "port")
    if not isinstance(with_process, bool) or not isinstance(with_cmdline, bool):
        raise TypeError("with_process and with_cmdline must be bools")

    q = ffi.new("struct tcpevent_conn_query *")
    lib = _core.lib
    lib.tcpevent_conn_query_init(q)
    q.family = fam
    q.states = mask
    keep = []
    if port_list:
        keep.append(ffi.new("uint16_t[]", port_list))
        q.ports = keep[-1]
        q.n_ports = len(port_list)
    if pids:
        keep.append(ffi.new("uint32_t[]", pids))
        q.pids = keep[-1]
        q.n_pids = len(pids)
    q.with_process = 1 if (with_process or with_cmdline) else 0
    q.with_cmdline = 1 if with_cmdline else 0

    out = ffi.new("struct tcpevent_conn **")
    count = ffi.new("size_t *")
    rc = lib.tcpevent_connections(q, out, count)
    if rc < 0:
        raise error_from_code(rc, _core.last_error())
    try:
        return connections_from_cdata(out[0], int(count[0]), with_cmdline)
    finally:
        lib.tcpevent_connections_free(out[0], count[0])
