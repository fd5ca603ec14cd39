"""The native core, typed: cffi's ``ffi``/``lib`` and the event layout.

``tcpevent._native`` is the cffi extension built by ``setup.py``; it has no
type stubs, so it is imported here, once, as :data:`ffi` and :data:`lib`
(typed ``Any``), and the rest of the package imports it from this module.

The layout of ``struct tcpevent_event`` and the limits of the options are
read from the compiled core (the C header is their only declaration).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from tcpevent._layout import Leaf, leaves, struct_for

try:
    from tcpevent._native import ffi as _ffi  # type: ignore[import-not-found,unused-ignore]
    from tcpevent._native import lib as _lib  # type: ignore[import-not-found,unused-ignore]
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "tcpevent's native core (tcpevent._native) is not built or cannot load "
        f"libtcpEvent.so: {exc}. Build it with `pip install -e . --no-build-isolation`."
    ) from exc

__all__ = [
    "DEFAULT_MAX_SOCKETS",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_RETRANSMIT_INTERVAL_US",
    "DEFAULT_RING_SIZE",
    "EVENT_FIELDS",
    "EVENT_FORMAT",
    "EVENT_LAYOUT",
    "EVENT_SIZE",
    "MAX_FILTER",
    "MAX_QUEUE_SIZE",
    "MAX_RING_SIZE",
    "MAX_SOCKETS",
    "STATS_FIELDS",
    "ffi",
    "last_error",
    "lib",
    "set_array",
]

#: cffi's FFI object of ``tcpevent._native``.
ffi: Any = _ffi
#: The ``tcpevent_*`` functions of ``libtcpEvent.so`` (cffi API mode: every
#: call releases the GIL).
lib: Any = _lib

# The limits and defaults of the options: defined in tcpevent.h.
DEFAULT_QUEUE_SIZE: int = int(lib.TCPEVENT_DEFAULT_QUEUE_SIZE)
DEFAULT_RING_SIZE: int = int(lib.TCPEVENT_DEFAULT_RING_SIZE)
DEFAULT_MAX_SOCKETS: int = int(lib.TCPEVENT_DEFAULT_MAX_SOCKETS)
DEFAULT_RETRANSMIT_INTERVAL_US: int = int(lib.TCPEVENT_DEFAULT_RETRANSMIT_INTERVAL_US)
MAX_QUEUE_SIZE: int = int(lib.TCPEVENT_MAX_QUEUE_SIZE)
MAX_RING_SIZE: int = int(lib.TCPEVENT_MAX_RING_SIZE)
MAX_SOCKETS: int = int(lib.TCPEVENT_MAX_SOCKETS)
MAX_FILTER: int = int(lib.TCPEVENT_MAX_FILTER)

#: ``struct tcpevent_event`` member by member, as cffi compiled it from the
#: header (``reserved`` padding left out): the only declaration is in C.
EVENT_LAYOUT: list[Leaf] = leaves(ffi.typeof("struct tcpevent_event"))
EVENT_FIELDS: tuple[str, ...] = tuple(leaf.name for leaf in EVENT_LAYOUT)
EVENT_SIZE: int = ffi.sizeof("struct tcpevent_event")
#: Reads one event from a buffer (native byte order, explicit padding).
EVENT_FORMAT: struct.Struct = struct_for(EVENT_LAYOUT, EVENT_SIZE)

#: Every field of ``struct tcpevent_stats``, in declaration order.
STATS_FIELDS: tuple[str, ...] = tuple(
    name for name, _ in ffi.typeof("struct tcpevent_stats").fields
)


def set_array(cstruct: Any, name: str, values: Sequence[int], keep: list[Any]) -> None:
    """Point the member ``name`` of ``*cstruct`` at a new C array of ``values``
    and set its count, the member ``n_<name>``; nothing for no values.

    The array's type is the member's (``const uint32_t *pids`` -> ``uint32_t[]``).
    ``keep`` takes the array: it must live as long as the struct is read.
    """
    if not values:
        return
    member = dict(ffi.typeof(cstruct).item.fields)[name]
    keep.append(ffi.new(ffi.getctype(member.type.item, "[]"), values))
    setattr(cstruct, name, keep[-1])
    setattr(cstruct, f"n_{name}", len(values))


def last_error() -> str:
    """The core's text for the last failure in this thread ("" if none)."""
    return str(ffi.string(lib.tcpevent_last_error()).decode("utf-8", "replace")).rstrip()
