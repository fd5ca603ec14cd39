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
from typing import Any

from tcpevent._udp_core import ffi

__all__ = ["EVENT_SIZE", "LEGACY_CALLS", "OFFSETS", "UdpEventT", "library_path", "load_library"]

_STRUCT = ffi.typeof("struct udp_event_t")

#: sizeof(struct udp_event_t): 190.
EVENT_SIZE: int = ffi.sizeof(_STRUCT)

#: Byte offset of every field of ``struct udp_event_t`` (packed), in order.
OFFSETS: dict[str, int] = {name: field.offset for name, field in _STRUCT.fields}

#: ctypes' type of each C type the legacy header uses.
_CTYPES: dict[str, Any] = {
    "uint16_t": ctypes.c_uint16,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "unsigned int": ctypes.c_uint,
    "void": None,
}


def _ctypes_fields(ctype: Any) -> list[tuple[str, Any]]:
    out = []
    for name, field in ctype.fields:
        t = field.type
        if t.kind == "array" and t.item.cname == "char":
            out.append((name, ctypes.c_char * t.length))
        else:
            out.append((name, _CTYPES[t.cname]))
    return out


class UdpEventT(ctypes.Structure):
    """``struct udp_event_t``, packed exactly as the C header packs it."""

    _pack_ = 1
    _fields_ = _ctypes_fields(_STRUCT)


if ctypes.sizeof(UdpEventT) != EVENT_SIZE:  # pragma: no cover - a mapping error
    raise ImportError(
        f"tcpevent.udp_abi: UdpEventT is {ctypes.sizeof(UdpEventT)} bytes, not {EVENT_SIZE}"
    )

#: The four calls of the original UDP ABI, with C linkage.
LEGACY_CALLS = ("AddProbe", "getStatus", "DequeuePerfEvent", "cleanup")


def _ctype_of(t: Any) -> Any:
    return UdpEventT if t is _STRUCT else _CTYPES[t.cname]


def library_path() -> Path:
    """Where this package keeps its ``libudpEvent.so``."""
    return Path(__file__).resolve().parent / "lib" / "libudpEvent.so"


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """Load ``libudpEvent.so`` with the four calls' argument and return types
    set (those of their ``udpevent_*_fn`` types in udpevent_legacy.h)."""
    lib = ctypes.CDLL(str(path if path is not None else library_path()))
    for name in LEGACY_CALLS:
        fn = ffi.typeof(f"udpevent_{name}_fn *")
        call = getattr(lib, name)
        call.argtypes = [_ctype_of(arg) for arg in fn.args]
        call.restype = _ctype_of(fn.result)
    return lib
