#!/usr/bin/env python3
"""Compare builds of the BPF program by the churn rate they leave.

    python3 benchmarks/ab.py [--bpf-stats | --syscalls] ROUNDS NAME=OBJECT [NAME=OBJECT ...]

Each round runs, in turn, an untraced churn and one churn per NAME with the
C consumer (benchmarks/consumer.c) attached through ``AddProbe(OBJECT)``
(``NAME=`` with no object: the built-in program; ``NAME=@REV``: the
built-in program's source as of git revision REV, compiled here, so that
one invocation compares a change with what came before it: records of an
older layout load too; ``NAME=lib@REV``: the whole library as of REV, built
here, with its own built-in program), 100,000 connections each
in a fresh network namespace without TIME_WAIT, exactly as ``make bench``
runs them. Prints each configuration's median rate and its ratio to the
untraced median: compare ratios within one invocation only.

With ``--bpf-stats``, the churn rates are not measured (the kernel's
statistics slow every run a little); instead each configuration's churn
runs with ``kernel.bpf_stats_enabled`` (restored after), and what is printed
is each program's mean time per run, in ns, over the rounds.

With ``--syscalls``, no churn: what each configuration, attached and idle,
costs another process's system calls (``getppid()``, benchmarks/syscalls.c,
as ``make bench`` measures it), alternating with untraced, ROUNDS rounds:
e.g. ``ab.py --syscalls 5 before=lib@REV after=`` compares two revisions'
default tracers.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import run


def object_of(rev: str, workdir: Path) -> str:
    """The TCP BPF object (csrc/bpf/tcp.bpf.c) as of git revision ``rev``."""
    src = workdir / rev.replace("/", "_")
    src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(run.ROOT), "archive", rev, "csrc"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(src)], input=archive, check=True)
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    clang = os.environ.get("BPF_CLANG") or shutil.which("clang") or "clang"
    out = src / "tcp.bpf.o"
    # Both layouts: csrc/bpf/ + csrc/include/ since the layout of issue 18,
    # everything in csrc/ before.
    csrc = src / "csrc"
    program = csrc / "bpf" / "tcp.bpf.c"
    if not program.exists():
        program = csrc / "tcpevent.bpf.c"
    includes = [f"-I{csrc / 'bpf'}", f"-I{csrc / 'include'}", f"-I{csrc}"]
    flags = ["-g", "-O2", "-target", "bpf", f"-I/usr/include/{arch}", *includes]
    subprocess.run([clang, *flags, "-c", str(program), "-o", str(out)], check=True)
    return str(out)


def library_of(rev: str, workdir: Path) -> str:
    """libtcpEvent.so as of git revision ``rev``, built in a copy of that tree."""
    tree = workdir / ("lib-" + rev.replace("/", "_"))
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(run.ROOT), "archive", rev], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tree,
        check=True,
        capture_output=True,
    )
    return str(tree / "tcpevent" / "lib" / "libtcpEvent.so")


def main(argv: list[str]) -> int:
    stats_mode = "--bpf-stats" in argv
    syscalls_mode = "--syscalls" in argv
    argv = [a for a in argv if a not in ("--bpf-stats", "--syscalls")]
    if len(argv) < 3 or not argv[1].isdigit():
        print(__doc__, file=sys.stderr)
        return 2
    churn, consumer = run.build()
    workdir = Path(tempfile.mkdtemp(prefix="tcpevent-ab-"))
    configs: dict[str, run.Tracer | None] = {"untraced": None}
    for spec in argv[2:]:
        name, _, program = spec.partition("=")
        lib = str(run.LIB)
        if program.startswith("lib@"):
            lib, program = library_of(program[4:], workdir), ""
        elif program.startswith("@"):
            program = object_of(program[1:], workdir)
        env = {"CONSUMER_PROGRAM": program} if program else {}
        configs[name] = run.Tracer(name, [str(consumer), lib], env)
    if syscalls_mode:
        # Short samples (200,000 calls, median of 5): on a shared machine
        # they find the moments when nobody else has a syscall tracepoint.
        run.syscall_costs(configs, int(argv[1]), ("200000", "5"))
        shutil.rmtree(workdir)
        return 0
    if stats_mode:
        per_run: dict[str, dict[str, list[float]]] = {}
        for _ in range(int(argv[1])):
            for name, tracer in configs.items():
                if tracer is not None:
                    for row in run.program_costs(churn, tracer, 100_000):
                        per_run.setdefault(name, {}).setdefault(row["program"], []).append(
                            row["ns_per_run"]
                        )
        for name, progs in per_run.items():
            for prog, values in progs.items():
                each = " ".join(f"{v:.0f}" for v in values)
                mean = statistics.mean(values)
                print(f"{name:14s} {prog:24s} {mean:10.1f} ns/run   ({each})")
        shutil.rmtree(workdir)
        return 0
    rates: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(int(argv[1])):
        for name, tracer in configs.items():
            result = run.run_churn(churn, ["-n", "100000", "-t", "2"], tracer, time_wait=False)
            rates[name].append(result["churn"]["rate"])
    base = statistics.median(rates["untraced"])
    for name, values in rates.items():
        median = statistics.median(values)
        each = " ".join(f"{v:.0f}" for v in values)
        print(f"{name:14s} {median:9.0f} conn/s  ratio {median / base:.3f}   ({each})")
    shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
