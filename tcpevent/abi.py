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

__all__ = ["EVENT_SIZE", "OFFSETS", "TcpEventT", "library_path", "load_library"]

EVENT_SIZE = 430

#: Byte offset of every field of ``struct tcp_event_t`` (packed).
OFFSETS: dict[str, int] = {
    "EventTime": 0,
    "pid": 8,
    "UserId": 12,
    "rx_b": 16,
    "tx_b": 24,
    "tcpi_segs_out": 32,
    "tcpi_segs_in": 36,
    "family": 40,
    "SPT": 42,
    "DPT": 44,
    "task": 46,
    "SADDR": 174,
    "DADDR": 302,
}


class TcpEventT(ctypes.Structure):
    """``struct tcp_event_t``, packed exactly as the C header packs it."""

    _pack_ = 1
    _fields_ = [
        ("EventTime", ctypes.c_uint64),
        ("pid", ctypes.c_uint32),
        ("UserId", ctypes.c_uint32),
        ("rx_b", ctypes.c_uint64),
        ("tx_b", ctypes.c_uint64),
        ("tcpi_segs_out", ctypes.c_uint32),
        ("tcpi_segs_in", ctypes.c_uint32),
        ("family", ctypes.c_uint16),
        ("SPT", ctypes.c_uint16),
        ("DPT", ctypes.c_uint16),
        ("task", ctypes.c_char * 128),
        ("SADDR", ctypes.c_char * 128),
        ("DADDR", ctypes.c_char * 128),
    ]


def library_path() -> Path:
    """Where this package keeps its ``libtcpEvent.so``."""
    return Path(__file__).resolve().parent / "lib" / "libtcpEvent.so"


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """Load ``libtcpEvent.so`` with the six calls' argument and return types set."""
    lib = ctypes.CDLL(str(path if path is not None else library_path()))
    lib.AddProbe.argtypes = [ctypes.c_char_p]
    lib.AddProbe.restype = None
    lib.setupBPF.argtypes = [ctypes.c_char_p]  # blocks until cleanup()
    lib.setupBPF.restype = ctypes.c_int
    lib.printCharArray.argtypes = [ctypes.c_char_p]
    lib.printCharArray.restype = None
    lib.getStatus.argtypes = []
    lib.getStatus.restype = ctypes.c_uint
    lib.DequeuePerfEvent.argtypes = []
    lib.DequeuePerfEvent.restype = TcpEventT
    lib.cleanup.argtypes = []
    lib.cleanup.restype = None
    lib.tcpevent_last_error.argtypes = []
    lib.tcpevent_last_error.restype = ctypes.c_char_p
    return lib
