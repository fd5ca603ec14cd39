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
from typing import Any

from tcpevent._core import ffi

__all__ = ["EVENT_SIZE", "LEGACY_CALLS", "OFFSETS", "TcpEventT", "library_path", "load_library"]

# Everything below is read from cffi's compiled view of tcpevent_legacy.h,
# the one declaration of the struct and of the calls' types.
_STRUCT = ffi.typeof("struct tcp_event_t")

#: sizeof(struct tcp_event_t): 430.
EVENT_SIZE: int = ffi.sizeof(_STRUCT)

#: Byte offset of every field of ``struct tcp_event_t`` (packed), in order.
OFFSETS: dict[str, int] = {name: field.offset for name, field in _STRUCT.fields}

#: ctypes' type of each C type the legacy header uses.
_CTYPES: dict[str, Any] = {
    "uint16_t": ctypes.c_uint16,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "int": ctypes.c_int,
    "unsigned int": ctypes.c_uint,
    "char *": ctypes.c_char_p,
    "void": None,
}


def _ctypes_fields(ctype: Any) -> list[tuple[str, Any]]:
    """``_fields_`` of a ctypes mirror of a cffi struct of integers and char arrays."""
    out = []
    for name, field in ctype.fields:
        t = field.type
        if t.kind == "array" and t.item.cname == "char":
            out.append((name, ctypes.c_char * t.length))
        else:
            out.append((name, _CTYPES[t.cname]))
    return out


class TcpEventT(ctypes.Structure):
    """``struct tcp_event_t``, packed exactly as the C header packs it."""

    _pack_ = 1
    _fields_ = _ctypes_fields(_STRUCT)


if ctypes.sizeof(TcpEventT) != EVENT_SIZE:  # pragma: no cover - a mapping error
    raise ImportError(
        f"tcpevent.abi: TcpEventT is {ctypes.sizeof(TcpEventT)} bytes, not {EVENT_SIZE}"
    )

#: The six calls of the original ABI, with C linkage.
LEGACY_CALLS = (
    "AddProbe",
    "setupBPF",
    "printCharArray",
    "getStatus",
    "DequeuePerfEvent",
    "cleanup",
)


def _ctype_of(t: Any) -> Any:
    return TcpEventT if t is _STRUCT else _CTYPES[t.cname]


def library_path() -> Path:
    """Where this package keeps its ``libtcpEvent.so``."""
    return Path(__file__).resolve().parent / "lib" / "libtcpEvent.so"


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """Load ``libtcpEvent.so`` with the six calls' argument and return types
    set (those of their ``tcpevent_*_fn`` types in tcpevent_legacy.h), and
    ``tcpevent_last_error``'s."""
    lib = ctypes.CDLL(str(path if path is not None else library_path()))
    for name in LEGACY_CALLS:
        fn = ffi.typeof(f"tcpevent_{name}_fn *")
        call = getattr(lib, name)
        call.argtypes = [_ctype_of(arg) for arg in fn.args]
        call.restype = _ctype_of(fn.result)
    lib.tcpevent_last_error.argtypes = []
    lib.tcpevent_last_error.restype = ctypes.c_char_p
    return lib
