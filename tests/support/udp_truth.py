"""A UDP workload in a namespace of the test's own, traced, with the
namespace's /proc/net/snmp{,6} Udp counters read around it."""

from __future__ import annotations

import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bpfutil
from nsutil import Netns

from tcpevent import UdpFlow, UdpTracer

WORKLOAD = Path(__file__).resolve().parent / "udp_workload.py"
#: Udp counters of /proc/net/snmp and Udp6 ones of /proc/net/snmp6, by the same names.
MIB = ("InDatagrams", "OutDatagrams", "RcvbufErrors", "MemErrors")
#: The udp:udp_fail_queue_rcv_skb tracepoint has its skb argument since
#: Linux 6.10: before, the tracer counts no receive drops, and says so in
#: its warnings (csrc/udp/udp_bpf.c).
DROPS_SINCE = (6, 10)
DROPS_WARNING = "receive drops are not counted (rx_drops stays 0)"
#: Before Linux 5.14 (no BPF_MAP_LOOKUP_AND_DELETE_ELEM on hash maps) a
#: flow leaves the table by a read and a delete, and the tracer says what
#: that risks (csrc/udp/udp_bpf.c).
TAKE_OUT_SINCE = (5, 14)
TAKE_OUT_WARNING = "an idle flow's last report may miss a datagram"


def drops_counted() -> bool:
    """Whether this kernel lets the tracer count receive drops (by its
    version, not by what the tracer says: the test checks that)."""
    return bpfutil.kernel_version() >= DROPS_SINCE


def takes_out_at_once() -> bool:
    """Whether this kernel takes a flow out of the table in one command."""
    return bpfutil.kernel_version() >= TAKE_OUT_SINCE


def udp_mib(ns: Netns) -> dict[str, int]:
    """The namespace's UDP counters, IPv4 (which counts v4-mapped
    traffic too) plus IPv6."""
    lines = [line.split() for line in ns.run("cat", "/proc/net/snmp").splitlines()]
    names, values = (line[1:] for line in lines if line[0] == "Udp:")
    v4 = dict(zip(names, map(int, values)))
    v6 = dict(line.split() for line in ns.run("cat", "/proc/net/snmp6").splitlines())
    # 5.10 has no MemErrors: it counts a drop for UDP's memory pressure
    # in InErrors only (the workloads provoke none; a full buffer is
    # RcvbufErrors on every kernel).
    if "MemErrors" not in v4:
        v4["MemErrors"] = 0
        v6["Udp6MemErrors"] = "0"
    return {name: v4[name] + int(v6[f"Udp6{name}"]) for name in MIB}


@dataclass
class Run:
    pid: int
    expected: list[dict[str, Any]]
    mib: dict[str, int]  # the namespace's counters' increase
    warnings: str = ""  # the tracer's
    reports: list[UdpFlow] = field(default_factory=list)

    def per_flow(self) -> dict[tuple[int, int], list[UdpFlow]]:
        out: dict[tuple[int, int], list[UdpFlow]] = defaultdict(list)
        for r in self.reports:
            out[r.sport, r.dport].append(r)
        return out


def workload(ns: Netns, *scenarios: str) -> dict[str, Any]:
    """Run scenarios of udp_workload.py in ``ns``: its pid and flows."""
    out: dict[str, Any] = json.loads(ns.run(sys.executable, str(WORKLOAD), *scenarios))
    return out


def run(tracer: UdpTracer, ns: Netns, *scenarios: str, timeout: float = 15) -> Run:
    """Run the workload's scenarios in ``ns``; collect reports until every
    flow it made has its final one (its sockets are all closed)."""
    before = udp_mib(ns)
    out = workload(ns, *scenarios)
    after = udp_mib(ns)
    result = Run(out["pid"], out["flows"], {k: after[k] - before[k] for k in MIB}, tracer.warnings)
    wanted = {(f["sport"], f["dport"]) for f in result.expected}
    finals: set[tuple[int, int]] = set()
    deadline = time.monotonic() + timeout
    while not wanted <= finals and time.monotonic() < deadline:
        for r in tracer.dequeue_batch(1024, timeout=0.2):
            result.reports.append(r)
            if r.final:
                finals.add((r.sport, r.dport))
    assert wanted <= finals, f"no final report of {sorted(wanted - finals)}"
    return result
