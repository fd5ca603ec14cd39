"""The native core, typed: cffi's ``ffi``/``lib`` and the event layout.

``tcpevent._native`` is the cffi extension built by ``setup.py``; it has no
type stubs, so it is imported here, once, as :data:`ffi` and :data:`lib`
(typed ``Any``), and the rest of the package imports it from this module.

The layout of ``struct tcpevent_event`` is checked against the format that
:mod:`tcpevent.event` unpacks with :mod:`struct` at import time: a core built
from a different header fails loudly here instead of yielding garbage later.
"""

from __future__ import annotations

import struct
from typing import Any

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
    "DEFAULT_RING_SIZE",
    "EVENT_FIELDS",
    "EVENT_FORMAT",
    "EVENT_SIZE",
    "STATS_FIELDS",
    "ffi",
    "last_error",
    "lib",
]

#: cffi's FFI object of ``tcpevent._native``.
ffi: Any = _ffi
#: The ``tcpevent_*`` functions of ``libtcpEvent.so`` (cffi API mode: every
#: call releases the GIL).
lib: Any = _lib

DEFAULT_QUEUE_SIZE: int = int(lib.TCPEVENT_DEFAULT_QUEUE_SIZE)
DEFAULT_RING_SIZE: int = int(lib.TCPEVENT_DEFAULT_RING_SIZE)
DEFAULT_MAX_SOCKETS: int = int(lib.TCPEVENT_DEFAULT_MAX_SOCKETS)

#: ``struct tcpevent_event`` field by field: (name, struct code, C offset).
#: The trailing ``reserved[4]`` is padding (``4x``).
_EVENT_LAYOUT: tuple[tuple[str, str, int], ...] = (
    ("time_ns", "Q", 0),
    ("lifetime_ns", "Q", 8),
    ("rx_bytes", "Q", 16),
    ("tx_bytes", "Q", 24),
    ("pid", "I", 32),
    ("uid", "I", 36),
    ("segs_out", "I", 40),
    ("segs_in", "I", 44),
    ("rtt_us", "I", 48),
    ("retrans", "I", 52),
    ("family", "H", 56),
    ("sport", "H", 58),
    ("dport", "H", 60),
    ("kind", "B", 62),
    ("state", "B", 63),
    ("task", "16s", 64),
    ("saddr", "46s", 80),
    ("daddr", "46s", 126),
)
EVENT_FIELDS: tuple[str, ...] = tuple(name for name, _, _ in _EVENT_LAYOUT)
#: Native byte order, no implicit alignment: every offset is explicit above.
EVENT_FORMAT = struct.Struct("=" + "".join(code for _, code, _ in _EVENT_LAYOUT) + "4x")
EVENT_SIZE: int = EVENT_FORMAT.size

#: Every field of ``struct tcpevent_stats``, in declaration order.
STATS_FIELDS: tuple[str, ...] = tuple(
    name for name, _ in ffi.typeof("struct tcpevent_stats").fields
)


def _check_layout() -> None:
    """Fail at import if ``struct tcpevent_event`` is not what we unpack."""
    problems = []
    if ffi.sizeof("struct tcpevent_event") != EVENT_SIZE:
        problems.append(
            f"sizeof is {ffi.sizeof('struct tcpevent_event')}, the unpacker expects {EVENT_SIZE}"
        )
    offset = 0
    for name, code, expected in _EVENT_LAYOUT:
        actual = ffi.offsetof("struct tcpevent_event", name)
        size = ffi.sizeof(
            ffi.typeof("struct tcpevent_event").fields[EVENT_FIELDS.index(name)][1].type
        )
        if actual != expected or expected != offset or size != struct.calcsize("=" + code):
            problems.append(f"{name}: offset {actual} size {size}, expected {expected} {code!r}")
        offset = expected + struct.calcsize("=" + code)
    if problems:
        raise ImportError(
            "tcpevent: struct tcpevent_event of the native core does not match "
            "tcpevent/_core.py (rebuild, or update _EVENT_LAYOUT): " + "; ".join(problems)
        )


_check_layout()


def last_error() -> str:
    """The core's text for the last failure in this thread ("" if none)."""
    return str(ffi.string(lib.tcpevent_last_error()).decode("utf-8", "replace")).rstrip()
