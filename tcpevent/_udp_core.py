"""The UDP tracer's native core, typed: cffi's ``ffi``/``lib`` of ``libudpEvent.so``.

``tcpevent._udp_native`` is the cffi extension ``setup.py`` builds from
``csrc/include/udpevent.h``; the layout of ``struct udpevent_report`` and
the options' limits are read from it (the C header is their only
declaration), as :mod:`tcpevent._core` does for TCP.
"""

from __future__ import annotations

import struct
from typing import Any

from tcpevent._layout import Leaf, leaves, struct_for

try:
    from tcpevent._udp_native import ffi as _ffi  # type: ignore[import-not-found,unused-ignore]
    from tcpevent._udp_native import lib as _lib  # type: ignore[import-not-found,unused-ignore]
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "tcpevent's UDP core (tcpevent._udp_native) is not built or cannot load "
        f"libudpEvent.so: {exc}. Build it with `pip install -e . --no-build-isolation`."
    ) from exc

__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_MAX_FLOWS",
    "DEFAULT_QUEUE_SIZE",
    "MAX_FILTER",
    "MAX_FLOWS",
    "MAX_QUEUE_SIZE",
    "MIN_FLUSH_INTERVAL",
    "REPORT_FIELDS",
    "REPORT_FORMAT",
    "REPORT_LAYOUT",
    "REPORT_SIZE",
    "STATS_FIELDS",
    "ffi",
    "last_error",
    "lib",
]

ffi: Any = _ffi
lib: Any = _lib

DEFAULT_FLUSH_INTERVAL: float = int(lib.UDPEVENT_DEFAULT_FLUSH_INTERVAL_MS) / 1000
MIN_FLUSH_INTERVAL: float = int(lib.UDPEVENT_MIN_FLUSH_INTERVAL_MS) / 1000
DEFAULT_QUEUE_SIZE: int = int(lib.UDPEVENT_DEFAULT_QUEUE_SIZE)
MAX_QUEUE_SIZE: int = int(lib.UDPEVENT_MAX_QUEUE_SIZE)
DEFAULT_MAX_FLOWS: int = int(lib.UDPEVENT_DEFAULT_MAX_FLOWS)
MAX_FLOWS: int = int(lib.UDPEVENT_MAX_FLOWS)
MAX_FILTER: int = int(lib.UDPEVENT_MAX_FILTER)

#: ``struct udpevent_report`` member by member, as cffi compiled it.
REPORT_LAYOUT: list[Leaf] = leaves(ffi.typeof("struct udpevent_report"))
REPORT_FIELDS: tuple[str, ...] = tuple(leaf.name for leaf in REPORT_LAYOUT)
REPORT_SIZE: int = ffi.sizeof("struct udpevent_report")
REPORT_FORMAT: struct.Struct = struct_for(REPORT_LAYOUT, REPORT_SIZE)

#: Every field of ``struct udpevent_stats``, in declaration order.
STATS_FIELDS: tuple[str, ...] = tuple(
    name for name, _ in ffi.typeof("struct udpevent_stats").fields
)


def last_error() -> str:
    """The core's text for the last failure in this thread ("" if none)."""
    return str(ffi.string(lib.udpevent_last_error()).decode("utf-8", "replace")).rstrip()
