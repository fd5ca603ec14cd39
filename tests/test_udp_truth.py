"""UdpTracer against the kernel's own counting: in a network namespace of
the test's own (all of whose UDP traffic the test makes), the flows'
datagram totals equal the namespace's /proc/net/snmp{,6} Udp counters, and
every flow's bytes and datagrams equal what the workload sent and read;
with each build of the UDP program the kernel loads."""

from __future__ import annotations

import os
import socket

import bpfutil
import pytest
from nsutil import netns
from udp_truth import (
    DROPS_WARNING,
    TAKE_OUT_WARNING,
    Run,
    drops_counted,
    run,
    takes_out_at_once,
    workload,
)

from tcpevent import UdpTracer

#: Each build of the UDP program the kernel loads. In the test VMs
#: (make test-kernels, an emulated CPU: time counts) only the one the
#: library loads by itself there: 6.1 and 6.12 run the portable build,
#: the host both.
BUILDS = bpfutil.udp_builds()[:1] if os.environ.get("TCPEVENT_TEST_VM") else bpfutil.udp_builds()


@pytest.fixture(params=BUILDS, autouse=True)
def udp_build(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The default build, and the portable one (forced; the library loads
    it by itself only where the default is refused: docs/udp.md)."""
    build: str = request.param
    if build == "portable":
        monkeypatch.setenv(bpfutil.UDP_PORTABLE_ENV, "1")
    return build


def check_exact(result: Run) -> None:
    """Every expected flow's sums over its reports, and the namespace's
    totals. Where the kernel lets the tracer count no receive drops (before
    6.10), every rx_drops is 0 and the tracer's warnings say so; where it
    takes a flow out by a read and a delete (before 5.14), they say that."""
    counted = drops_counted()
    if not counted:
        assert DROPS_WARNING in result.warnings, result.warnings
    assert (TAKE_OUT_WARNING in result.warnings) != takes_out_at_once(), result.warnings
    per_flow = result.per_flow()
    assert set(per_flow) == {(f["sport"], f["dport"]) for f in result.expected}
    for f in result.expected:
        reports = per_flow[f["sport"], f["dport"]]
        got = {
            "tx": sum(r.tx_datagrams for r in reports),
            "tx_bytes": sum(r.tx_bytes for r in reports),
            "rx": sum(r.rx_datagrams for r in reports),
            "rx_bytes": sum(r.rx_bytes for r in reports),
            "drops": sum(r.rx_drops for r in reports),
        }
        want = {k: f[k] for k in got}
        if not counted:
            want["drops"] = 0  # the datagrams still count as received (ingress)
        assert got == want, (f, reports)
        assert {r.daddr for r in reports} == {f["daddr"]}
        assert [r.final for r in reports] == [False] * (len(reports) - 1) + [True]
        assert {(r.pid, r.task) for r in reports} == {(result.pid, "python3")}
        wrong = [r for r in reports if not (r.owner_known and r.start_ns <= r.time_ns)]
        assert not wrong, (f, wrong)
    reports = result.reports
    assert sum(r.tx_datagrams for r in reports) == result.mib["OutDatagrams"]
    drops = result.mib["RcvbufErrors"] + result.mib["MemErrors"]
    assert sum(r.rx_drops for r in reports) == (drops if counted else 0)
    assert sum(r.rx_datagrams for r in reports) - drops == result.mib["InDatagrams"]


@pytest.mark.bpf
@pytest.mark.parametrize(
    "scenario",
    [
        "v4_connected",
        "v4_unconnected_many",
        "v6_connected",
        "v6_unconnected_many",
        "v4_mapped",
        "slow_receiver",
    ],
)
def test_flows_equal_the_namespace_counters(scenario: str) -> None:
    with netns() as ns, UdpTracer(netns=[ns.inode], flush_interval=1) as tracer:
        result = run(tracer, ns, scenario)
        assert result.mib["OutDatagrams"] > 0
        check_exact(result)
        if scenario == "slow_receiver":
            assert result.mib["RcvbufErrors"] > 0  # the case is real
        if scenario == "v4_mapped":
            six = {r.family for r in result.reports if r.daddr.startswith("::ffff:")}
            assert six == {socket.AF_INET6}


@pytest.mark.bpf
def test_all_scenarios_at_once_and_families() -> None:
    with netns() as ns, UdpTracer(netns=ns.name, flush_interval=1) as tracer:
        result = run(tracer, ns, "v4_connected", "v6_unconnected_many", "slow_receiver")
        check_exact(result)
        assert {r.family for r in result.reports} == {socket.AF_INET, socket.AF_INET6}
        assert {r.netns for r in result.reports} == {ns.inode}


@pytest.mark.bpf
def test_a_long_lived_flow_is_reported_every_interval_with_exact_deltas() -> None:
    with netns() as ns, UdpTracer(netns=[ns.inode], flush_interval=1) as tracer:
        result = run(tracer, ns, "long_lived")
        check_exact(result)
        for reports in result.per_flow().values():
            # 3.6 s of traffic, an export a second: 3 or 4 reports before the final.
            assert len(reports) >= 4, reports
            assert len({r.start_ns for r in reports}) == 1
            interim = reports[:-1]
            assert all(r.rx_datagrams + r.tx_datagrams > 0 for r in interim)
            for r in interim[1:]:
                assert 0.5e9 < r.interval_ns < 1.6e9, r
            times = [r.time_ns for r in reports]
            assert times == sorted(times)


@pytest.mark.bpf
def test_filters_keep_other_namespaces_and_ports_out() -> None:
    with netns() as ns, netns() as other, UdpTracer(netns=[ns.inode], flush_interval=1) as tracer:
        elsewhere = workload(other, "v4_connected")["flows"]
        result = run(tracer, ns, "v4_connected")
        check_exact(result)  # exactly this namespace's flows: none of the other's
        ports = {(f["sport"], f["dport"]) for f in elsewhere}
        assert ports and not ports & {(r.sport, r.dport) for r in result.reports}
