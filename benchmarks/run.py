#!/usr/bin/env python3
"""The tcpevent benchmark suite (``make bench``).

In one invocation, side by side, alternating configurations within each
round so that machine noise hits all of them alike:

1. churn untraced (the ceiling);
2. churn with libtcpEvent.so attached and a C consumer draining
   ``DequeuePerfEvent`` (benchmarks/consumer.c), with the accept() hooks
   (the default) and without them (``TCPEVENT_NO_ACCEPT_HOOKS=1``);
3. churn with the Python ``Tracer`` draining, batch and single dequeue
   (benchmarks/py_consumer.py);
4. where bpftrace is installed, churn with a count-only bpftrace one-liner
   on the same tracepoint, as a reference point.

Then a lossy churn (its namespace's nftables dropping 1% of data segments):
untraced, Python with close events, and Python with the retransmit, reset
and drop events too (docs/health.md).

Each in two regimes: the default sysctls, and ``net.ipv4.tcp_max_tw_buckets
= 0`` (no TIME_WAIT: the churn runs about twice as fast and tracer cost
shows). Every churn runs in a network namespace of its own, made for it and
deleted after: each run starts without the TIME_WAIT sockets of the runs
before it (they would slow the next run's port search), and the host's
sysctls are never touched (tcp_max_tw_buckets is per namespace). The tracer
stays in the host namespace: the tracepoint sees every namespace.

Then raw dequeue throughput (a pre-filled queue drained by C single, Python
single and Python batch), close-to-dequeue latency at a fixed 10,000
connections/s, the BPF program's own cost per tracepoint hit
(kernel.bpf_stats_enabled, restored afterwards), what an attached tracer
costs other processes' system calls (benchmarks/syscalls.c), with and
without the accept() hooks, the Python conversion alone, ``tcpevent
ship`` shipping a churn into a real ClickHouse (benchmarks/ship.py: rows/s
and the shipper's CPU per event), and the UDP benchmarks
(benchmarks/udp_bench.py: a UDP flood untraced and traced, TCP churn with
and without the UDP tracer attached). Last, every
speed target (benchmarks/targets.py) with what was measured and whether it
was met: the test suite asserts none of them.

    python3 benchmarks/run.py [--connections 100000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ship
import targets

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUILD = ROOT / "build" / "bench"
LIB = ROOT / "tcpevent" / "lib" / "libtcpEvent.so"
RESULTS = HERE / "results"
BPFTRACE_ONELINER = "tracepoint:sock:inet_sock_set_state { @hits = count(); }"
SYSCALLS = BUILD / "syscalls"
NO_HOOKS = "C, no accept hooks"  # a churn row only: it dequeues like "C consumer"
ALL_EVENTS = "Python, all events"  # a churn row only: connect, accept and close events
HEALTH = "Python, health events"  # a lossy row: close, retransmit, reset and drop events
#: The lossy churn's namespace drops 1 data segment in 100 (on the input
#: hook, as a lossy path would: TCP retransmits them) with this ruleset.
LOSSY_RULESET = """
table inet tcpevent_bench {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp flags & (syn | fin | rst) == 0 meta length > 100 numgen random mod 100 == 0 drop
  }
}
"""
#: The lossy churn: fewer connections (a lost segment costs its thread an
#: RTO or a probe), more threads, a payload of a few segments each way.
LOSSY_ARGS = ["-t", "8", "-s", "16384"]


def build() -> tuple[Path, Path]:
    BUILD.mkdir(parents=True, exist_ok=True)
    churn, consumer = BUILD / "churn", BUILD / "consumer"
    flags = ["-O2", "-Wall", "-Wextra", "-pthread"]
    subprocess.run(["cc", *flags, "-o", str(churn), str(HERE / "churn.c")], check=True)
    subprocess.run(
        ["cc", *flags, "-o", str(SYSCALLS), str(HERE / "syscalls.c")],
        check=True,
    )
    subprocess.run(
        [
            "cc",
            *flags,
            f"-I{ROOT / 'csrc' / 'include'}",
            "-o",
            str(consumer),
            str(HERE / "consumer.c"),
            "-ldl",
        ],
        check=True,
    )
    return churn, consumer


@contextlib.contextmanager
def sysctl(name: str, value: str | None) -> Iterator[None]:
    """Set a sysctl for the duration, and put the old value back."""
    path = Path("/proc/sys") / name.replace(".", "/")
    old = path.read_text().strip()
    if value is not None:
        path.write_text(value)
    try:
        yield
    finally:
        path.write_text(old)


@dataclass
class Tracer:
    """A consumer process speaking the READY/pid/go/stop protocol."""

    name: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.env},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"{self.name} did not start: {line!r}")

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def target(self, pid: str) -> None:
        """Tell the consumer whose events to count, and wait until it has
        taken it in: the churn must not start before (its first events
        would be counted as another process's)."""
        assert self.proc is not None and self.proc.stdout is not None
        self.send(f"pid {pid}")
        ack = self.proc.stdout.readline().strip()
        if ack != f"PID {pid}":
            raise RuntimeError(f"{self.name} did not take pid {pid}: {ack!r}")

    def finish(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        self.send("stop")
        out = self.proc.stdout.readline()
        self.proc.wait(30)
        return dict(json.loads(out))


class Bpftrace(Tracer):
    """bpftrace prints nothing useful until it exits; it counts, that's all.

    (bpftrace 0.17 complains that it cannot raise RLIMIT_MEMLOCK here; the
    kernel accounts BPF memory to the cgroup since 5.11, so it runs anyway.)
    """

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("Attaching"):
                return
        raise RuntimeError("bpftrace did not start")

    def send(self, line: str) -> None:
        pass

    def target(self, pid: str) -> None:
        pass  # counts every hit

    def finish(self) -> dict[str, Any]:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=30)
        hits = [int(w) for w in out.replace(":", " ").split() if w.isdigit()]
        return {"tracepoint_hits": hits[-1] if hits else 0}


@contextlib.contextmanager
def fresh_netns(time_wait: bool) -> Iterator[list[str]]:
    """A new network namespace with loopback up; yields the exec prefix."""
    name = f"tcpevent-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        if not time_wait:
            subprocess.run(
                ["ip", "netns", "exec", name, "sysctl", "-qw", "net.ipv4.tcp_max_tw_buckets=0"],
                check=True,
            )
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def run_churn(
    churn: Path, args: list[str], tracer: Tracer | None, time_wait: bool
) -> dict[str, Any]:
    """One churn run in a fresh namespace, the tracer told its pid first."""
    with fresh_netns(time_wait) as prefix:
        return _run_churn([*prefix, str(churn)], args, tracer)


def churn_waiting(
    churn: list[str], args: list[str], tracer: Tracer | None
) -> subprocess.Popen[str]:
    """A churn started with --wait, its pid given to the (started) tracer:
    it begins when a line is written to its stdin."""
    proc = subprocess.Popen(
        [*churn, "--wait", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready = dict(kv.split("=") for kv in proc.stdout.readline().split()[1:])
    if tracer:
        tracer.target(ready["pid"])
    return proc


def host_busy_ns() -> int:
    """CPU time of all CPUs not idle since boot (user, nice, system, irq,
    softirq, steal: /proc/stat's first line), in ns. Whatever else runs
    counts too: compare runs of the same work, over rounds."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    ticks = user + nice + system + irq + softirq + steal
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def children_cpu_ns() -> int:
    """User and system CPU time of this process's reaped children, in ns."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return int((ru.ru_utime + ru.ru_stime) * 1e9)


def _run_churn(churn: list[str], args: list[str], tracer: Tracer | None) -> dict[str, Any]:
    if tracer:
        tracer.start()
    proc = churn_waiting(churn, args, tracer)
    assert proc.stdout is not None and proc.stdin is not None
    busy, children = host_busy_ns(), children_cpu_ns()
    proc.stdin.write("\n")
    proc.stdin.flush()
    summary = json.loads(proc.stdout.read().strip().splitlines()[-1])
    proc.wait()
    # The churn's own CPU, the BPF programs run in its system calls
    # included (not those run in softirq: the host's figure has them).
    result: dict[str, Any] = {"churn": summary, "churn_cpu_ns": children_cpu_ns() - children}
    if tracer:
        result["tracer"] = tracer.finish()  # drained and detached
    # The whole host's: the churn, its kernel work and the BPF programs run
    # in it, the tracer's draining and detaching.
    result["host_cpu_ns"] = host_busy_ns() - busy
    return result


def configurations(consumer: Path, queue_size: int | None = None) -> dict[str, Tracer | None]:
    py = [sys.executable, str(HERE / "py_consumer.py")]
    qs = ["--queue-size", str(queue_size)] if queue_size else []
    env = {"TCPEVENT_QUEUE_SIZE": str(queue_size)} if queue_size else {}
    configs: dict[str, Tracer | None] = {
        "untraced": None,
        "C consumer": Tracer("C consumer", [str(consumer), str(LIB)], env),
        NO_HOOKS: Tracer(
            NO_HOOKS,
            [str(consumer), str(LIB)],
            {**env, "TCPEVENT_NO_ACCEPT_HOOKS": "1"},
        ),
        "Python batch": Tracer("Python batch", [*py, "--mode", "batch", *qs]),
        ALL_EVENTS: Tracer(
            ALL_EVENTS, [*py, "--mode", "batch", "--events", "connect,accept,close", *qs]
        ),
        "Python single": Tracer("Python single", [*py, "--mode", "single", *qs]),
    }
    if shutil.which("bpftrace"):
        configs["bpftrace count"] = Bpftrace(
            "bpftrace count", ["bpftrace", "-e", BPFTRACE_ONELINER]
        )
    return configs


def tracer_cpu(result: dict[str, Any]) -> float:
    t = result.get("tracer", {})
    return float(t.get("cpu_user", 0.0) + t.get("cpu_sys", 0.0))


def churn_comparison(
    churn: Path, consumer: Path, connections: int, rounds: int, time_wait: bool
) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    args = ["-n", str(connections), "-t", "2"]
    for r in range(rounds):
        for name, tracer in configurations(consumer).items():
            result = run_churn(churn, args, tracer, time_wait)
            runs.setdefault(name, []).append(result)
            rate = result["churn"]["rate"]
            print(f"  round {r + 1} {name:15s} {rate:9,.0f} conn/s", flush=True)
            time.sleep(0.5)  # the tracer's teardown (RCU) settles
    return runs


def lossy_comparison(churn: Path, connections: int, rounds: int) -> dict[str, list[dict[str, Any]]]:
    """The churn in a namespace that drops 1% of data segments: untraced,
    with close events only, and with the health events too (docs/health.md)."""
    py = [sys.executable, str(HERE / "py_consumer.py"), "--mode", "batch"]
    configs: dict[str, Tracer | None] = {
        "untraced": None,
        "Python batch": Tracer("Python batch", py),
        HEALTH: Tracer(HEALTH, [*py, "--events", "close,retransmit,reset,drop"]),
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    args = ["-n", str(connections), *LOSSY_ARGS]
    for r in range(rounds):
        for name, tracer in configs.items():
            with fresh_netns(time_wait=False) as prefix:
                subprocess.run([*prefix, "nft", "-f", "-"], input=LOSSY_RULESET, text=True)
                snmp = [*prefix, "cat", "/proc/net/snmp"]
                before = _retrans_segs(subprocess.run(snmp, capture_output=True, text=True).stdout)
                result = _run_churn([*prefix, str(churn)], args, tracer)
                after = _retrans_segs(subprocess.run(snmp, capture_output=True, text=True).stdout)
            result["retrans_segs"] = after - before
            runs.setdefault(name, []).append(result)
            rate = result["churn"]["rate"]
            print(
                f"  round {r + 1} {name:22s} {rate:9,.0f} conn/s "
                f"({after - before:,} segments retransmitted)",
                flush=True,
            )
            time.sleep(0.5)
    return runs


def _retrans_segs(snmp: str) -> int:
    lines = [line.split() for line in snmp.splitlines()]
    names, values = (line[1:] for line in lines if line[0] == "Tcp:")
    return int(dict(zip(names, values))["RetransSegs"])


def summarize(runs: dict[str, list[dict[str, Any]]], connections: int) -> list[dict[str, Any]]:
    base = statistics.median(r["churn"]["rate"] for r in runs["untraced"])
    rows = []
    for name, results in runs.items():
        rate = statistics.median(r["churn"]["rate"] for r in results)
        row: dict[str, Any] = {"config": name, "rate": rate, "ratio": rate / base}
        # CPU added per connection, each round against that round's untraced
        # run (the same connections): median, lowest, highest over rounds.
        # "processes": the churn's and the tracer's own CPU time (little
        # noise, no softirq); "host": every CPU's busy time (all of it,
        # whatever else runs included).
        untraced = runs["untraced"]
        procs = [
            (r["churn_cpu_ns"] + 1e9 * tracer_cpu(r) - u["churn_cpu_ns"]) / connections
            for r, u in zip(results, untraced)
        ]
        host = [
            (r["host_cpu_ns"] - u["host_cpu_ns"]) / connections for r, u in zip(results, untraced)
        ]
        row["added_cpu_ns_per_conn"] = {
            "processes": [statistics.median(procs), min(procs), max(procs)],
            "host": [statistics.median(host), min(host), max(host)],
        }
        tracers = [r["tracer"] for r in results if "tracer" in r]
        if tracers and "target_events" in tracers[0]:
            row["captured"] = [t["target_events"] for t in tracers]
            # Two sockets per connection, one per failed (retried) connect().
            row["expected"] = [2 * connections + r["churn"]["retries"] for r in results]
            row["dropped"] = [
                t["dropped_kernel"] + t["dropped_queue"] + t.get("missed", 0) for t in tracers
            ]
            events = [max(t["events"], 1) for t in tracers]
            row["cpu_ns_per_event"] = statistics.median(
                1e9 * tracer_cpu(r) / e for r, e in zip(results, events)
            )
            row["latency_p50_us"] = statistics.median(t["latency_p50_us"] for t in tracers)
            row["latency_p99_us"] = statistics.median(t["latency_p99_us"] for t in tracers)
            row["maxrss_kb"] = max(t["maxrss_kb"] for t in tracers)
            if "lifecycle_events" in tracers[0] and name == ALL_EVENTS:
                row["lifecycle"] = [t["lifecycle_events"] for t in tracers]
                row["handshake_p99_us"] = max(t["handshake_p99_us"] for t in tracers)
        rows.append(row)
    return rows


def dequeue_throughput(churn: Path, consumer: Path, connections: int) -> list[dict[str, Any]]:
    """Fill the queue with the tracer holding, then time the drain."""
    queue = 1 << (2 * connections + 4096).bit_length()
    rows = []
    for name, tracer in configurations(consumer, queue).items():
        if tracer is None or isinstance(tracer, Bpftrace) or name in (NO_HOOKS, ALL_EVENTS):
            continue
        tracer.cmd.append("--hold")
        tracer.start()
        with fresh_netns(time_wait=False) as prefix:
            args = ["-n", str(connections), "-t", "2"]
            churn_waiting([*prefix, str(churn)], args, tracer).communicate("\n")
        time.sleep(0.5)  # the poller has moved everything into the queue
        tracer.send("go")
        res = tracer.finish()
        rate = res["target_events"] / res["drain_seconds"] if res["drain_seconds"] else 0.0
        rows.append({"config": name, "events": res["target_events"], "events_per_s": rate})
        print(f"  dequeue {name:15s} {rate:12,.0f} events/s", flush=True)
    return rows


def latency_at_rate(churn: Path, consumer: Path, rate: int, seconds: int) -> list[dict[str, Any]]:
    rows = []
    args = ["-n", str(rate * seconds), "-t", "2", "-r", str(rate)]
    for name, tracer in configurations(consumer).items():
        if tracer is None or isinstance(tracer, Bpftrace) or name in (NO_HOOKS, ALL_EVENTS):
            continue
        result = run_churn(churn, args, tracer, time_wait=True)
        res = result["tracer"]
        rows.append(
            {
                "config": name,
                "rate": rate,
                "p50_us": res["latency_p50_us"],
                "p99_us": res["latency_p99_us"],
                "captured": res["target_events"],
                "expected": 2 * rate * seconds + result["churn"]["retries"],
            }
        )
        print(
            f"  latency {name:15s} p50 {res['latency_p50_us']:6.0f} us"
            f"  p99 {res['latency_p99_us']:6.0f} us",
            flush=True,
        )
    return rows


def program_costs(churn: Path, tracer: Tracer, connections: int) -> list[dict[str, Any]]:
    """run_time_ns / run_cnt of each of our programs over one churn traced
    by ``tracer``, from the kernel."""
    with sysctl("kernel.bpf_stats_enabled", "1"), fresh_netns(time_wait=False) as prefix:
        tracer.start()
        subprocess.run(
            [*prefix, str(churn), "-n", str(connections), "-t", "2"],
            check=True,
            capture_output=True,
        )
        out = subprocess.run(
            ["bpftool", "prog", "show", "--json"], check=True, capture_output=True, text=True
        ).stdout
        tracer.finish()
    return [
        {
            "program": prog["name"],
            "runs": prog["run_cnt"],
            "ns_per_run": prog["run_time_ns"] / prog["run_cnt"],
        }
        for prog in json.loads(out)
        if prog.get("name", "").startswith("tcpevent") and prog.get("run_cnt")
    ]


def bpf_cost(churn: Path, consumer: Path, connections: int) -> list[dict[str, Any]]:
    """The programs' cost under the C consumer (program_costs), printed."""
    rows = program_costs(churn, Tracer("C consumer", [str(consumer), str(LIB)]), connections)
    for row in rows:
        print(f"  {row['program']:22s} {row['ns_per_run']:7.1f} ns per run", flush=True)
    return rows


def host_syscall_cost(consumer: Path, rounds: int) -> list[dict[str, Any]]:
    """What an attached, idle tracer costs every other process: the time of
    a trivial system call (benchmarks/syscalls.c), alternating configurations.
    The default tracer has no syscall tracepoint (its accept() hooks are
    attached only for accept events): it should cost nothing here."""
    configs = {
        name: tracer
        for name, tracer in configurations(consumer).items()
        if name in ("untraced", "C consumer", NO_HOOKS)
    }
    return syscall_costs(configs, rounds)


def syscall_costs(
    configs: dict[str, Tracer | None], rounds: int, args: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """getppid()'s time (benchmarks/syscalls.c ARGS) beside each idle tracer
    of ``configs`` (None: untraced, which must be there), alternating, medians."""
    samples: dict[str, list[float]] = {name: [] for name in configs}
    polluted = discarded = 0
    for _ in range(rounds):
        for name, tracer in configs.items():
            # Anyone else's syscall tracepoint taxes every call, ours too:
            # such a sample says nothing about the configuration. It is
            # measured again (up to 20 times), and kept only if it never
            # became clean: counted below.
            for attempt in range(20):
                if tracer:
                    tracer.start()
                before = foreign_syscall_hooks(tracer)
                out = subprocess.run(
                    [str(SYSCALLS), *args], check=True, capture_output=True, text=True
                )
                dirty = bool(before or foreign_syscall_hooks(tracer))
                if tracer:
                    tracer.finish()
                if not dirty or attempt == 19:
                    samples[name].append(json.loads(out.stdout)["ns_per_syscall"])
                    polluted += dirty
                    break
                discarded += 1
                time.sleep(0.5)
    base = statistics.median(samples["untraced"])
    rows = []
    for name, values in samples.items():
        ns = statistics.median(values)
        rows.append({"config": name, "ns_per_syscall": ns, "ratio": ns / base})
        each = " ".join(f"{v:.0f}" for v in values)
        print(f"  syscall {name:28s} {ns:6.1f} ns  x{ns / base:.2f}   ({each})", flush=True)
    total = rounds * len(configs)
    print(
        f"  samples with another process's syscall tracepoint attached: {polluted} of {total}"
        f" kept, {discarded} measured again",
        flush=True,
    )
    return rows


def foreign_syscall_hooks(tracer: Tracer | None) -> list[str]:
    """Syscall tracepoints with a BPF program of another process than the
    tracer's (bpftool perf show): they slow every system call."""
    own = tracer.proc.pid if tracer is not None and tracer.proc is not None else -1
    out = subprocess.run(["bpftool", "perf", "show", "--json"], capture_output=True, text=True)
    try:
        hooks = json.loads(out.stdout or "[]")
    except json.JSONDecodeError:
        return []
    return [
        h["tracepoint"]
        for h in hooks
        if str(h.get("tracepoint", "")).startswith("sys_") and h.get("pid") != own
    ]


def open_latency(rounds: int = 10) -> dict[str, float]:
    """Seconds from Tracer() to attached, the default options: the load,
    the verifier's pass over every program, the attach, the census."""
    import tcpevent

    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        tcpevent.Tracer().close()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"  median {median:.3f} s [{min(times):.3f} to {max(times):.3f}]", flush=True)
    return {"median_s": median, "min_s": min(times), "max_s": max(times)}


def conversion_throughput() -> dict[str, float]:
    """Events per CPU second of TcpEvent conversion (examples/python/bench_dequeue.py)."""
    spec = importlib.util.spec_from_file_location(
        "bench_dequeue", ROOT / "examples" / "python" / "bench_dequeue.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rate = float(module.bench_convert(batch=1024, seconds=1.0, cpu_time=True))
    print(f"  conversion {rate:12,.0f} events/CPU-s", flush=True)
    return {"events_per_cpu_s": rate}


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| configuration | conn/s | ratio | added CPU per conn: processes, host (median "
        "[range]) | events captured / expected | lost | tracer CPU per event | "
        "latency p50 / p99 | peak RSS |",
        "|---|---:|---:|---|---|---:|---:|---|---:|",
    ]
    for r in rows:
        host = "-"
        if r["config"] != "untraced":
            host = ", ".join(
                f"{m:,.0f} [{lo:,.0f} to {hi:,.0f}] ns"
                for m, lo, hi in r["added_cpu_ns_per_conn"].values()
            )
        if "captured" in r:
            captured = ", ".join(f"{c:,} / {e:,}" for c, e in zip(r["captured"], r["expected"]))
            lost = ", ".join(str(d) for d in r["dropped"])
            cpu = f"{r['cpu_ns_per_event']:,.0f} ns"
            lat = f"{r['latency_p50_us']:,.0f} / {r['latency_p99_us']:,.0f} µs"
            rss = f"{r['maxrss_kb'] / 1024:.1f} MiB"
        else:
            captured = lost = cpu = lat = rss = "-"
        lines.append(
            f"| {r['config']} | {r['rate']:,.0f} | {r['ratio']:.2f} | {host} | {captured} | {lost} "
            f"| {cpu} | {lat} | {rss} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 connections, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.connections, args.rounds = 20_000, 1
    if os.geteuid() != 0:
        print("benchmarks need root (BPF, sysctls)", file=sys.stderr)
        return 1
    churn, consumer = build()
    report: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": {
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "connections": args.connections,
        "rounds": args.rounds,
    }
    for regime, time_wait in (("default", True), ("no TIME_WAIT", False)):
        print(f"churn, {regime} regime ({args.connections:,} connections):", flush=True)
        runs = churn_comparison(churn, consumer, args.connections, args.rounds, time_wait)
        report[regime] = {"rows": summarize(runs, args.connections), "runs": runs}
        print(table(report[regime]["rows"]), flush=True)
    lossy = max(args.connections // 20, 1000)
    print(f"churn, lossy (1% of data segments dropped, {lossy:,} connections):", flush=True)
    runs = lossy_comparison(churn, lossy, args.rounds)
    report["lossy"] = {"rows": summarize(runs, lossy), "runs": runs}
    print(table(report["lossy"]["rows"]), flush=True)
    print("raw dequeue throughput:", flush=True)
    report["dequeue"] = dequeue_throughput(churn, consumer, args.connections)
    print("BPF program cost:", flush=True)
    report["bpf"] = bpf_cost(churn, consumer, args.connections)
    print("close -> dequeue latency at 10,000 connections/s:", flush=True)
    report["latency"] = latency_at_rate(churn, consumer, 10_000, 5)
    print("getppid() in another process, tracer attached and idle:", flush=True)
    report["host_syscall"] = host_syscall_cost(consumer, args.rounds)
    print("Tracer() open, 10 times:", flush=True)
    report["open"] = open_latency()
    print("Python conversion of a synthetic batch:", flush=True)
    report["conversion"] = conversion_throughput()
    print(f"tcpevent ship into ClickHouse ({args.connections:,} connections):", flush=True)
    report["ship"] = ship.ship_throughput(churn, args.connections, fresh_netns)
    print(json.dumps(report["ship"]), flush=True)
    import udp_bench  # the UDP flood and the cgroup skb hooks' cost (docs/udp.md)

    report["udp"] = udp_bench.run(
        churn, args.rounds, 200_000 if args.quick else 1_000_000, args.connections
    )
    report["targets"] = targets.check(report)
    print("targets:\n" + targets.table(report["targets"]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latest.json"
    out.write_text(json.dumps(report, indent=1))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
