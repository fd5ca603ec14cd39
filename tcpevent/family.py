"""Address families: the one table of the families events and connections
have, and what is derived from it (by number, by name, labels, endpoints).

The numbers are the C library's (``socket.AF_INET`` is ``<sys/socket.h>``'s
``AF_INET``, the value the kernel and the core write); the names are
``socket.AddressFamily``'s. Only the spellings are written here.
"""

from __future__ import annotations

import socket

__all__ = [
    "FAMILIES",
    "FAMILY_BY_NAME",
    "FAMILY_LABELS",
    "FAMILY_NAMES",
    "endpoint",
    "family_label",
    "family_name",
    "family_of",
]

#: Every family a socket of ours may have, with its spellings: the first is
#: its label (the exporter's ``family`` label), the others further names
#: ``family=`` accepts (besides the number and ``AF_*``, in any case).
_SPELLINGS: dict[socket.AddressFamily, tuple[str, ...]] = {
    socket.AF_INET: ("ipv4", "inet", "4"),
    socket.AF_INET6: ("ipv6", "inet6", "6"),
}

#: The address families of events and connections, by number.
FAMILIES: dict[int, socket.AddressFamily] = {int(f): f for f in _SPELLINGS}
#: Their names in dicts and JSON (``"AF_INET"``, ``"AF_INET6"``).
FAMILY_NAMES: dict[int, str] = {int(f): f.name for f in _SPELLINGS}
#: Their short labels (``"ipv4"``, ``"ipv6"``).
FAMILY_LABELS: dict[int, str] = {int(f): names[0] for f, names in _SPELLINGS.items()}
#: Every lower-case name of a family (``"ipv4"``, ``"inet"``, ``"af_inet"``, ``"4"``...).
FAMILY_BY_NAME: dict[str, socket.AddressFamily] = {
    name: f for f, names in _SPELLINGS.items() for name in (*names, f.name.lower())
}


def family_of(value: int) -> socket.AddressFamily:
    """The :class:`socket.AddressFamily` of a number; one Python does not
    know stays a plain int (0: no event)."""
    try:
        return FAMILIES.get(value) or socket.AddressFamily(value)
    except ValueError:
        return value  # type: ignore[return-value]


def family_name(value: int) -> str:
    """``"AF_INET"``, ``"AF_INET6"``, or the number as text."""
    return FAMILY_NAMES.get(int(value)) or str(int(value))


def family_label(value: int) -> str:
    """``"ipv4"``, ``"ipv6"``, or the number as text."""
    return FAMILY_LABELS.get(int(value)) or str(int(value))


def endpoint(family: int, addr: str, port: int) -> str:
    """``"addr:port"``, an IPv6 address in brackets (``"[::1]:8080"``)."""
    return f"[{addr}]:{port}" if family == socket.AF_INET6 else f"{addr}:{port}"
