"""UdpTracer's API: blocking, timed, batched and asyncio dequeue, close,
the bounded queue's losses counted, argument checks, filters."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time

import bpfutil
import pytest
from udputil import exchange

import tcpevent
from tcpevent import TracerClosedError, UdpFlow, UdpTracer


def mine(flows: list[UdpFlow], *ports: int) -> list[UdpFlow]:
    return [f for f in flows if f.sport in ports]


def collect(
    tracer: UdpTracer, ports: set[int], got: list[UdpFlow] | None = None, timeout: float = 10
) -> list[UdpFlow]:
    """Reports (after ``got``) until each of ``ports`` (as local port) has a final one."""
    got = list(got or [])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += tracer.dequeue_batch(256, timeout=0.2)
        if ports <= {f.sport for f in got if f.final}:
            return got
    raise AssertionError(f"no final report for {ports}: {got}")


def test_arguments_are_checked_before_anything_is_loaded() -> None:
    with pytest.raises(ValueError, match="flush_interval"):
        UdpTracer(flush_interval=0.01)
    with pytest.raises(TypeError, match="flush_interval"):
        UdpTracer(flush_interval="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        UdpTracer(ports=[0])
    with pytest.raises(ValueError):
        UdpTracer(queue_size=0)
    with pytest.raises(ValueError):
        UdpTracer(family="ipx")


def test_the_flow_dataclass_is_the_c_struct() -> None:
    from tcpevent._udp_core import REPORT_FIELDS

    assert set(UdpFlow.__slots__) == set(REPORT_FIELDS)
    assert tcpevent.UdpTracer is UdpTracer


@pytest.mark.bpf
def test_the_library_loads_the_build_the_kernel_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default build where the kernel has bpf_rdonly_cast() (6.2+) and
    the owner helpers in cgroup_skb programs (6.18, not 6.1 nor 6.12; either
    between, not measured), else the portable one by itself;
    UDPEVENT_PORTABLE=1 forces the portable one (as the TCP library's
    builds: docs/kernels.md). Either counts exactly."""
    monkeypatch.delenv(bpfutil.UDP_PORTABLE_ENV, raising=False)
    for forced in (False, True):
        if forced:
            monkeypatch.setenv(bpfutil.UDP_PORTABLE_ENV, "1")
        with UdpTracer(pids=[os.getpid()], flush_interval=1) as tracer:
            build = bpfutil.loaded_build(os.getpid(), "udpevent_sock_create", "bpf_sk_storage_get")
            default = bpfutil.udp_default_loads()
            if forced or default is False:
                assert build == "portable"
            elif default:
                assert build == "default"
            ex = exchange(socket.AF_INET, [10, 20], [300])
            flows = mine(collect(tracer, {ex.client_port, ex.server_port}), ex.client_port)
            assert sum(f.tx_bytes for f in flows) == ex.client_bytes
            assert sum(f.rx_datagrams for f in flows) == ex.server_datagrams


