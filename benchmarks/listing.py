#!/usr/bin/env python3
"""What ``tcpevent.connections()`` costs: one process's loopback connections
listed with their owners, and the same listing without owners.

    python3 benchmarks/listing.py [PAIRS]     (default 1,000 pairs: 2,000 sockets)

Opens PAIRS connected loopback pairs in this process, then lists them
(``connections(pid=own pid)``) 20 times each way and prints the median wall
time of one listing and its CPU time per connection.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import time

import tcpevent

REPEAT = 20


def open_pairs(n: int) -> list[socket.socket]:
    server = socket.create_server(("127.0.0.1", 0), backlog=n)
    port = server.getsockname()[1]
    socks = [server]
    for _ in range(n):
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        socks += [client, accepted]
    return socks


def measure(with_process: bool, expected: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(REPEAT):
        wall, cpu = time.perf_counter(), time.process_time()
        conns = tcpevent.connections(pid=os.getpid(), with_process=with_process)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        if len(conns) != expected:
            raise SystemExit(f"listed {len(conns)} connections, expected {expected}")
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    socks = open_pairs(pairs)
    try:
        for with_process in (True, False):
            wall, cpu = measure(with_process, 2 * pairs)
            print(
                f"connections(pid=own, with_process={with_process}): {2 * pairs:,} sockets, "
                f"{wall * 1e3:.1f} ms a listing, {cpu / (2 * pairs) * 1e6:.2f} us CPU a connection"
            )
    finally:
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
