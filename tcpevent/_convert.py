"""Fast conversion of an array of ``struct tcpevent_event`` to :class:`TcpEvent`.

The hot path of the library. Reading the cffi structs field by field costs
an attribute access per field and event; instead the whole array is read as
one buffer with :meth:`struct.Struct.iter_unpack` (the layout comes from the
C header: :data:`tcpevent._core.EVENT_LAYOUT`), and each event is built
without running the frozen dataclass's ``__init__``: it is made as an
instance of a mutable twin of :class:`TcpEvent` (the same slots, so the same
memory layout), whose plain attribute stores Python specializes, then given
its real class. The loop doing it is generated once, at import, from that
layout (as :mod:`dataclasses` generates ``__init__``), so a field added to
the header needs no code here. Text fields repeat (a handful of addresses
and command names), so their decoding is memoized.
"""

from __future__ import annotations

from typing import Any, Callable

from tcpevent._core import EVENT_FIELDS, EVENT_FORMAT, EVENT_LAYOUT, EVENT_SIZE, ffi
from tcpevent._enums import CAUSE_NAMES, DIRECTION_NAMES, KIND_NAMES
from tcpevent.cgroups import cgroup_path
from tcpevent.event import TcpEvent, TcpState
from tcpevent.family import FAMILIES, family_of

__all__ = ["STORED_FIELDS", "decode_c_string", "events_from_buffer", "text_cache"]

#: TcpEvent's fields that are not struct tcpevent_event's: the path of its
#: cgroup, filled from the tracer's names (tcpevent._cgroup_names).
STORED_FIELDS: tuple[str, ...] = ("cgroup_path",)

if set(TcpEvent.__slots__) != set(EVENT_FIELDS) | set(STORED_FIELDS):  # pragma: no cover
    raise ImportError(
        "tcpevent: TcpEvent's fields differ from struct tcpevent_event's: "
        f"missing {sorted(set(EVENT_FIELDS) - set(TcpEvent.__slots__))}, "
        f"extra {sorted(set(TcpEvent.__slots__) - set(EVENT_FIELDS) - set(STORED_FIELDS))}"
    )

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


#: How a C value becomes the attribute's value, for the fields that are not
#: plain numbers: an expression over ``{v}`` (the unpacked value) and the
#: names bound in :func:`_compile`. Text (``char[]``) fields are decoded.
_DECODERS: dict[str, str] = {
    "family": "(families.get({v}) or family_of({v}))",
    "kind": "kinds[{v}]",
    "state": "states[{v}]",
    "direction": "directions[{v}]",
    "cause": "causes[{v}]",
}
_TEXT = "(cache.get({v}) or decode({v}))"
#: Not in a tracer's names (None is a name: "no cgroup").
_ABSENT = object()
_NO_NAMES: dict[int, str | None] = {0: None}
_PLAIN = "{v}"


#: TcpEvent's mutable twin: the same bases and slots, so an instance may take
#: TcpEvent as its class once filled (never seen outside this module).
_Twin: type = type(
    "_TcpEventUnderConstruction", TcpEvent.__bases__, {"__slots__": TcpEvent.__slots__}
)


def _compile() -> Callable[..., list[TcpEvent]]:
    """The conversion loop for the rows of :data:`EVENT_FORMAT`, unrolled."""
    env: dict[str, Any] = {
        "new": object.__new__,
        "twin": _Twin,
        "cls": TcpEvent,
        "families": FAMILIES,
        "family_of": family_of,
        "kinds": KIND_NAMES,
        "directions": DIRECTION_NAMES,
        "causes": CAUSE_NAMES,
        "states": tuple(TcpState(value) for value in range(256)),
        "cache": text_cache,
        "decode": decode_c_string,
        "absent": _ABSENT,
    }
    body = []
    for i, leaf in enumerate(EVENT_LAYOUT):
        expr = _DECODERS.get(leaf.name) or (_TEXT if leaf.code.endswith("s") else _PLAIN)
        body.append(f"        ev.{leaf.name} = {expr.format(v=f'v{i}')}")
        if leaf.name == "cgroup_id":  # the stored path: a dict hit, mostly
            body.append(f"        path = known_get(v{i}, absent)")
            body.append("        if path is absent:")
            body.append(f"            path = miss(v{i})")
            body.append("        ev.cgroup_path = path")
    names = ", ".join(f"v{i}" for i in range(len(EVENT_LAYOUT)))
    binds = ", ".join(f"{name}={name}" for name in env)
    source = (
        f"def convert(rows, known_get, miss, *, {binds}):\n"
        "    out = []\n"
        "    append = out.append\n"
        f"    for ({names},) in rows:\n"
        "        ev = new(twin)\n" + "\n".join(body) + "\n"
        "        ev.__class__ = cls\n"
        "        append(ev)\n"
        "    return out\n"
    )
    scope: dict[str, Any] = {}
    exec(compile(source, "<tcpevent._convert>", "exec"), env, scope)
    convert: Callable[..., list[TcpEvent]] = scope["convert"]
    return convert


_convert_rows = _compile()


def events_from_buffer(
    buf: Any,
    count: int,
    known: dict[int, str | None] | None = None,
    miss: Callable[[int], str | None] = cgroup_path,
) -> list[TcpEvent]:
    """Convert the first ``count`` events of a cffi ``struct tcpevent_event[]``.

    Each event's :attr:`~TcpEvent.cgroup_path` is ``known[cgroup_id]``, or
    ``miss(cgroup_id)`` for an id not in ``known`` (a tracer's
    :class:`tcpevent._cgroup_names.CgroupPaths`; without one, the
    process-wide resolver)."""
    if count <= 0:
        return []
    known_get = (_NO_NAMES if known is None else known).get
    rows = EVENT_FORMAT.iter_unpack(ffi.buffer(buf, count * EVENT_SIZE))
    return _convert_rows(rows, known_get, miss)
