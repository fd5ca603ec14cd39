"""The running kernel's names of drop and reset reasons, read from its BTF
by the core (``tcpevent_reason_name()``), memoized."""

from __future__ import annotations

from functools import lru_cache

from tcpevent._core import ffi, lib

__all__ = ["reason_name"]

_KINDS = {"drop": lib.TCPEVENT_KIND_DROP, "reset": lib.TCPEVENT_KIND_RESET}


@lru_cache(maxsize=1024)
def reason_name(kind: str, value: int) -> str | None:
    """``enum skb_drop_reason`` (``kind="drop"``) or ``enum sk_rst_reason``
    (``"reset"``) value ``value`` by name, prefix left out
    (``"TCP_LISTEN_OVERFLOW"``); None if this kernel does not name it."""
    code = _KINDS.get(kind)
    if code is None:
        return None
    name = ffi.string(lib.tcpevent_reason_name(code, value)).decode("ascii", "replace")
    return name or None
