"""``tcpevent exporter --udp``: UDP bytes, datagrams, drops and flows by service
port and direction, exact against known traffic, under the one series budget."""

from __future__ import annotations

import time

import pytest
from nsutil import netns
from prometheus_client.parser import text_string_to_metric_families
from promutil import Exporter
from udp_truth import workload

from tcpevent.exporter.metrics import OTHER, SeriesBudget
from tcpevent.exporter.udp_metrics import UDP_FLOWS, UdpMetrics, udp_labels
from tcpevent.udp_flow import UdpFlow

COUNTERS = (
    "tcpevent_udp_flows",
    "tcpevent_udp_received_bytes",
    "tcpevent_udp_sent_bytes",
    "tcpevent_udp_received_datagrams",
    "tcpevent_udp_sent_datagrams",
    "tcpevent_udp_receive_drops",
)


def totals(text: str) -> dict[str, dict[tuple[str, ...], float]]:
    """Per counter (without _total), value by label values."""
    out: dict[str, dict[tuple[str, ...], float]] = {}
    for family in text_string_to_metric_families(text):
        if family.name in COUNTERS:
            for s in family.samples:
                if s.name.endswith("_total"):
                    key = tuple(s.labels[k] for k in sorted(s.labels))
                    out.setdefault(family.name, {})[key] = s.value
    return out


def flow(**kw: object) -> UdpFlow:
    base: dict[str, object] = dict.fromkeys(UdpFlow.__slots__, 0)
    base.update(task="dns", saddr="127.0.0.1", daddr="127.0.0.1", family=2, flags=1)
    base.update(kw)
    return UdpFlow(**base)  # type: ignore[arg-type]


def test_labels_name_the_lower_port_the_service() -> None:
    assert udp_labels(flow(sport=53, dport=40000))[:2] == ("inbound", "53")
    assert udp_labels(flow(sport=40000, dport=53))[:2] == ("outbound", "53")
    assert udp_labels(flow(sport=40000, dport=53), peer=True)[-1] == "127.0.0.1"


def test_the_budget_folds_new_label_sets_and_keeps_sums_exact() -> None:
    budget = SeriesBudget(UDP_FLOWS.series * 3)  # __other__ and two label sets
    metrics = UdpMetrics(budget)
    flows = [flow(sport=40000 + i, dport=1000 + i, tx_datagrams=i + 1) for i in range(10)]
    metrics.observe(flows)
    text = "".join(f"{s.name}{s.labels} {s.value}\n" for m in metrics.collect() for s in m.samples)
    sent = [
        s
        for m in metrics.collect()
        for s in m.samples
        if s.name == "tcpevent_udp_sent_datagrams_total"
    ]
    assert sum(s.value for s in sent) == sum(f.tx_datagrams for f in flows), text
    assert len(sent) == 3 and any(s.labels["comm"] == OTHER for s in sent)
    assert metrics.folded == 8


@pytest.mark.bpf
def test_exporter_counts_known_udp_traffic_exactly() -> None:
    with netns() as ns:
        exporter = Exporter(["--udp", "--netns", ns.name])
        try:
            # Attached once it serves? The UDP tracer opens after: wait for a probe.
            deadline = time.monotonic() + 20
            while "tcpevent_udp_sent_datagrams_total{" not in exporter.scrape():
                workload(ns, "v4_connected")
                assert time.monotonic() < deadline, exporter.stderr()
                time.sleep(0.5)
            # The probes' last reports may still come: wait until nothing moves for 1.5 s.
            before = totals(exporter.scrape())
            while True:
                time.sleep(1.5)
                again = totals(exporter.scrape())
                if again == before:
                    break
                before = again
            expected = workload(ns, "v4_unconnected_many", "slow_receiver")
            want_tx = sum(f["tx"] for f in expected["flows"])
            want_rx = sum(f["rx"] for f in expected["flows"])

            def grew(name: str, now: dict[str, dict[tuple[str, ...], float]]) -> float:
                return sum(now.get(name, {}).values()) - sum(before.get(name, {}).values())

            deadline = time.monotonic() + 20
            while True:
                now = totals(exporter.scrape())
                if grew("tcpevent_udp_flows", now) >= len(expected["flows"]):
                    break
                assert time.monotonic() < deadline, (now, exporter.stderr())
                time.sleep(0.3)
            assert grew("tcpevent_udp_flows", now) == len(expected["flows"])
            assert grew("tcpevent_udp_sent_datagrams", now) == want_tx
            assert grew("tcpevent_udp_received_datagrams", now) == want_rx
            assert grew("tcpevent_udp_sent_bytes", now) == sum(
                f["tx_bytes"] for f in expected["flows"]
            )
            assert grew("tcpevent_udp_receive_drops", now) == sum(
                f["drops"] for f in expected["flows"]
            )
            assert grew("tcpevent_udp_receive_drops", now) > 0
        finally:
            assert exporter.stop() == 0, exporter.stderr()
