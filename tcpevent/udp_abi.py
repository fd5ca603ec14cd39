"""The original ``libudpEvent.so`` ABI via ctypes: ``struct udp_event_t`` and its four calls.

Existing ctypes code keeps working against this package's ``libudpEvent.so``::

    from tcpevent import udp_abi
    lib = udp_abi.load_library()
    lib.AddProbe()
    ev = lib.DequeuePerfEvent()       # a udp_abi.UdpEventT

The struct and the calls' types are read from cffi's compiled view of
``csrc/include/udpevent_legacy.h``, their one declaration.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

from tcpevent import _legacy_ctypes
from tcpevent._udp_core import ffi

__all__ = ["EVENT_SIZE", "LEGACY_CALLS", "OFFSETS", "UdpEventT", "library_path", "load_library"]

_STRUCT = ffi.typeof("struct udp_event_t")

#: sizeof(struct udp_event_t): 190.
EVENT_SIZE: int = ffi.sizeof(_STRUCT)

#: Byte offset of every field of ``struct udp_event_t`` (packed), in order.
OFFSETS: dict[str, int] = {name: field.offset for name, field in _STRUCT.fields}


class UdpEventT(ctypes.Structure):
    """``struct udp_event_t``, packed exactly as the C header packs it."""

    _pack_ = 1
    _fields_ = _legacy_ctypes.ctypes_fields(_STRUCT)


_legacy_ctypes.check_size(UdpEventT, EVENT_SIZE, __name__)

#: The four calls of the original UDP ABI, with C linkage.
LEGACY_CALLS = ("AddProbe", "getStatus", "DequeuePerfEvent", "cleanup")


def library_path() -> Path:
    """Where this package keeps its ``libudpEvent.so``."""
    return _legacy_ctypes.library_path("libudpEvent.so")


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """Load ``libudpEvent.so`` with the four calls' argument and return types
    set (those of their ``udpevent_*_fn`` types in udpevent_legacy.h)."""
    return _legacy_ctypes.load_library(
        path if path is not None else library_path(),
        ffi,
        "udpevent",
        LEGACY_CALLS,
        _STRUCT,
        UdpEventT,
    )
