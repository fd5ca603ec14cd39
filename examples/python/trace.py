#!/usr/bin/env python3
"""Print every TCP connection of the host as it closes (Ctrl-C to stop).

sudo python examples/python/trace.py            # everything
sudo python examples/python/trace.py 443 22     # only these ports
"""

from __future__ import annotations

import sys

import tcpevent


def main() -> int:
    ports = [int(arg) for arg in sys.argv[1:]] or None
    try:
        with tcpevent.Tracer(ports=ports) as tracer:
            print(f"{'PID':>7} {'COMM':<16} {'LOCAL':<30} {'REMOTE':<30} {'RX':>9} {'TX':>9}")
            for ev in tracer:
                print(
                    f"{ev.pid:>7} {ev.task:<16} {ev.source:<30} {ev.destination:<30} "
                    f"{ev.rx_bytes:>9} {ev.tx_bytes:>9}"
                )
    except tcpevent.TracerPermissionError as exc:
        print(exc, file=sys.stderr)  # names the missing capability and the remedy
        return 77
    except KeyboardInterrupt:
        pass  # leaving the with block detached everything
    return 0


if __name__ == "__main__":
    sys.exit(main())
