"""The C enums of the public headers as Python tables, read once through cffi.

The headers are the only place the values are written: ``enum tcpevent_kind``
(``tcpevent_record.h``), ``enum tcpevent_direction`` and the
``TCPEVENT_EVENT_*`` bits (``tcpevent.h``), ``enum tcpevent_tcp_state`` and
``enum tcpevent_conn_timer`` (``tcpevent_conn.h``), ``enum tcpevent_cause``
(``tcpevent_record.h``). A member added there
appears here, and so in :class:`~tcpevent.TcpState`, ``TcpEvent.kind``,
``Tracer(events=...)`` and ``Connection.timer``, without an edit in Python.
Everything is computed at import: nothing here costs anything per event.
"""

from __future__ import annotations

from tcpevent._core import ffi, lib

__all__ = [
    "CAUSES",
    "CAUSE_NAMES",
    "CONN_TIMERS",
    "DIRECTIONS",
    "DIRECTION_NAMES",
    "EVENT_BITS",
    "HEALTH_KINDS",
    "KINDS",
    "KIND_NAMES",
    "TCP_STATES",
    "enum_members",
]


def enum_members(ctype: str, prefix: str) -> dict[str, int]:
    """A C enum's members without ``prefix``, in value order
    (``enum_members("enum tcpevent_kind", "TCPEVENT_KIND_")`` ->
    ``{"CLOSE": 0, "SNAPSHOT": 1, ...}``)."""
    members = ffi.typeof(ctype).relements.items()
    return {
        name[len(prefix) :]: int(value)
        for name, value in sorted(members, key=lambda item: item[1])
        if name.startswith(prefix)
    }


def _names_by_value(members: dict[str, int]) -> tuple[str, ...]:
    """Value -> name for the 256 values of a byte; an unknown value is ``"<n>"``."""
    names = {value: name for name, value in members.items()}
    return tuple(names.get(i, str(i)) for i in range(256))


#: Why an event was made, by name (``TcpEvent.kind``): ``{"close": 0, ...}``.
KINDS: dict[str, int] = {
    name.lower(): value
    for name, value in enum_members("enum tcpevent_kind", "TCPEVENT_KIND_").items()
}
#: ``struct tcpevent_event.kind`` -> ``TcpEvent.kind``.
KIND_NAMES: tuple[str, ...] = _names_by_value(KINDS)


#: The kinds ``Tracer(events=...)`` may ask for, each with its
#: ``TCPEVENT_EVENT_*`` bit: every kind the header gives a bit (snapshots
#: have an option of their own), in the enum's order.
def _event_bits(name: str) -> int | None:
    """``TCPEVENT_EVENT_<NAME>`` of tcpevent.h, or None if it has none."""
    bits = getattr(lib, f"TCPEVENT_EVENT_{name.upper()}", None)
    return None if bits is None else int(bits)


EVENT_BITS: dict[str, int] = {
    name: bits for name in KINDS if (bits := _event_bits(name)) is not None
}

#: The kinds that tell what a connection goes through (docs/health.md):
#: those of ``TCPEVENT_EVENT_HEALTH``.
HEALTH_KINDS: frozenset[str] = frozenset(
    name for name, bit in EVENT_BITS.items() if bit & (_event_bits("health") or 0)
)

#: Which side of a connection an event is about (``TcpEvent.direction``).
DIRECTIONS: dict[str, int] = {
    name.lower(): value
    for name, value in enum_members("enum tcpevent_direction", "TCPEVENT_DIRECTION_").items()
}
#: ``struct tcpevent_event.direction`` -> ``TcpEvent.direction``.
DIRECTION_NAMES: tuple[str, ...] = _names_by_value(DIRECTIONS)

#: Of a retransmit or reset event, what kind (``TcpEvent.cause``).
CAUSES: dict[str, int] = {
    name.lower(): value
    for name, value in enum_members("enum tcpevent_cause", "TCPEVENT_CAUSE_").items()
}
#: ``struct tcpevent_event.cause`` -> ``TcpEvent.cause``.
CAUSE_NAMES: tuple[str, ...] = _names_by_value(CAUSES)

#: The kernel's TCP states by name (``{"ESTABLISHED": 1, ...}``), as
#: ``tcpevent_conn.h`` copies them from ``include/net/tcp_states.h``.
TCP_STATES: dict[str, int] = enum_members("enum tcpevent_tcp_state", "TCPEVENT_TCP_")

#: The timer pending on a socket, by name (``Connection.timer``):
#: ``{"none": 0, "retransmit": 1, ...}``.
CONN_TIMERS: dict[str, int] = {
    name.lower(): value
    for name, value in enum_members("enum tcpevent_conn_timer", "TCPEVENT_TIMER_").items()
}
