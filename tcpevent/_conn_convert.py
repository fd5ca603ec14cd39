"""The core's ``struct tcpevent_conn[]`` as :class:`~tcpevent.connection.Connection` objects.

Table-driven: the layout is cffi's view of ``tcpevent_conn.h`` (planned by
:mod:`tcpevent._layout`), and each dataclass field names the C member it
comes from and how its value is decoded. A listing converts each socket
once, so clarity wins over unrolling here. A ``tcp_info`` field the kernel
did not send (one that does not end within ``info_len``) is ``None``,
decided from the member's offset and size, never read as whatever the
buffer holds there.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, NamedTuple

from tcpevent._convert import decode_c_string, text_cache
from tcpevent._core import ffi, lib
from tcpevent._enums import CONN_TIMERS
from tcpevent._layout import leaves, struct_for
from tcpevent.connection import Connection, SocketMemory, TcpInfo
from tcpevent.event import TcpState
from tcpevent.family import family_of

__all__ = [
    "ACCECN_LAYOUT",
    "INFO_C_NAMES",
    "connections_from_cdata",
    "tcp_info_from_cdata",
]

_CONN_T = ffi.typeof("struct tcpevent_conn")
_INFO_T = ffi.typeof("struct tcpevent_tcp_info")
_CONN_SIZE: int = ffi.sizeof(_CONN_T)
_INFO_SIZE: int = ffi.sizeof(_INFO_T)

# ---- tcp_info -------------------------------------------------------------------------

#: TcpInfo field -> ``struct tcpevent_tcp_info`` member, where the names differ
#: by more than the ``tcpi_`` prefix (the unit goes into the Python name).
INFO_C_NAMES: dict[str, str] = {
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
#: tcp_info members that are not TcpInfo fields (``tcpi_state`` is Connection.state).
_INFO_SKIPPED = frozenset({"tcpi_state"})

_INFO_FIELDS: tuple[str, ...] = tuple(TcpInfo.__dataclass_fields__)
_INFO_LEAVES = leaves(_INFO_T)
_INFO_STRUCT = struct_for(_INFO_LEAVES, _INFO_SIZE)


class _InfoField(NamedTuple):
    """How one TcpInfo field is read from the unpacked tcp_info leaves."""

    leaf: int  # index of its leaf (a bitfield's: its byte)
    shift: int  # bitfields only; else 0
    mask: int  # bitfields only; else -1 (all bits)
    end: int  # where the member ends in tcp_info: present iff end <= info_len
    is_bool: bool


def _info_plan() -> tuple[_InfoField, ...]:
    """One entry per TcpInfo field, in order; checks TcpInfo follows the C struct."""
    members = [(n, f) for n, f in _INFO_T.fields if n not in _INFO_SKIPPED]
    c_names = [n for n, _ in members]
    ours = [INFO_C_NAMES.get(n, "tcpi_" + n) for n in _INFO_FIELDS]
    if ours != c_names:  # pragma: no cover - header and dataclass disagree
        raise ImportError(
            "tcpevent: TcpInfo's fields differ from struct tcpevent_tcp_info's: "
            f"missing {sorted(set(c_names) - set(ours))}, extra {sorted(set(ours) - set(c_names))}"
            " (or out of order)"
        )
    index = {leaf.name: i for i, leaf in enumerate(_INFO_LEAVES)}
    bools = {n for n, f in TcpInfo.__dataclass_fields__.items() if "bool" in str(f.type)}
    plan = []
    for field, (c_name, member) in zip(_INFO_FIELDS, members):
        if member.bitsize >= 0:
            i = index[f"bits@{member.offset}"]
            shift, mask, end = member.bitshift, (1 << member.bitsize) - 1, member.offset + 1
        else:
            i, shift, mask = index[c_name], 0, -1
            end = member.offset + ffi.sizeof(member.type)
        plan.append(_InfoField(i, shift, mask, end, field in bools))
    if [p.end for p in plan] != sorted(p.end for p in plan):  # pragma: no cover
        raise ImportError("tcpevent: tcp_info members out of offset order")
    return tuple(plan)


_INFO_PLAN = _info_plan()
_INFO_SETTERS = tuple(TcpInfo.__dict__[name].__set__ for name in _INFO_FIELDS)


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


def _info_from_raw(raw: tuple[Any, ...], info_len: int, accecn_layout: str) -> TcpInfo | None:
    """TcpInfo from the unpacked leaves of one tcp_info."""
    if info_len <= 0:
        return None
    values: list[Any] = []
    for f in _INFO_PLAN:
        if f.end > info_len:
            values.append(None)
            continue
        value = (raw[f.leaf] >> f.shift) & f.mask
        values.append(bool(value) if f.is_bool else value)
    if accecn_layout != "u16" and values[-1] is not None:
        values[-2:] = _accecn_repacked(values[-2], values[-1], accecn_layout)
    info: TcpInfo = object.__new__(TcpInfo)
    for setter, value in zip(_INFO_SETTERS, values):
        setter(info, value)
    return info


def tcp_info_from_cdata(
    info: Any, info_len: int, accecn_layout: str | None = None
) -> TcpInfo | None:
    """A :class:`TcpInfo` from a cffi ``struct tcpevent_tcp_info *`` of which
    the kernel sent ``info_len`` bytes: fields past it are ``None`` whatever
    the struct holds there; ``info_len`` 0 gives ``None``. ``accecn_layout``:
    see :data:`ACCECN_LAYOUT` (None: the running kernel's)."""
    raw = _INFO_STRUCT.unpack(ffi.buffer(info, _INFO_SIZE))
    return _info_from_raw(raw, int(info_len), accecn_layout or ACCECN_LAYOUT)


# ---- the connection -------------------------------------------------------------------

_CONN_LEAVES = leaves(_CONN_T)
_CONN_STRUCT = struct_for(_CONN_LEAVES, _CONN_SIZE)
_CONN_INDEX = {leaf.name: i for i, leaf in enumerate(_CONN_LEAVES)}
_INFO_START = _CONN_INDEX["info." + _INFO_LEAVES[0].name]
_INFO_SLICE = slice(_INFO_START, _INFO_START + len(_INFO_LEAVES))
_SKMEM_FIELDS: tuple[str, ...] = tuple(SocketMemory.__dataclass_fields__)
_SKMEM_START = _CONN_INDEX["skmem." + _SKMEM_FIELDS[0]]
_SKMEM_SLICE = slice(_SKMEM_START, _SKMEM_START + len(_SKMEM_FIELDS))
if [leaf.name for leaf in _CONN_LEAVES[_SKMEM_SLICE]] != [
    "skmem." + n for n in _SKMEM_FIELDS
]:  # pragma: no cover - header and dataclass disagree
    raise ImportError("tcpevent: SocketMemory's fields differ from struct tcpevent_skmem's")

# Attribute numbers of the kernel's enum INET_DIAG_* (bits of
# tcpevent_conn.attrs), from <linux/inet_diag.h> as the core was built with.
_ATTR_CONG: int = lib.INET_DIAG_CONG
_ATTR_TOS: int = lib.INET_DIAG_TOS
_ATTR_TCLASS: int = lib.INET_DIAG_TCLASS
_ATTR_SKV6ONLY: int = lib.INET_DIAG_SKV6ONLY
_ATTR_MARK: int = lib.INET_DIAG_MARK
_ATTR_CGROUP_ID: int = lib.INET_DIAG_CGROUP_ID

# tcpevent_conn.timer -> Connection.timer (enum tcpevent_conn_timer; "none": None).
_TIMERS: dict[int, str | None] = {
    value: None if name == "none" else name for name, value in CONN_TIMERS.items()
}
#: tcpevent_conn.shutdown when the kernel did not send it.
_SHUTDOWN_ABSENT: int = lib.TCPEVENT_SHUTDOWN_ABSENT
_STATES: tuple[TcpState, ...] = tuple(TcpState(v) for v in range(256))

#: How a field is made from its C member's value and the socket's ``attrs``.
_Decode = Callable[[Any, int], Any]


def _plain(value: Any, attrs: int) -> Any:
    return value


def _text(value: bytes, attrs: int) -> str:
    return text_cache.get(value) or decode_c_string(value)


def _if_sent(attr: int, decode: _Decode = _plain) -> _Decode:
    """The value if the kernel sent attribute ``attr`` (its bit in attrs), else None."""

    def check(value: Any, attrs: int) -> Any:
        return decode(value, attrs) if attrs >> attr & 1 else None

    return check


#: Connection field -> (tcpevent_conn member, decoder). ``cmdline``,
#: ``skmem`` and ``info`` are made apart (a pointer, and nested structs).
_CONN_TABLE: dict[str, tuple[str, _Decode]] = {
    "family": ("family", lambda v, a: family_of(v)),
    "saddr": ("saddr", _text),
    "sport": ("sport", _plain),
    "daddr": ("daddr", _text),
    "dport": ("dport", _plain),
    "state": ("state", lambda v, a: _STATES[v]),
    "uid": ("uid", _plain),
    "inode": ("inode", _plain),
    "pid": ("pid", _plain),
    "task": ("task", _text),
    "cong": ("cong", _if_sent(_ATTR_CONG, _text)),
    "shutdown": ("shutdown", lambda v, a: None if v == _SHUTDOWN_ABSENT else v),
    "recv_q": ("rqueue", _plain),
    "send_q": ("wqueue", _plain),
    "timer": ("timer", lambda v, a: _TIMERS.get(v, f"timer_{v}")),
    "timer_expires_ms": ("expires_ms", _plain),
    "timer_retrans": ("retrans", _plain),
    "ifindex": ("ifindex", _plain),
    "tos": ("tos", _if_sent(_ATTR_TOS)),
    "tclass": ("tclass", _if_sent(_ATTR_TCLASS)),
    "v6only": ("v6only", _if_sent(_ATTR_SKV6ONLY, lambda v, a: bool(v))),
    "mark": ("mark", _if_sent(_ATTR_MARK)),
    "cgroup_id": ("cgroup_id", _if_sent(_ATTR_CGROUP_ID)),
    "cookie": ("cookie", _plain),
}
_APART = ("cmdline", "skmem", "info")
if set(_CONN_TABLE) | set(_APART) != set(Connection.__dataclass_fields__):  # pragma: no cover
    raise ImportError("tcpevent: Connection's fields and their conversion table differ")
_CONN_PLAN = tuple(
    (Connection.__dict__[field].__set__, _CONN_INDEX[member], decode)
    for field, (member, decode) in _CONN_TABLE.items()
)
_SET_CMDLINE = Connection.__dict__["cmdline"].__set__
_SET_SKMEM = Connection.__dict__["skmem"].__set__
_SET_INFO = Connection.__dict__["info"].__set__
_SKMEM_SETTERS = tuple(SocketMemory.__dict__[name].__set__ for name in _SKMEM_FIELDS)
_I_ATTRS, _I_PID = _CONN_INDEX["attrs"], _CONN_INDEX["pid"]
_I_SKMEM_COUNT, _I_INFO_LEN = _CONN_INDEX["skmem_count"], _CONN_INDEX["info_len"]


def _skmem_from_raw(raw: tuple[Any, ...], count: int) -> SocketMemory | None:
    """The first ``count`` entries were sent; the rest are None."""
    if count <= 0:
        return None
    mem: SocketMemory = object.__new__(SocketMemory)
    for i, setter in enumerate(_SKMEM_SETTERS):
        setter(mem, raw[i] if i < count else None)
    return mem


def connections_from_cdata(conns: Any, count: int, with_cmdline: bool = False) -> list[Connection]:
    """Convert the first ``count`` entries of a cffi ``struct tcpevent_conn[]``.

    ``with_cmdline`` reads each ``cmdline`` pointer (else ``cmdline`` is None).
    """
    if count <= 0:
        return []
    out: list[Connection] = []
    for i, raw in enumerate(_CONN_STRUCT.iter_unpack(ffi.buffer(conns, count * _CONN_SIZE))):
        attrs = raw[_I_ATTRS]
        c: Connection = object.__new__(Connection)
        for setter, index, decode in _CONN_PLAN:
            setter(c, decode(raw[index], attrs))
        cmdline = None
        if with_cmdline and raw[_I_PID]:
            ptr = conns[i].cmdline
            if ptr != ffi.NULL:
                cmdline = ffi.string(ptr).decode("utf-8", "surrogateescape")
        _SET_CMDLINE(c, cmdline)
        _SET_SKMEM(c, _skmem_from_raw(raw[_SKMEM_SLICE], raw[_I_SKMEM_COUNT]))
        _SET_INFO(c, _info_from_raw(raw[_INFO_SLICE], raw[_I_INFO_LEN], ACCECN_LAYOUT))
        out.append(c)
    return out
