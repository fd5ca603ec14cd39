#!/usr/bin/env python3
"""The UDP program's two builds against each other, per program run
(kernel.bpf_stats_enabled, restored after): ``python3 benchmarks/udp_builds.py
[--sockets 5000] [--rounds 5]`` as root (docs/performance.md).

The builds differ only where a socket's storage is made (docs/udp.md
"Kernels"): its netns inode, and in the cgroup_skb programs its owner, are
read with bpf_probe_read_kernel() in the portable build. Three phases, in
one process with the tracer in it (``UDPEVENT_PORTABLE=1`` forces the
portable build), each build in turn, the order flipped every round:

1. sockets born before the tracer each send their first datagram (the
   storage is made in egress: netns and owner read there);
2. new sockets, each sending one datagram (the storage is made in
   cgroup/sock_create: the netns read there);
3. one connected socket's steady flow (the per-packet path alone).

The counts include every other packet and socket of the host meanwhile:
medians over rounds are printed.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from udp_bench import prog_stats

from tcpevent import UdpTracer

#: Read by libudpEvent.so when it loads (csrc/udp/udp_bpf.c).
PORTABLE_ENV = "UDPEVENT_PORTABLE"
Stats = dict[str, tuple[int, int]]


def per_run(before: Stats, after: Stats) -> dict[str, float]:
    out = {}
    for name, (cnt, ns) in after.items():
        c0, n0 = before.get(name, (0, 0))
        if cnt > c0:
            out[name] = (ns - n0) / (cnt - c0)
    return out


def drain(rx: socket.socket) -> None:
    try:
        while True:
            rx.recv(64)
    except BlockingIOError:
        pass


def one_round(build: str, sockets: int) -> dict[str, dict[str, float]]:
    if build == "portable":
        os.environ[PORTABLE_ENV] = "1"
    else:
        os.environ.pop(PORTABLE_ENV, None)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.setblocking(False)
    addr = rx.getsockname()
    early = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(sockets)]
    out = {}
    try:
        with UdpTracer(ports=[addr[1]], flush_interval=1):
            time.sleep(0.3)
            before = prog_stats()
            for s in early:
                s.sendto(b"x", addr)
                drain(rx)
            out["first send of a socket born before the tracer"] = per_run(before, prog_stats())
            before = prog_stats()
            for _ in range(sockets):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.sendto(b"x", addr)
                drain(rx)
            out["a new socket's one send"] = per_run(before, prog_stats())
            before = prog_stats()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect(addr)
                for _ in range(4 * sockets):
                    s.send(b"x" * 32)
                    drain(rx)
            out["steady flow"] = per_run(before, prog_stats())
    finally:
        for s in early:
            s.close()
        rx.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root", file=sys.stderr)
        return 1
    old = Path("/proc/sys/kernel/bpf_stats_enabled").read_text().strip()
    Path("/proc/sys/kernel/bpf_stats_enabled").write_text("1\n")
    runs: dict[str, list[dict[str, dict[str, float]]]] = {"default": [], "portable": []}
    try:
        for r in range(args.rounds):
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for build in order:
                runs[build].append(one_round(build, args.sockets))
    finally:
        Path("/proc/sys/kernel/bpf_stats_enabled").write_text(old + "\n")
    print(f"load average {os.getloadavg()[0]:.1f}; ns per run, medians of {args.rounds} rounds")
    for phase in runs["default"][0]:
        print(phase)
        for build, rounds in runs.items():
            progs = sorted({p for r in rounds for p in r[phase]})
            cells = (
                f"{p} {statistics.median(r[phase].get(p, 0.0) for r in rounds):.0f}" for p in progs
            )
            print(f"  {build:9s} " + ", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