@pytest.mark.bpf
@pytest.mark.parametrize("build", bpfutil.udp_builds())
def test_sockets_born_before_the_tracer_get_their_owner_and_netns(
    build: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A socket the tracer did not see created gets its storage at its
    first datagram: its network namespace then, and its owner at its first
    send (egress runs in the sender). The portable build reads both from
    the kernel itself there (6.1's cgroup_skb programs have no owner
    helpers): the same values as the default build's."""
    if build == "portable":
        monkeypatch.setenv(bpfutil.UDP_PORTABLE_ENV, "1")
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with server, client:
        server.bind(("127.0.0.1", 0))
        client.bind(("127.0.0.1", 0))
        ports = {client.getsockname()[1], server.getsockname()[1]}
        with UdpTracer(ports=sorted(ports), flush_interval=1) as tracer:
            # The server's first datagram is received (no owner known at
            # ingress), then it answers (its owner taken at egress).
            client.sendto(b"q" * 7, server.getsockname())
            server.recv(100)
            server.sendto(b"a" * 11, client.getsockname())
            client.recv(100)
            client.close()
            server.close()
            got = collect(tracer, ports)
    netns = os.stat("/proc/self/ns/net").st_ino
    with open("/proc/self/comm") as f:
        comm = f.read().strip()
    assert {f.sport for f in got} == ports
    for f in got:
        assert f.owner_known, f
        assert (f.pid, f.uid, f.task, f.netns) == (os.getpid(), os.getuid(), comm, netns), f
    assert sum(f.tx_bytes for f in got) == 7 + 11
    assert sum(f.rx_bytes for f in got) == 7 + 11


@pytest.mark.bpf
def test_dequeue_blocking_timed_batched_and_close() -> None:
    with UdpTracer(pids=[os.getpid()], flush_interval=1) as tracer:
        t0 = time.monotonic()
        assert tracer.dequeue(timeout=0.3) is None
        assert 0.25 < time.monotonic() - t0 < 3
        run = exchange(socket.AF_INET, [10, 20], [30])
        first = tracer.dequeue()  # blocks until the first report
        assert first is not None
        flows = collect(tracer, {run.client_port, run.server_port}, [first])
        client = mine(flows, run.client_port)
        assert sum(f.tx_bytes for f in client) == 30 and sum(f.rx_bytes for f in client) == 30
        assert all(f.pid == os.getpid() and f.uid == os.getuid() for f in client)
        assert client[-1].final and client[-1].local.startswith("127.0.0.1:")
        d = client[-1].to_dict(resolve=True)
        assert d["family"] == "AF_INET" and d["final"] is True and "cgroup" in d
        st = tracer.stats()
        assert st.reports >= 2 and st.dropped_queue == 0 and st.scans >= 1
    assert tracer.closed
    with pytest.raises(TracerClosedError):
        tracer.dequeue(timeout=0.1)
    assert list(tracer) == []


@pytest.mark.bpf
def test_close_wakes_a_blocked_dequeue_and_reports_what_moved() -> None:
    tracer = UdpTracer(pids=[os.getpid()], flush_interval=60)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        for _ in range(7):
            a.sendto(b"x" * 11, b.getsockname())
        got: list[UdpFlow] = []
        done = threading.Event()

        def consume() -> None:
            got.extend(tracer)
            done.set()

        thread = threading.Thread(target=consume)
        thread.start()
        time.sleep(0.3)
        assert not got  # nothing before the export a minute away, nothing released
        tracer.close()
        assert done.wait(5)
        thread.join(5)
        # Both sockets live on: their flows' counts so far, not final.
        sender = mine(got, a.getsockname()[1])
        receiver = mine(got, b.getsockname()[1])
        assert [(f.tx_datagrams, f.tx_bytes, f.final) for f in sender] == [(7, 77, False)]
        assert [(f.rx_datagrams, f.rx_bytes, f.final) for f in receiver] == [(7, 77, False)]
    finally:
        a.close()
        b.close()
        tracer.close()


@pytest.mark.bpf
def test_asyncio_dequeue_and_iteration() -> None:
    async def main() -> list[UdpFlow]:
        with UdpTracer(pids=[os.getpid()], flush_interval=1) as tracer:
            assert await tracer.dequeue_async(timeout=0.2) is None
            loop = asyncio.get_running_loop()
            run = await loop.run_in_executor(None, exchange, socket.AF_INET6, [5], [6, 7])
            got: list[UdpFlow] = []

            async def until_final() -> None:
                async for flow in tracer.flows():
                    got.append(flow)
                    if {run.client_port, run.server_port} <= {f.sport for f in got if f.final}:
                        return

            await asyncio.wait_for(until_final(), 10)
            return mine(got, run.client_port)

    client = asyncio.run(main())
    assert sum(f.rx_datagrams for f in client) == 2 and sum(f.rx_bytes for f in client) == 13
    assert client[-1].family == socket.AF_INET6 and client[-1].daddr == "::1"


@pytest.mark.bpf
def test_a_full_queue_loses_reports_and_counts_every_one() -> None:
    with UdpTracer(pids=[os.getpid()], queue_size=4, flush_interval=1) as tracer:
        runs = [exchange(socket.AF_INET, [1], [1]) for _ in range(20)]
        ports = {p for r in runs for p in (r.client_port, r.server_port)}
        deadline = time.monotonic() + 10
        while tracer.stats().reports < len(ports) and time.monotonic() < deadline:
            time.sleep(0.1)
        st = tracer.stats()
        assert st.reports >= len(ports)
        assert st.dropped_queue > 0 and st.queued == 4
        got = tracer.dequeue_batch(100, timeout=0)
        st = tracer.stats()
        assert len(got) == 4 == st.delivered
        assert st.reports == st.delivered + st.dropped_queue + st.queued + st.filtered


@pytest.mark.bpf
def test_port_and_family_filters() -> None:
    keep = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    keep.bind(("127.0.0.1", 0))
    port = keep.getsockname()[1]
    try:
        with UdpTracer(ports=[port], family="ipv4", flush_interval=1) as tracer:
            other = exchange(socket.AF_INET, [3], [4])
            six = exchange(socket.AF_INET6, [3], [4])
            peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            peer.sendto(b"k" * 9, ("127.0.0.1", port))
            keep.recv(100)
            peer_port = peer.getsockname()[1]
            peer.close()
            keep.close()
            got = collect(tracer, {port, peer_port})
        ports = {f.sport for f in got} | {f.dport for f in got}
        assert not ports & {other.client_port, other.server_port, six.client_port}
        assert {(f.sport, f.dport) for f in got} == {(port, peer_port), (peer_port, port)}
        assert sum(f.rx_bytes for f in got if f.sport == port) == 9
    finally:
        keep.close()


@pytest.mark.bpf
def test_an_idle_flow_of_a_live_socket_is_retired_with_one_last_report() -> None:
    """Idle for three export intervals, a flow leaves the kernel's table with
    a report flagged retired; a later datagram starts a new flow."""
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.bind(("127.0.0.1", 0))
        b.bind(("127.0.0.1", 0))
        port = a.getsockname()[1]
        with UdpTracer(ports=[port], flush_interval=0.5) as tracer:
            a.sendto(b"1234", b.getsockname())
            b.recv(16)
            got: list[UdpFlow] = []
            deadline = time.monotonic() + 15
            while sum(f.retired for f in got) < 2 and time.monotonic() < deadline:
                got += tracer.dequeue_batch(64, timeout=0.2)
            sender = mine(got, port)
            assert [f.retired for f in sender] == [False, True], got
            assert [(f.tx_datagrams, f.tx_bytes) for f in sender] == [(1, 4), (0, 0)]
            assert not any(f.final for f in got)
            a.sendto(b"56", b.getsockname())  # the same peer again: a new flow
            b.recv(16)
            deadline = time.monotonic() + 5
            later: list[UdpFlow] = []
            while not mine(later, port) and time.monotonic() < deadline:
                later += tracer.dequeue_batch(64, timeout=0.2)
            (again,) = mine(later, port)
            assert (again.tx_datagrams, again.tx_bytes) == (1, 2)
            assert again.start_ns > sender[0].start_ns
    finally:
        a.close()
        b.close()
