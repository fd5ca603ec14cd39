"""The original ABIs through ctypes, as both libraries load them.

``tcpevent.abi`` (libtcpEvent.so, ``struct tcp_event_t``) and
``tcpevent.udp_abi`` (libudpEvent.so, ``struct udp_event_t``) mirror a packed
struct of integers and char arrays in ctypes and set their legacy calls'
argument and return types; both read the struct and the calls' types from
cffi's compiled view of their legacy header, so one mapping from C types to
ctypes serves both.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: ctypes' type of each C type the legacy headers use.
CTYPES: dict[str, Any] = {
    "uint16_t": ctypes.c_uint16,
    "uint32_t": ctypes.c_uint32,
    "uint64_t": ctypes.c_uint64,
    "int": ctypes.c_int,
    "unsigned int": ctypes.c_uint,
    "char *": ctypes.c_char_p,
    "void": None,
}


def ctypes_fields(ctype: Any) -> list[tuple[str, Any]]:
    """``_fields_`` of a ctypes mirror of a cffi struct of integers and char arrays."""
    out = []
    for name, field in ctype.fields:
        t = field.type
        if t.kind == "array" and t.item.cname == "char":
            out.append((name, ctypes.c_char * t.length))
        else:
            out.append((name, CTYPES[t.cname]))
    return out


def check_size(mirror: type[ctypes.Structure], size: int, module: str) -> None:
    """Raise ImportError unless the ctypes mirror is as large as the C struct."""
    if ctypes.sizeof(mirror) != size:  # pragma: no cover - a mapping error
        raise ImportError(
            f"{module}: {mirror.__name__} is {ctypes.sizeof(mirror)} bytes, not {size}"
        )


def library_path(name: str) -> Path:
    """Where this package keeps its library ``name`` (``tcpevent/lib/``)."""
    return Path(__file__).resolve().parent / "lib" / name


def load_library(
    path: str | Path,
    ffi: Any,
    fn_prefix: str,
    calls: Iterable[str],
    struct: Any,
    mirror: type[ctypes.Structure],
) -> ctypes.CDLL:
    """Load ``path`` with each call's argument and return types set from its
    ``<fn_prefix>_<call>_fn`` type in ``ffi``; ``struct`` (passed or returned
    by value) is given to ctypes as its mirror."""

    def ctype_of(t: Any) -> Any:
        return mirror if t is struct else CTYPES[t.cname]

    lib = ctypes.CDLL(str(path))
    for name in calls:
        fn = ffi.typeof(f"{fn_prefix}_{name}_fn *")
        call = getattr(lib, name)
        call.argtypes = [ctype_of(arg) for arg in fn.args]
        call.restype = ctype_of(fn.result)
    return lib
