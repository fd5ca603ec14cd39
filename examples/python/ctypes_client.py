#!/usr/bin/env python3
"""An existing-style ctypes client of libtcpEvent.so: plain ctypes, no tcpevent
package needed. It prints one JSON object per event until Ctrl-C.

    sudo python3 ctypes_client.py [/path/to/libtcpEvent.so]

The default path is the one the original documentation uses.
"""

import ctypes
import json
import signal
import sys
import threading
import time

SOFILE = "/opt/RealTimeKql/lib/libtcpEvent.so"


class TcpEvent(ctypes.Structure):
    _pack_ = 1  # the C header packs the struct: 430 bytes
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


def main() -> int:
    lib = ctypes.CDLL(sys.argv[1] if len(sys.argv) > 1 else SOFILE)
    lib.AddProbe.argtypes = [ctypes.c_char_p]
    lib.AddProbe.restype = None
    lib.getStatus.restype = ctypes.c_uint
    lib.DequeuePerfEvent.restype = TcpEvent
    lib.cleanup.restype = None

    def stop(signum, frame):
        lib.cleanup()  # wakes DequeuePerfEvent, which then returns family == 0

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    # ctypes releases the GIL during the call but Python runs signal handlers
    # only between bytecodes: dequeue on a thread so the main thread can.

    def consume():
        while True:
            ev = lib.DequeuePerfEvent()
            if ev.family == 0:  # cleanup() was called
                return
            record = {name: getattr(ev, name) for name, _ in TcpEvent._fields_}
            for name in ("task", "SADDR", "DADDR"):
                record[name] = record[name].decode(errors="replace")
            print(json.dumps(record), flush=True)

    lib.AddProbe(None)
    for _ in range(10):
        if lib.getStatus():
            break
        time.sleep(1)
    else:
        print("the tracer did not start; see the message above", file=sys.stderr)
        return 1
    worker = threading.Thread(target=consume)
    worker.start()
    while worker.is_alive():
        worker.join(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
