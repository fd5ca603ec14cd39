"""Read C structs as whole buffers, with layouts taken from cffi's view of the headers.

The converters (:mod:`tcpevent._convert` for events, :mod:`tcpevent._conn_convert`
for live connections) unpack an array of C structs with one
:meth:`struct.Struct.iter_unpack` instead of reading cffi fields one by
one. The :class:`struct.Struct` is planned here, at import, from
``ffi.typeof(...)``: the C header is the only place a layout is written, and
a field added there is read without any change here.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple

__all__ = ["Leaf", "leaves", "struct_for"]

#: struct codes of the C types the headers use.
_CODES = {
    "int8_t": "b",
    "uint8_t": "B",
    "int16_t": "h",
    "uint16_t": "H",
    "int32_t": "i",
    "uint32_t": "I",
    "int64_t": "q",
    "uint64_t": "Q",
    "int": "i",
    "char": "c",
}


class Leaf(NamedTuple):
    """One plain member of a struct, nested ones flattened."""

    name: str
    """Dotted member name (``"skmem.rcvbuf"``); a bitfield byte is ``"bits@<offset>"``."""
    offset: int
    """Byte offset from the start of the outermost struct."""
    code: str
    """Its :mod:`struct` code (``"Q"``, ``"16s"``...)."""


def leaves(ctype: Any, base: int = 0, prefix: str = "") -> list[Leaf]:
    """Every plain member of the cffi struct type ``ctype``, in offset order.

    A byte of bitfields appears once, as ``"<prefix>bits@<offset>"`` (code
    ``B``); ``char`` arrays are ``"<n>s"``; other arrays (``reserved[]``) and
    pointers are left out: read as padding.
    """
    out: list[Leaf] = []
    seen_bits: set[int] = set()
    for name, field in ctype.fields:
        t = field.type
        off = base + field.offset
        if field.bitsize >= 0:
            if t.cname != "uint8_t":  # pragma: no cover - header changed
                raise ImportError(f"tcpevent: unexpected bitfield type {t.cname} of {name}")
            if off not in seen_bits:
                seen_bits.add(off)
                out.append(Leaf(f"{prefix}bits@{off - base}", off, "B"))
        elif t.kind == "struct":
            out.extend(leaves(t, off, f"{prefix}{name}."))
        elif t.kind == "array":
            if t.item.cname == "char":
                out.append(Leaf(prefix + name, off, f"{t.length}s"))
        elif t.kind == "primitive":
            out.append(Leaf(prefix + name, off, _CODES[t.cname]))
    return out


def struct_for(members: list[Leaf], size: int) -> struct.Struct:
    """A native-order, unaligned Struct reading ``members``, padding explicit."""
    fmt = "="
    pos = 0
    for leaf in members:
        if leaf.offset < pos:  # pragma: no cover - overlapping members
            raise ImportError(f"tcpevent: overlapping members at offset {leaf.offset}")
        if leaf.offset > pos:
            fmt += f"{leaf.offset - pos}x"
        fmt += leaf.code
        pos = leaf.offset + struct.calcsize("=" + leaf.code)
    if size > pos:
        fmt += f"{size - pos}x"
    s = struct.Struct(fmt)
    if s.size != size:  # pragma: no cover - a coding error
        raise ImportError(f"tcpevent: layout of {size} bytes read as {s.size}")
    return s
