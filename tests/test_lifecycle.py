"""The whole connection lifecycle: connect and accept events, handshake and
accept-queue times, and why each connection ended, checked against what the
test did and against the kernel's own counters (docs/lifecycle.md)."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import workloads
from cliutil import start
from liveness import PROMPTLY
from nativeutil import NativeTracer
from netutil import connection
from nsutil import Netns, counters_delta, netns
from tcpevent._native import lib

import tcpevent
from tcpevent import TcpEvent, TcpState

pytestmark = pytest.mark.bpf

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "support" / "lifecycle_workload.py"
ALL_KINDS = {"connect", "accept", "close"}
NS_PORT = 7000  # inside a namespace of the test's own: free


def run_workload(ns: Netns, *args: str) -> dict:
    return workloads.run_workload(ns, WORKLOAD, *args)


def collect(tracer: tcpevent.Tracer, done: Callable[[list[TcpEvent]], bool]) -> list[TcpEvent]:
    """Events until done(events), then whatever else comes within a moment."""
    return workloads.collect_events(tracer, done, timeout=10 * PROMPTLY, settle=0.3)


def test_counts_match_the_kernels_own_counters() -> None:
    """In a namespace of the test's own: connections with data, refused
    connects and resets each way, IPv4 and IPv6. connect events plus failed
    connects are ActiveOpens, accept events PassiveOpens, close events both
    (or the shortfall is what stats.missed counted)."""
    n = 24
    with netns() as ns, tcpevent.Tracer(netns=[ns.inode], events=ALL_KINDS) as tracer:
        before = ns.counters()
        did = run_workload(ns, "churn", str(n))
        after = ns.counters()
        d = counters_delta(before, after)
        active, passive = d["ActiveOpens"], d["PassiveOpens"]
        events = collect(
            tracer, lambda evs: sum(e.kind == "close" for e in evs) >= active + passive
        )
        missed = tracer.stats.missed

    kinds = Counter(e.kind for e in events)
    failed = sum(e.kind == "close" and e.state is TcpState.SYN_SENT for e in events)
    fates = Counter(f["fate"] for f in did["fates"])
    opened = 2 * (n + 2 * (n // 4))
    assert fates["refused"] == 2 * (n // 4)
    # The kernel's view of what the workload did.
    assert active == opened + fates["refused"] and passive == opened, (before, after)
    assert all(e.netns == ns.inode for e in events)
    for got, expected in (
        (kinds["connect"] + failed, active),
        (kinds["accept"], passive),
        (kinds["close"], active + passive),
    ):
        assert expected - missed <= got <= expected, (kinds, failed, active, passive, missed)
    assert failed == fates["refused"]


def test_why_each_connection_ended() -> None:
    """Refused: ECONNREFUSED in SYN_SENT, owned by the connecting process.
    Reset: the side that received the RST says ECONNRESET. Orderly: 0."""
    with netns() as ns, tcpevent.Tracer(netns=[ns.inode], events=ALL_KINDS) as tracer:
        did = run_workload(ns, "churn", "8")
        expected_closes = sum(2 if f["fate"] != "refused" else 1 for f in did["fates"])
        events = collect(tracer, lambda evs: sum(e.kind == "close" for e in evs) >= expected_closes)
    closes = [e for e in events if e.kind == "close"]
    by_port = {(e.family, e.sport, e.dport): e for e in closes}
    for fate in did["fates"]:
        family, cport, sport = fate["family"], fate["cport"], fate["sport"]
        if fate["fate"] == "refused":
            refused = [e for e in closes if e.dport == sport and e.family == family]
            assert refused, fate
            for e in refused:
                assert e.error == errno.ECONNREFUSED and e.error_name == "ECONNREFUSED"
                assert e.state is TcpState.SYN_SENT and e.failed
                assert e.pid == did["pid"] and e.direction == "outbound"
            continue
        client = by_port[(family, cport, sport)]
        server = by_port[(family, sport, cport)]
        assert client.direction == "outbound" and server.direction == "inbound"
        assert not client.failed and not server.failed
        if fate["fate"] == "orderly":
            assert client.error == server.error == 0, (client, server)
        elif fate["fate"] == "client reset":  # the server received the RST
            assert server.error == errno.ECONNRESET and client.error == 0, (client, server)
        else:
            assert client.error == errno.ECONNRESET and server.error == 0, (client, server)
    assert sum(f["fate"] == "refused" for f in did["fates"]) == 4


def drop_syns(ns: Netns, only_first: bool) -> None:
    """Drop SYNs to NS_PORT in the namespace: every one, or only the first of
    each client port (its retransmission passes)."""
    match = "tcp sport != @seen add @seen { tcp sport } " if only_first else ""
    ns.nft(
        "table inet tcpevent_test {\n"
        "  set seen { type inet_service; }\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy accept;\n"
        f"    tcp dport {NS_PORT} tcp flags & (syn | ack) == syn {match}drop\n"
        "  }\n"
        "}\n"
    )


def test_a_connect_whose_syns_are_dropped_times_out() -> None:
    with netns([("net.ipv4.tcp_syn_retries", "1")]) as ns:
        drop_syns(ns, only_first=False)
        with tcpevent.Tracer(netns=[ns.inode], events=ALL_KINDS) as tracer:
            did = run_workload(ns, "connect", str(NS_PORT))
            events = collect(tracer, lambda evs: any(e.dport == NS_PORT for e in evs))
    assert did["errno"] == errno.ETIMEDOUT
    (close,) = [e for e in events if e.dport == NS_PORT]
    assert close.kind == "close" and close.state is TcpState.SYN_SENT and close.failed
    assert close.error == errno.ETIMEDOUT and close.pid == did["pid"]
    assert close.handshake_ns == 0  # never established


def test_handshake_time() -> None:
    """On loopback the handshake takes a moment; when the first SYN is
    dropped, at least the initial retransmission timeout (1 s)."""
    with netns() as ns:
        with tcpevent.Tracer(netns=[ns.inode], events=ALL_KINDS) as tracer:
            fast_did = run_workload(ns, "connect", str(NS_PORT))
            fast = collect(tracer, lambda evs: sum(e.kind == "close" for e in evs) >= 2)
        drop_syns(ns, only_first=True)
        with tcpevent.Tracer(netns=[ns.inode], events=ALL_KINDS) as tracer:
            slow_did = run_workload(ns, "connect", str(NS_PORT))
            slow = collect(tracer, lambda evs: sum(e.kind == "close" for e in evs) >= 2)
    for did, events in ((fast_did, fast), (slow_did, slow)):
        assert did["errno"] == 0
        connects = [e for e in events if e.kind == "connect"]
        assert len(connects) == 1 and connects[0].sport == did["cport"]
        assert connects[0].pid == did["pid"] and connects[0].state is TcpState.ESTABLISHED
        # The client's close says the same handshake time.
        (client_close,) = [e for e in events if e.kind == "close" and e.sport == did["cport"]]
        assert client_close.handshake_ns == connects[0].handshake_ns
    quick = next(e for e in fast if e.kind == "connect").handshake_ns
    retried = next(e for e in slow if e.kind == "connect").handshake_ns
    assert 0 < quick < PROMPTLY * 1e9  # how fast is make bench's to say
    assert 1e9 <= retried < 1e9 + PROMPTLY * 1e9, retried


SLOW_SERVER = """
import socket, sys, time
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen()
print(ls.getsockname()[1], flush=True)
sys.stdin.readline()  # the client has connected
time.sleep(0.3)
conn, _ = ls.accept()
conn.recv(1)
"""


def test_accept_queue_wait_is_owned_by_the_server() -> None:
    """A server that waits 300 ms before accept(): its accept event says so,
    and is owned by the server, not by whatever ran the handshake's softirq
    (here the client's connect())."""
    server = subprocess.Popen(
        [sys.executable, "-c", SLOW_SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdin is not None and server.stdout is not None
        port = int(server.stdout.readline())
        with tcpevent.Tracer(ports=[port], events=ALL_KINDS) as tracer:
            client = socket.create_connection(("127.0.0.1", port))
            server.stdin.write("\n")
            server.stdin.flush()
            events = collect(tracer, lambda evs: any(e.kind == "accept" for e in evs))
            client.close()
            assert server.wait(PROMPTLY) == 0
            events += collect(tracer, lambda evs: sum(e.kind == "close" for e in evs) >= 2)
    finally:
        server.kill()
        server.wait()
    (accept,) = [e for e in events if e.kind == "accept"]
    assert accept.pid == server.pid != os.getpid()
    assert accept.sport == port and accept.direction == "inbound"
    assert 0.3e9 <= accept.accept_wait_ns < 0.3e9 + PROMPTLY * 1e9, accept.accept_wait_ns
    assert 0 < accept.handshake_ns < PROMPTLY * 1e9
    (connect,) = [e for e in events if e.kind == "connect"]
    assert connect.pid == os.getpid() and connect.dport == port


def test_close_only_by_default_and_choosing_kinds() -> None:
    """The default is what it always was: close events only, no handshake
    measured. events= delivers exactly the kinds asked for."""
    per_connection = {"close": 2, "connect": 1, "accept": 1}
    seen: dict[str, Counter[str]] = {}
    for kinds in ({"close"}, {"connect"}, {"accept"}, ALL_KINDS):
        default = kinds == {"close"}
        options = {} if default else {"events": kinds}
        with tcpevent.Tracer(pids=[os.getpid()], **options) as tracer:
            conn = connection(socket.AF_INET6)
            want = sum(per_connection[k] for k in kinds)
            events = collect(tracer, lambda evs, w=want: len(evs) >= w)
        ours = [e for e in events if conn.server.port in (e.sport, e.dport)]
        seen[",".join(sorted(kinds))] = Counter(e.kind for e in ours)
        if default:
            assert all(e.handshake_ns == 0 for e in ours)
    assert seen["close"] == {"close": 2}
    assert seen["connect"] == {"connect": 1}
    assert seen["accept"] == {"accept": 1}
    assert seen["accept,close,connect"] == {"connect": 1, "accept": 1, "close": 2}


def test_bad_event_kinds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        tcpevent.Tracer(events={"close", "open"})
    with pytest.raises(ValueError, match="empty"):
        tcpevent.Tracer(events=())
    with pytest.raises(ValueError, match="accept"):
        tcpevent.Tracer(events={"accept"}, accept_hooks=False)


LEGACY_CLIENT = """
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
from netutil import connection
from tcpevent import abi

lib = abi.load_library()
lib.AddProbe(None)
while not lib.getStatus():
    time.sleep(0.01)
events = []

def drain():
    while True:
        ev = lib.DequeuePerfEvent()
        if ev.family == 0:
            return
        events.append((ev.SPT, ev.DPT))

reader = threading.Thread(target=drain)
reader.start()
conns = [connection() for _ in range(3)]
time.sleep(1.0)
lib.cleanup()
reader.join()
ports = [[c.client.port, c.server.port] for c in conns]
print(json.dumps({"ports": ports, "events": events}))
"""


def test_the_original_abi_delivers_closes_only() -> None:
    """AddProbe() and DequeuePerfEvent() stay what they were: one event per
    closed socket, never a connect or accept record."""
    out = subprocess.run(
        [sys.executable, "-c", LEGACY_CLIENT, str(HERE / "support")],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    result = json.loads(out)
    ours = {tuple(p) for p in result["ports"]}
    ours |= {(b, a) for a, b in ours}
    got = Counter(tuple(e) for e in result["events"] if tuple(e) in ours)
    assert got == dict.fromkeys(ours, 1), got


def test_the_extended_c_api_chooses_kinds_too() -> None:
    """options.events of tcpevent_open(); bad combinations are refused."""

    every = lib.TCPEVENT_EVENT_CLOSE | lib.TCPEVENT_EVENT_CONNECT | lib.TCPEVENT_EVENT_ACCEPT
    with NativeTracer(pids=[os.getpid()], events=every) as tracer:
        conn = connection()
        events = tracer.collect(lambda evs: len(evs) >= 4)
    ours = [e for e in events if conn.server.port in (e["sport"], e["dport"])]
    kinds = Counter(e["kind"] for e in ours)
    assert kinds == {
        lib.TCPEVENT_KIND_CONNECT: 1,
        lib.TCPEVENT_KIND_ACCEPT: 1,
        lib.TCPEVENT_KIND_CLOSE: 2,
    }
    directions = {(e["kind"], e["direction"]) for e in ours if e["kind"] != lib.TCPEVENT_KIND_CLOSE}
    assert directions == {
        (lib.TCPEVENT_KIND_CONNECT, lib.TCPEVENT_DIRECTION_OUTBOUND),
        (lib.TCPEVENT_KIND_ACCEPT, lib.TCPEVENT_DIRECTION_INBOUND),
    }
    with pytest.raises(OSError, match="unknown bits") as info:
        NativeTracer(events=1 << 9)
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError, match="accept events") as info:
        NativeTracer(events=lib.TCPEVENT_EVENT_ACCEPT, flags=lib.TCPEVENT_OPT_NO_ACCEPT_HOOKS)
    assert info.value.errno == errno.EINVAL


def test_the_command_line_shows_the_lifecycle() -> None:
    """--events: JSON lines carry kind, handshake_ns, accept_wait_ns and the
    error by name; the line format says which event and what it measured."""
    me = str(os.getpid())
    cmd = ["--events", "connect,accept,close", "-p", me]
    for fmt in ("json", "line"):
        proc = start(*cmd, "--format", fmt, "--count", "4")
        try:
            conn = connection()
            out, err = proc.communicate(timeout=10 * PROMPTLY)
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode == 0, err
        if fmt == "json":
            lines = [json.loads(line) for line in out.splitlines()]
            assert Counter(d["kind"] for d in lines) == {"connect": 1, "accept": 1, "close": 2}
            for d in lines:
                assert conn.server.port in (d["sport"], d["dport"])
                assert d["error"] is None and d["handshake_ns"] > 0
                assert (d["accept_wait_ns"] > 0) == (d["kind"] == "accept")
                assert d["direction"] == (
                    "outbound" if d["sport"] == conn.client.port else "inbound"
                )
        else:
            header, *rows = out.splitlines()
            assert header.split()[:2] == ["TIME", "EVENT"] and header.split()[-1] == "DETAIL"
            kinds = Counter(row.split()[1] for row in rows)
            assert kinds == {"connect": 1, "accept": 1, "close": 2}, out
            assert all("handshake" in row for row in rows)
            assert sum("queued" in row for row in rows) == 1
