"""The original C ABI through ctypes: ``struct tcp_event_t`` and the six calls.

Existing ctypes code keeps working against this package's ``libtcpEvent.so``
by changing only the path it loads::

    from tcpevent import abi
    lib = abi.load_library()          # or ctypes.CDLL(abi.library_path())
    lib.AddProbe(None)
    ev = lib.DequeuePerfEvent()       # an abi.TcpEventT
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from tcpevent import _legacy_ctypes
from tcpevent._core import ffi

__all__ = ["EVENT_SIZE", "LEGACY_CALLS", "OFFSETS", "TcpEventT", "library_path", "load_library"]

# Everything below is read from cffi's compiled view of tcpevent_legacy.h,
# the one declaration of the struct and of the calls' types.
_STRUCT = ffi.typeof("struct tcp_event_t")

#: sizeof(struct tcp_event_t): 430.
EVENT_SIZE: int = ffi.sizeof(_STRUCT)

#: Byte offset of every field of ``struct tcp_event_t`` (packed), in order.
OFFSETS: dict[str, int] = {name: field.offset for name, field in _STRUCT.fields}


class TcpEventT(ctypes.Structure):
    """``struct tcp_event_t``, packed exactly as the C header packs it."""

    _pack_ = 1
    _fields_ = _legacy_ctypes.ctypes_fields(_STRUCT)


_legacy_ctypes.check_size(TcpEventT, EVENT_SIZE, __name__)

#: The six calls of the original ABI, with C linkage.
LEGACY_CALLS = (
    "AddProbe",
    "setupBPF",
    "printCharArray",
    "getStatus",
    "DequeuePerfEvent",
    "cleanup",
)


def library_path() -> Path:
    """Where this package keeps its ``libtcpEvent.so``."""
    return _legacy_ctypes.library_path("libtcpEvent.so")


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """Load ``libtcpEvent.so`` with the six calls' argument and return types
    set (those of their ``tcpevent_*_fn`` types in tcpevent_legacy.h), and
    ``tcpevent_last_error``'s."""
    lib = _legacy_ctypes.load_library(
        path if path is not None else library_path(),
        ffi,
        "tcpevent",
        LEGACY_CALLS,
        _STRUCT,
        TcpEventT,
    )
    lib.tcpevent_last_error.argtypes = []
    lib.tcpevent_last_error.restype = ctypes.c_char_p
    return lib
