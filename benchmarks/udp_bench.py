#!/usr/bin/env python3
"""UDP benchmarks (``make bench`` runs them after the TCP ones; alone:
``python3 benchmarks/udp_bench.py [--rounds 3] [--datagrams 1000000]``).

1. A UDP flood (benchmarks/udp_flood.c: two threads, 32-byte datagrams on
   a connected loopback socket) untraced and with the UDP tracer attached
   (benchmarks/udp_consumer.py): datagrams/s, the ratio, and whether the
   tracer counted every datagram.
2. What the UDP tracer's cgroup skb hooks cost traffic that is not UDP:
   the TCP connection churn (benchmarks/churn.c) with and without the UDP
   tracer attached.

Configurations alternate within each round, each run in a network
namespace of its own; medians are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import BUILD, Tracer, fresh_netns, run_churn  # noqa: E402

FLOOD = BUILD / "udp_flood"


def build() -> Path:
    BUILD.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["cc", "-O2", "-Wall", "-Wextra", "-pthread", "-o", str(FLOOD), str(HERE / "udp_flood.c")],
        check=True,
    )
    return FLOOD


def udp_tracer() -> Tracer:
    return Tracer("UDP tracer", [sys.executable, str(HERE / "udp_consumer.py")])


def flood_once(datagrams: int, tracer: Tracer | None) -> dict[str, Any]:
    with fresh_netns(time_wait=True) as prefix:
        if tracer:
            tracer.start()
        proc = subprocess.Popen(
            [*prefix, str(FLOOD), "-n", str(datagrams), "--wait"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdin is not None
        pid = proc.stdout.readline().split("pid=")[1].strip()
        if tracer:
            tracer.target(pid)
        proc.stdin.write("\n")
        proc.stdin.flush()
        result: dict[str, Any] = {"flood": json.loads(proc.stdout.read().strip().splitlines()[-1])}
        proc.wait()
        if tracer:
            time.sleep(0.2)  # the release of its sockets is reported
            result["tracer"] = tracer.finish()
        return result


def flood(datagrams: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"untraced": [], "UDP tracer": []}
    for r in range(rounds):
        for name in runs:
            result = flood_once(datagrams, udp_tracer() if name != "untraced" else None)
            runs[name].append(result)
            print(f"  round {r + 1} {name:12s} {result['flood']['rate']:11,.0f} datagrams/s")
            time.sleep(0.5)
    base = statistics.median(r["flood"]["rate"] for r in runs["untraced"])
    traced = statistics.median(r["flood"]["rate"] for r in runs["UDP tracer"])
    counted = [
        (
            r["tracer"]["tx_datagrams"],
            r["flood"]["sent"],
            r["tracer"]["rx_datagrams"],
            r["flood"]["received"],
        )
        for r in runs["UDP tracer"]
    ]
    cpu = [
        (r["tracer"]["cpu_user"] + r["tracer"]["cpu_sys"]) / r["flood"]["seconds"]
        for r in runs["UDP tracer"]
    ]
    return {
        "untraced": base,
        "traced": traced,
        "ratio": traced / base,
        "counted_tx_sent_rx_received": counted,
        "tracer_cpu_share": statistics.median(cpu),
        "runs": runs,
    }


def tcp_churn(churn: Path, connections: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[float]] = {"untraced": [], "UDP tracer attached": []}
    args = ["-n", str(connections), "-t", "2"]
    for r in range(rounds):
        for name in runs:
            tracer = udp_tracer() if name != "untraced" else None
            rate = run_churn(churn, args, tracer, time_wait=False)["churn"]["rate"]
            runs[name].append(rate)
            print(f"  round {r + 1} {name:20s} {rate:9,.0f} conn/s", flush=True)
            time.sleep(0.5)
    base = statistics.median(runs["untraced"])
    with_udp = statistics.median(runs["UDP tracer attached"])
    return {"untraced": base, "with_udp_tracer": with_udp, "ratio": with_udp / base, "runs": runs}


def run(churn: Path, rounds: int, datagrams: int, connections: int) -> dict[str, Any]:
    build()
    print(f"UDP flood ({datagrams:,} datagrams of 32 bytes, two threads):", flush=True)
    out: dict[str, Any] = {"flood": flood(datagrams, rounds)}
    f = out["flood"]
    print(
        f"  median untraced {f['untraced']:,.0f}/s, traced {f['traced']:,.0f}/s, "
        f"ratio {f['ratio']:.2f}; counted (tx, sent, rx, received): "
        f"{f['counted_tx_sent_rx_received']}; tracer CPU {100 * f['tracer_cpu_share']:.1f}%",
        flush=True,
    )
    print(f"TCP churn without TIME_WAIT ({connections:,} connections), UDP tracer attached:")
    out["tcp_churn"] = tcp_churn(churn, connections, rounds)
    t = out["tcp_churn"]
    print(
        f"  median untraced {t['untraced']:,.0f} conn/s, with the UDP tracer "
        f"{t['with_udp_tracer']:,.0f} conn/s, ratio {t['ratio']:.3f}",
        flush=True,
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--datagrams", type=int, default=1_000_000)
    parser.add_argument("--connections", type=int, default=100_000)
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("benchmarks need root", file=sys.stderr)
        return 1
    from run import build as build_tcp

    churn, _ = build_tcp()
    report = run(churn, args.rounds, args.datagrams, args.connections)
    report["load_before"] = os.getloadavg()
    out = HERE / "results" / "udp_latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
