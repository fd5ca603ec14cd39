"""Fast conversion of an array of ``struct tcpevent_event`` to :class:`TcpEvent`.

The hot path of the library. Reading the cffi structs field by field costs
about 18 attribute accesses per event; instead the whole array is read as one
buffer with :meth:`struct.Struct.iter_unpack` (layout checked in
:mod:`tcpevent._core`), and each event is built without running the frozen
dataclass's ``__init__`` (18 ``object.__setattr__`` calls): the slots'
descriptors are set directly. Text fields repeat (a handful of addresses and
command names), so their decoding is memoized.
"""

from __future__ import annotations

import socket
from typing import Any, Callable

from tcpevent._core import EVENT_FIELDS, EVENT_FORMAT, EVENT_SIZE, ffi
from tcpevent.event import TcpEvent, TcpState

__all__ = ["decode_c_string", "events_from_buffer"]

if set(TcpEvent.__slots__) != set(EVENT_FIELDS):  # pragma: no cover - a coding error
    raise ImportError("tcpevent: TcpEvent's fields differ from struct tcpevent_event's")

_Setter = Callable[[TcpEvent, Any], None]
_SETTERS: dict[str, _Setter] = {name: TcpEvent.__dict__[name].__set__ for name in EVENT_FIELDS}
_FAMILIES: dict[int, socket.AddressFamily] = {
    int(socket.AF_INET): socket.AF_INET,
    int(socket.AF_INET6): socket.AF_INET6,
}
_KINDS = ("close", "snapshot")
_STATES: tuple[TcpState, ...] = tuple(TcpState(value) for value in range(256))
_TEXT_CACHE_MAX = 4096
#: Memo of decode_c_string(): look a field up here first.
text_cache: dict[bytes, str] = {}


def decode_c_string(raw: bytes) -> str:
    """A C string field (which may hold stale bytes after its NUL), memoized."""
    text = raw.partition(b"\0")[0].decode("utf-8", "surrogateescape")
    if len(text_cache) >= _TEXT_CACHE_MAX:
        text_cache.clear()
    text_cache[raw] = text
    return text


def _family(value: int) -> socket.AddressFamily:
    try:
        return socket.AddressFamily(value)
    except ValueError:
        return value  # type: ignore[return-value]


def events_from_buffer(buf: Any, count: int) -> list[TcpEvent]:
    """Convert the first ``count`` events of a cffi ``struct tcpevent_event[]``."""
    if count <= 0:
        return []
    (
        set_time_ns,
        set_lifetime_ns,
        set_rx_bytes,
        set_tx_bytes,
        set_pid,
        set_uid,
        set_segs_out,
        set_segs_in,
        set_rtt_us,
        set_retrans,
        set_family,
        set_sport,
        set_dport,
        set_kind,
        set_state,
        set_task,
        set_saddr,
        set_daddr,
    ) = (_SETTERS[name] for name in EVENT_FIELDS)
    new = object.__new__
    cls = TcpEvent
    families = _FAMILIES
    states = _STATES
    cache = text_cache
    decode = decode_c_string
    out: list[TcpEvent] = []
    append = out.append
    for (
        time_ns,
        lifetime_ns,
        rx_bytes,
        tx_bytes,
        pid,
        uid,
        segs_out,
        segs_in,
        rtt_us,
        retrans,
        family,
        sport,
        dport,
        kind,
        state,
        task,
        saddr,
        daddr,
    ) in EVENT_FORMAT.iter_unpack(ffi.buffer(buf, count * EVENT_SIZE)):
        ev = new(cls)
        set_time_ns(ev, time_ns)
        set_lifetime_ns(ev, lifetime_ns)
        set_rx_bytes(ev, rx_bytes)
        set_tx_bytes(ev, tx_bytes)
        set_pid(ev, pid)
        set_uid(ev, uid)
        set_segs_out(ev, segs_out)
        set_segs_in(ev, segs_in)
        set_rtt_us(ev, rtt_us)
        set_retrans(ev, retrans)
        set_family(ev, families.get(family) or _family(family))
        set_sport(ev, sport)
        set_dport(ev, dport)
        set_kind(ev, _KINDS[kind] if kind < 2 else "close")
        set_state(ev, states[state])
        set_task(ev, cache.get(task) or decode(task))
        set_saddr(ev, cache.get(saddr) or decode(saddr))
        set_daddr(ev, cache.get(daddr) or decode(daddr))
        append(ev)
    return out
