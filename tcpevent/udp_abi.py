"""The original ``libudpEvent.so`` ABI via ctypes: ``struct udp_event_t`` and its four calls.

The packed 190-byte struct is declared in ``csrc/include/udpevent_legacy.h``;
:data:`OFFSETS` is the contract it is tested against, byte for byte.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

__all__ = ["EVENT_SIZE", "OFFSETS", "UdpEventT", "library_path", "load_library"]

#: sizeof(struct udp_event_t).
EVENT_SIZE = 190

#: Every field's offset in ``struct udp_event_t``, in declaration order.
OFFSETS = {
    "family": 0,
    "pid": 2,
    "UserId": 6,
    "EventTime": 10,
    "SPT": 18,
    "DPT": 20,
    "task": 22,
    "rx_b": 38,
    "tx_b": 46,
    "rxPkts": 54,
    "txPkts": 58,
    "SADDR": 62,
    "DADDR": 126,
}


class UdpEventT(ctypes.Structure):
    """``struct udp_event_t``, packed (``#pragma pack(1)``)."""

    _pack_ = 1
    _fields_ = [
        ("family", ctypes.c_uint16),
        ("pid", ctypes.c_uint32),
        ("UserId", ctypes.c_uint32),
        ("EventTime", ctypes.c_uint64),
        ("SPT", ctypes.c_uint16),
        ("DPT", ctypes.c_uint16),
        ("task", ctypes.c_char * 16),
        ("rx_b", ctypes.c_uint64),
        ("tx_b", ctypes.c_uint64),
        ("rxPkts", ctypes.c_uint32),
        ("txPkts", ctypes.c_uint32),
        ("SADDR", ctypes.c_char * 64),
        ("DADDR", ctypes.c_char * 64),
    ]


def library_path() -> Path:
    """Where this package keeps its ``libudpEvent.so``."""
    return Path(__file__).resolve().parent / "lib" / "libudpEvent.so"


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """Load ``libudpEvent.so`` with the four calls' argument and return types set."""
    lib = ctypes.CDLL(str(path if path is not None else library_path()))
    lib.AddProbe.argtypes = []
    lib.AddProbe.restype = None
    lib.getStatus.argtypes = []
    lib.getStatus.restype = ctypes.c_uint
    lib.DequeuePerfEvent.argtypes = []
    lib.DequeuePerfEvent.restype = UdpEventT
    lib.cleanup.argtypes = []
    lib.cleanup.restype = None
    return lib
