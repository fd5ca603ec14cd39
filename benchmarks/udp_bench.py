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

from run import BUILD, Tracer, fresh_netns, run_churn, sysctl  # noqa: E402

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


def order(names: list[str], r: int) -> list[str]:
    """The configurations of round ``r``: the order flips every round, so that
    whatever the first run of a round pays (the teardown of the previous
    round's namespace) falls on each alike."""
    return names if r % 2 == 0 else names[::-1]


def program_costs(churn: Path, datagrams: int, connections: int) -> dict[str, Any]:
    """run_time_ns / run_cnt of the UDP tracer's programs, from the kernel
    (kernel.bpf_stats_enabled, restored after): over a UDP flood, and over a
    TCP churn (what its skb hooks cost packets that are not UDP). The
    counts include every other packet of the host meanwhile."""
    out: dict[str, Any] = {}
    with sysctl("kernel.bpf_stats_enabled", "1"):
        for what in ("udp_flood", "tcp_churn"):
            tracer = udp_tracer()
            tracer.start()
            before = prog_stats()
            with fresh_netns(time_wait=False) as prefix:
                cmd = (
                    [str(FLOOD), "-n", str(datagrams)]
                    if what == "udp_flood"
                    else [str(churn), "-n", str(connections), "-t", "2"]
                )
                subprocess.run([*prefix, *cmd], check=True, capture_output=True)
            after = prog_stats()
            tracer.finish()
            rows = {}
            for name, (cnt, ns) in after.items():
                c0, n0 = before.get(name, (0, 0))
                if cnt > c0:
                    rows[name] = {"runs": cnt - c0, "ns_per_run": (ns - n0) / (cnt - c0)}
            out[what] = rows
            for name, row in rows.items():
                print(f"  {what:9s} {name:16s} {row['runs']:>10,} runs {row['ns_per_run']:7.1f} ns")
    return out


def prog_stats() -> dict[str, tuple[int, int]]:
    """(run_cnt, run_time_ns) of every loaded udpevent program."""
    text = subprocess.run(
        ["bpftool", "prog", "show", "--json"], check=True, capture_output=True, text=True
    ).stdout
    return {
        p["name"]: (p.get("run_cnt", 0), p.get("run_time_ns", 0))
        for p in json.loads(text)
        if p.get("name", "").startswith("udpevent")
    }


def flood(datagrams: int, rounds: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"untraced": [], "UDP tracer": []}
    for r in range(rounds):
        for name in order(list(runs), r):
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
        for name in order(list(runs), r):
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
    print("the UDP tracer's programs, per run (kernel.bpf_stats_enabled):", flush=True)
    out["programs"] = program_costs(churn, datagrams, connections)
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
