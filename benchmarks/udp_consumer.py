#!/usr/bin/env python3
"""The UDP tracer as a benchmark consumer (the READY/pid/stop protocol of run.py).

Opens a :class:`tcpevent.UdpTracer` (all the host's flows, 1 s exports),
drains it in a thread, and on ``stop`` closes it and prints one JSON line:
reports, the target pid's datagrams each way, and its own CPU time.
"""

from __future__ import annotations

import json
import resource
import sys
import threading

from tcpevent import UdpTracer


def main() -> int:
    tracer = UdpTracer(flush_interval=1)
    target = 0
    counts = {"reports": 0, "tx_datagrams": 0, "rx_datagrams": 0, "rx_drops": 0}

    def drain() -> None:
        for flow in tracer:
            counts["reports"] += 1
            if flow.pid == target:
                counts["tx_datagrams"] += flow.tx_datagrams
                counts["rx_datagrams"] += flow.rx_datagrams
                counts["rx_drops"] += flow.rx_drops

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    print("READY", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["pid"]:
            target = int(words[1])
            print(f"PID {target}", flush=True)
        elif words[:1] == ["stop"]:
            break
    tracer.close()
    thread.join(30)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stats = tracer.stats()
    out = {
        **counts,
        "dropped_queue": stats.dropped_queue,
        "untracked": stats.untracked,
        "cpu_user": usage.ru_utime,
        "cpu_sys": usage.ru_stime,
        "maxrss_kb": usage.ru_maxrss,
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
