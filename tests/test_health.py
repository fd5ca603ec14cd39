"""Retransmit, reset and drop events, checked against the kernel's own
counters in a network namespace of the test's own whose nftables rules
drop chosen packets (docs/health.md)."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import bpfutil
import pytest
import workloads
from liveness import ATTACH_TIMEOUT, PROMPTLY
from netutil import wait_until
from nsutil import Netns, counters_delta, netns

import tcpevent
from tcpevent import TcpEvent, TcpState

pytestmark = pytest.mark.bpf

HERE = Path(__file__).resolve().parent
WORKLOAD = HERE / "support" / "health_workload.py"
HEALTH = {"close", "retransmit", "reset", "drop"}
PORT = 7100  # inside a namespace of the test's own: free


def run_workload(ns: Netns, *args: str) -> dict:
    return workloads.run_workload(ns, WORKLOAD, *args)


def collect(tracer: tcpevent.Tracer, done: Callable[[list[TcpEvent]], bool]) -> list[TcpEvent]:
    """Events until done(events), then whatever else comes within a moment."""
    return workloads.collect_events(tracer, done, timeout=20 * PROMPTLY, settle=0.5)


def closes_of(events: list[TcpEvent]) -> int:
    return sum(e.kind == "close" for e in events)


def nft_counters(ns: Netns) -> dict[str, int]:
    """Packets each commented rule of the test's table dropped."""
    table = json.loads(ns.run("nft", "-j", "list", "table", "inet", "tcpevent_health"))
    out = {}
    for item in table["nftables"]:
        rule = item.get("rule")
        if not rule or "comment" not in rule:
            continue
        for expr in rule["expr"]:
            if "counter" in expr:
                out[rule["comment"]] = int(expr["counter"]["packets"])
    return out


def named_counter(ns: Netns, name: str) -> int:
    """Packets the test table's named counter ``name`` counted."""
    out = json.loads(ns.run("nft", "-j", "list", "counter", "inet", "tcpevent_health", name))
    (counter,) = [item["counter"] for item in out["nftables"] if "counter" in item]
    return int(counter["packets"])


@functools.cache
def kernel_btf() -> str:
    """The running kernel's BTF in bpftool's raw format (read independently
    of the library)."""
    return subprocess.run(
        ["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "raw"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def kernel_enum(name: str) -> set[str]:
    """The members of the kernel's ``enum name``; empty where the kernel
    has no such enum (``sk_rst_reason`` before 6.10)."""
    block = re.search(rf"ENUM '{name}'.*?\n((?:\t'.*\n)+)", kernel_btf())
    return set(re.findall(r"\t'(\w+)' val=", block.group(1))) if block else set()


def tracepoint_args(name: str) -> int:
    """How many arguments the kernel's tracepoint ``name`` passes (its
    ``btf_trace_<name>`` prototype, less the context)."""
    text = kernel_btf()

    def type_line(type_id: str) -> str:
        m = re.search(rf"^\[{type_id}\] (.*)$", text, flags=re.M)
        assert m, type_id
        return m.group(1)

    m = re.search(rf"^\[\d+\] TYPEDEF 'btf_trace_{name}' type_id=(\d+)$", text, flags=re.M)
    assert m, name
    pointer = re.search(r"type_id=(\d+)", type_line(m.group(1)))
    assert pointer, name
    return int(re.search(r"vlen=(\d+)", type_line(pointer.group(1))).group(1)) - 1


def kernel_drop_reasons() -> set[str]:
    """enum skb_drop_reason's members (5.17+: the drop events need it)."""
    names = kernel_enum("skb_drop_reason")
    assert names, "the kernel's BTF has no enum skb_drop_reason"
    return names


# What the kernel shows differs between the kernels of the matrix (the
# rows of docs/health.md's "Kernels"); each expectation below is the
# running kernel's, read from its BTF.


def drops_traced() -> bool:
    """Whether this kernel gives drop events: kfree_skb with its reason
    (5.17+). Where it does not (5.10), the tracer says so and makes none."""
    return tracepoint_args("kfree_skb") >= 3 and bool(kernel_enum("skb_drop_reason"))


def assert_no_drop_events(events: list[TcpEvent], warnings: str) -> None:
    assert not [e for e in events if e.kind == "drop"]
    assert "drop events are off: this kernel's kfree_skb has no drop reason" in warnings, warnings


def resets_without_socket_traced() -> bool:
    """Whether tcp_send_reset fires for a reset answering a packet that
    found no socket (a closed port): since 6.10, when it also gained its
    reason; before, only a socket's own resets are traced."""
    return tracepoint_args("tcp_send_reset") >= 3


def listen_overflow_reason() -> str:
    """The reason a handshake's last step into a full accept queue is
    dropped with: TCP_LISTEN_OVERFLOW where the kernel has it; before
    (6.1, 6.12), the listener's plain discard, NOT_SPECIFIED."""
    if "SKB_DROP_REASON_TCP_LISTEN_OVERFLOW" in kernel_drop_reasons():
        return "TCP_LISTEN_OVERFLOW"
    return "NOT_SPECIFIED"


def listener_drops_have_listener() -> bool:
    """Whether kfree_skb names the socket that received the packet
    (``rx_sk``): a listener's drop is then the listener's; without it
    (6.1), the packet's own, with no socket."""
    return tracepoint_args("kfree_skb") >= 4


def assert_reset_reason(rst: TcpEvent, name: str | None) -> None:
    """A sent reset's reason is the kernel's sk_rst_reason member ``name``
    (any if None), or 0 and unnamed on a kernel without the enum."""
    if not kernel_enum("sk_rst_reason"):
        assert rst.reason == 0 and rst.reason_name is None, rst
    elif name is None:
        assert f"SK_RST_REASON_{rst.reason_name}" in kernel_enum("sk_rst_reason"), rst
    else:
        assert rst.reason_name == name, rst


LOSSY_RULES = f"""
table inet tcpevent_health {{
  set syn_seen {{ type inet_service; }}
  set synack_seen {{ type inet_service; }}
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {PORT} tcp flags & (syn | ack) == syn tcp sport != @syn_seen \\
      add @syn_seen {{ tcp sport }} counter drop comment "syn"
    tcp sport {PORT} tcp flags & (syn | ack) == syn | ack tcp dport != @synack_seen \\
      add @synack_seen {{ tcp dport }} counter drop comment "synack"
    tcp dport {PORT} tcp flags & (syn | rst | fin) == 0 meta length > 1000 \\
      numgen inc mod 11 == 0 counter drop comment "data in"
    tcp sport {PORT} tcp flags & (syn | rst | fin) == 0 meta length > 1000 \\
      numgen inc mod 11 == 0 counter drop comment "data out"
  }}
}}
"""


def test_retransmits_match_the_kernels_counters() -> None:
    """First SYNs and first SYN-ACKs dropped, one data segment in 11 each
    way: every retransmission the namespace's counters saw is an event,
    of the cause they counted it as."""
    n = 6
    with netns() as ns:
        ns.nft(LOSSY_RULES)
        with tcpevent.Tracer(netns=[ns.inode], events=HEALTH, retransmit_interval=None) as tracer:
            before = ns.counters()
            did = run_workload(ns, "lossy", str(PORT), str(n))
            after = ns.counters()
            d = counters_delta(before, after)
            events = collect(
                tracer, lambda evs: closes_of(evs) >= d["ActiveOpens"] + d["PassiveOpens"]
            )
            stats, warnings = tracer.stats, tracer.warnings
        dropped = nft_counters(ns)

    assert all(e.netns == ns.inode for e in events)
    assert stats.dropped_kernel == stats.dropped_queue == 0
    rtx = [e for e in events if e.kind == "retransmit"]
    causes = Counter(e.cause for e in rtx)
    assert dropped["syn"] == dropped["synack"] == 2 * n, dropped
    assert dropped["data in"] and dropped["data out"], dropped
    # Every segment RetransSegs counted, in an event; nothing skipped.
    assert sum(e.segs for e in rtx) == d["RetransSegs"] > 0, (causes, d)
    assert all(e.skipped == 0 for e in rtx)
    assert causes["syn"] + causes["synack"] == d["TCPSynRetrans"], (causes, d)
    assert causes["syn"] >= 2 * n and causes["synack"] >= 2 * n, causes
    assert causes["probe"] <= d["TCPLossProbes"], (causes, d)
    # The retransmission timer's own: TCPTimeouts counts each firing that
    # retransmits (SYN, data), and each SYN-ACK timer's (docs/health.md).
    # A SYN-ACK is sent again by its timer (counted) or for a SYN sent again
    # (not): the event does not say which.
    timer = causes["timeout"] + causes["syn"]
    assert timer <= d["TCPTimeouts"] <= timer + causes["synack"], (causes, d)
    # Data retransmissions belong to the connections, with their owner.
    for e in rtx:
        assert e.dport == PORT or e.sport == PORT, e
        if e.cause != "synack":
            assert e.pid == did["pid"] and e.task, e
    # The close events say what each connection went through: the same
    # segments, by the same causes (SYN-ACKs are the listener's).
    closes = [e for e in events if e.kind == "close"]
    # Every socket the kernel counted, one close event each. With SYN-ACKs
    # lost, two ACKs of one request may be handled on two CPUs at once: the
    # child that loses the race for it is counted in PassiveOpens too, and
    # closed at once (an unowned close event).
    assert len(closes) == d["ActiveOpens"] + d["PassiveOpens"], (len(closes), d)
    assert d["ActiveOpens"] == 2 * n <= d["PassiveOpens"], d
    assert sum(e.retrans_segs for e in closes) + causes["synack"] == d["RetransSegs"]
    for name in ("timeout", "loss", "fast", "probe", "syn"):
        assert sum(getattr(e, f"retrans_{name}") for e in closes) == causes[name], name
    for e in closes:
        if e.retrans_segs:
            assert e.first_retrans_ns <= e.last_retrans_ns <= e.time_ns, e
        else:
            assert e.first_retrans_ns == e.last_retrans_ns == 0, e
    if not drops_traced():
        assert_no_drop_events(events, warnings)
        return
    # Drops on the input hook are drop events, NETFILTER_DROP, one each.
    nf = [e for e in events if e.kind == "drop" and e.reason_name == "NETFILTER_DROP"]
    assert len(nf) == sum(dropped.values()), (len(nf), dropped)
    names = kernel_drop_reasons()
    for e in events:
        if e.kind == "drop":
            assert e.reason_name and f"SKB_DROP_REASON_{e.reason_name}" in names, e


def test_the_rate_limit_counts_what_it_skips() -> None:
    """At most one retransmit event per connection a minute: the others are
    counted in `skipped` of the next event, or of the close."""
    n = 4
    with netns() as ns:
        ns.nft(LOSSY_RULES)
        with tcpevent.Tracer(netns=[ns.inode], events=HEALTH, retransmit_interval=60) as tracer:
            before = ns.counters()
            run_workload(ns, "lossy", str(PORT), str(n))
            d = counters_delta(before, ns.counters())
            events = collect(
                tracer, lambda evs: closes_of(evs) >= d["ActiveOpens"] + d["PassiveOpens"]
            )
    rtx = [e for e in events if e.kind == "retransmit" and e.cause != "synack"]
    per_conn = Counter((e.family, e.sport, e.dport) for e in rtx)
    assert per_conn and max(per_conn.values()) == 1, per_conn
    closes = [e for e in events if e.kind == "close"]
    total = sum(
        e.retrans_timeout + e.retrans_loss + e.retrans_fast + e.retrans_probe + e.retrans_syn
        for e in closes
    )
    # Each retransmission is an event or was skipped, counted at the close.
    assert len(rtx) + sum(e.skipped for e in closes) == total > len(rtx), (len(rtx), total)


def test_resets_match_out_rsts_and_what_was_provoked() -> None:
    """RST to a closed port, SO_LINGER 0, data to a closed socket, each
    family: sent resets equal OutRsts; each provoked one is received."""
    with netns() as ns, tcpevent.Tracer(netns=[ns.inode], events=HEALTH) as tracer:
        before = ns.counters()
        did = run_workload(ns, "resets", str(PORT))
        d = counters_delta(before, ns.counters())
        events = collect(tracer, lambda evs: closes_of(evs) >= d["ActiveOpens"] + d["PassiveOpens"])
    resets = [e for e in events if e.kind == "reset"]
    sent = [e for e in resets if e.cause == "sent"]
    received = [e for e in resets if e.cause == "received"]
    untraced = 0 if resets_without_socket_traced() else len(did["refused"])
    assert d["OutRsts"] == 6 and len(sent) == d["OutRsts"] - untraced, (sent, d)
    # To a closed port: no socket, the packet's endpoints, the kernel's reason.
    for port in did["refused"]:
        if untraced:
            assert not [e for e in sent if e.dport == port], sent
        else:
            (rst,) = [e for e in sent if e.dport == port]
            assert rst.sport == PORT + 1 and rst.pid == 0, rst
            assert_reset_reason(rst, "NO_SOCKET")
        (got,) = [e for e in received if e.sport == port]
        assert got.state is TcpState.SYN_SENT and got.pid == did["pid"], got
    # Abortive close: sent by the client just after its close (the owner
    # remembered), received by the server.
    for port in did["linger"]:
        (rst,) = [e for e in sent if e.sport == port]
        assert rst.pid == did["pid"] and rst.state is TcpState.CLOSE, rst
        assert_reset_reason(rst, None)
        (got,) = [e for e in received if e.dport == port and e.sport == PORT]
        assert got.pid == did["pid"] and got.state is TcpState.ESTABLISHED, got
    # Data to a closed socket: the orphan answers; the client receives it.
    for port in did["data_after_close"]:
        (rst,) = [e for e in sent if e.dport == port and e.sport == PORT]
        assert rst.pid == did["pid"], rst
        assert_reset_reason(rst, "TCP_ABORT_ON_DATA")
        (got,) = [e for e in received if e.sport == port]
        assert got.pid == did["pid"], got
    # A kernel may abort an orphan that data reaches through tcp_reset(), the
    # received-reset hook, though no reset came (6.1 and 6.12 do, for some
    # of them, in FIN_WAIT2; 6.18 was not seen to).
    aborted = [e for e in received if e.sport == PORT and e.dport in did["data_after_close"]]
    assert all(e.state is TcpState.FIN_WAIT2 for e in aborted), aborted
    assert len(aborted) <= len(did["data_after_close"]), aborted
    assert len(received) - len(aborted) == 6, received
    # The close events count the received ones; a reset sent after the
    # socket's close (all of these) is not in its close event.
    closes = [e for e in events if e.kind == "close"]
    assert sum(e.resets_received for e in closes) == len(received)
    assert sum(e.resets_sent for e in closes) == sum(
        e.pid != 0 and e.state is not TcpState.CLOSE for e in sent
    )


def test_a_full_accept_queue_gives_drop_events_naming_the_listener() -> None:
    """Backlog 1, never accepted. A client's handshake waits (its last ACK
    dropped) while two others fill the accept queue; then its data
    completes the handshake into the full queue: each time (ListenOverflows,
    ListenDrops) a TCP_LISTEN_OVERFLOW drop event of the listener."""
    client_port = PORT + 7
    rules = f"""
table inet tcpevent_health {{
  counter last_ack {{ }}
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {PORT} tcp sport {client_port} tcp flags & (syn | ack | fin | rst) == ack \\
      counter name "last_ack" drop
  }}
}}
"""
    with netns() as ns, tempfile.TemporaryDirectory() as tmp:
        go = os.path.join(tmp, "go")
        ns.nft(rules)
        with tcpevent.Tracer(netns=[ns.inode], events=HEALTH) as tracer:
            before = ns.counters()
            argv = ["overflow", str(PORT), str(client_port), go]
            proc = subprocess.Popen(
                [*ns.prefix, sys.executable, str(WORKLOAD), *argv],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert proc.stdout is not None
            assert json.loads(proc.stdout.readline())["ready"]
            # The rule goes, its named counter stays: a second ACK (for a
            # SYN-ACK sent again meanwhile) is dropped and counted, or not.
            ns.run("nft", "flush", "chain", "inet", "tcpevent_health", "input")
            dropped = named_counter(ns, "last_ack")
            Path(go).touch()
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode == 0
            did = json.loads(out.splitlines()[-1])
            d = counters_delta(before, ns.counters())
            events = collect(
                tracer, lambda evs: closes_of(evs) >= d["ActiveOpens"] + d["PassiveOpens"]
            )
            warnings = tracer.warnings
    assert dropped >= 1, dropped
    assert d["ListenOverflows"] > 1, d
    assert d["ListenDrops"] == d["ListenOverflows"], d
    if not drops_traced():
        assert_no_drop_events(events, warnings)
        return
    drops = [e for e in events if e.kind == "drop"]
    overflows = [e for e in drops if e.reason_name == listen_overflow_reason()]
    if listen_overflow_reason() == "TCP_LISTEN_OVERFLOW":
        assert len(overflows) == d["ListenOverflows"], (drops, d)
    else:
        # Unnamed, every discard at the listener is one reason: the client's
        # closing RST that ends its request (EmbryonicRsts) too, and a
        # request's other discards (6.1: one more in some runs).
        least = d["ListenOverflows"] + d["EmbryonicRsts"]
        assert least <= len(overflows) <= least + 2, (drops, d)
    # The listener: its port, its state; the waiting client as the peer (or,
    # without rx_sk, the packet's own endpoints: the same ports).
    state = TcpState.LISTEN if listener_drops_have_listener() else TcpState.UNKNOWN
    for e in overflows:
        assert (e.sport, e.dport, e.state) == (PORT, client_port, state), e
        assert e.saddr == e.daddr == "127.0.0.1" and e.netns == ns.inode, e
    assert {e.dport for e in drops} >= {client_port}
    assert not {e.dport for e in overflows} & set(did["queued"])
    nf = [e for e in drops if e.reason_name == "NETFILTER_DROP"]
    assert len(nf) == dropped
    names = kernel_drop_reasons()
    assert all(f"SKB_DROP_REASON_{e.reason_name}" in names for e in drops)


def test_close_only_by_default_and_nothing_health_attached() -> None:
    """Without the new kinds, no health program is even loaded: a close
    event's health fields are 0 even on a lossy namespace."""
    with netns() as ns:
        ns.nft(LOSSY_RULES)
        programs_before = bpf_program_names()
        with tcpevent.Tracer(netns=[ns.inode]) as tracer:
            programs = bpf_program_names() - programs_before
            before = ns.counters()
            run_workload(ns, "lossy", str(PORT), "2")
            d = counters_delta(before, ns.counters())
            events = collect(
                tracer, lambda evs: closes_of(evs) >= d["ActiveOpens"] + d["PassiveOpens"]
            )
    assert d["RetransSegs"] > 0
    assert {e.kind for e in events} == {"close"}
    assert sum(e.retrans for e in events) > 0  # the kernel's own count, as always
    for e in events:
        assert e.retrans_segs == e.drops == e.resets_sent == e.resets_received == 0
    health = {"tcpevent_retran", "tcpevent_reset_s", "tcpevent_reset_r", "tcpevent_drop"}
    # The tracer's own programs are there (the host's other ones left out).
    assert {p[1] for p in programs} >= {"tcpevent_state"}, programs
    assert not health & {p[1] for p in programs}, programs


LEGACY_CLIENT = """
import contextlib, json, os, socket, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
from netutil import connection, set_reset_on_close
from tcpevent import abi

def programs():
    out = subprocess.run(["bpftool", "-j", "prog", "show"], check=True,
                         capture_output=True, text=True).stdout
    return {(p["id"], p.get("name", "")) for p in json.loads(out)}

lib = abi.load_library()
before = programs()
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
after = programs()
mine = [name for id_, name in after - before]
sockets = []
conns = [connection(reset=True) for _ in range(2)]
for c in conns:
    sockets += [(c.client.port, c.server.port), (c.server.port, c.client.port)]
with socket.socket() as s:  # a port nothing listens on: bound, then released
    s.bind(("127.0.0.1", 0))
    closed = s.getsockname()[1]
with socket.socket() as s:  # refused: RST sent and received, a SYN dropped
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    with contextlib.suppress(ConnectionRefusedError):
        s.connect(("127.0.0.1", closed))
sockets.append((port, closed))
time.sleep(1.0)
lib.cleanup()
reader.join()
print(json.dumps({"sockets": sockets, "events": events, "programs": mine}))
"""


def test_the_original_abi_stays_close_only() -> None:
    """AddProbe() loads no health program (the programs loaded while it
    attached: its own, and any other process's then), and resets and drops
    give DequeuePerfEvent() nothing but each socket's one close."""
    out = subprocess.run(
        [sys.executable, "-c", LEGACY_CLIENT, str(HERE / "support")],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    result = json.loads(out)
    assert "tcpevent_state" in result["programs"], result["programs"]
    health = ("tcpevent_retran", "tcpevent_reset_", "tcpevent_drop")
    assert not [p for p in result["programs"] if p.startswith(health)], result["programs"]
    ours = {tuple(p) for p in result["sockets"]}
    got = Counter(tuple(e) for e in result["events"] if tuple(e) in ours)
    assert got == dict.fromkeys(ours, 1), got


def bpf_program_names() -> set[tuple[int, str]]:
    """(id, 15-character name) of every BPF program loaded on the host."""
    out = subprocess.run(
        ["bpftool", "-j", "prog", "show"], check=True, capture_output=True, text=True
    ).stdout
    return {(p["id"], p.get("name", "")) for p in json.loads(out)}


def test_the_command_line_names_what_happened() -> None:
    """--events reset,drop: JSON lines carry the kind, the cause and the
    kernel's reason by name; the line format says it in words."""
    # Two resets to a closed port, two abortive closes, two data after a
    # close: each sent and received (the first two not sent where the
    # kernel traces no reset without a socket); reasons where it has them.
    no_socket = 2 if resets_without_socket_traced() else 0
    count = 10 + no_socket
    reasons_on = bool(kernel_enum("sk_rst_reason"))
    # The first 10 (12) are read: a kernel that aborts an orphan through
    # tcp_reset() adds a received one in FIN_WAIT2 (test_resets_match...),
    # and as many of the last ones are then left out.
    with netns() as ns:
        for fmt in ("json", "line"):
            args = ["--events", "reset", "--netns", ns.name, "--format", fmt, "--count", str(count)]
            proc = subprocess.Popen(
                [sys.executable, "-m", "tcpevent", *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                # Its own three links, and the two reset hooks'.
                attached = functools.partial(bpfutil.attached, proc.pid, links=5)
                assert wait_until(attached, timeout=ATTACH_TIMEOUT)
                run_workload(ns, "resets", str(PORT))
                out, err = proc.communicate(timeout=10 * PROMPTLY)
            finally:
                proc.kill()
                proc.wait()
            assert proc.returncode == 0, err
            if fmt == "json":
                lines = [json.loads(line) for line in out.splitlines()]
                causes = Counter(d["cause"] for d in lines)
                extra = sum(d["cause"] == "received" and d["state"] == "FIN_WAIT2" for d in lines)
                assert len(lines) == count and extra <= 2, lines
                assert 4 + no_socket - extra <= causes["sent"] <= 4 + no_socket, lines
                assert {d["kind"] for d in lines} == {"reset"}
                reasons = Counter(d["reason"] for d in lines if d["cause"] == "sent")
                if reasons_on:
                    assert reasons["NO_SOCKET"] == no_socket, reasons
                    assert 2 - extra <= reasons["TCP_ABORT_ON_DATA"] <= 2, reasons
                else:
                    assert set(reasons) == {None}, reasons
                assert all(d["reason"] is None for d in lines if d["cause"] == "received")
            else:
                header, *rows = out.splitlines()
                assert header.split()[:2] == ["TIME", "EVENT"] and header.split()[-1] == "DETAIL"
                assert sum("reset received in SYN_SENT" in row for row in rows) == 2, out
                extra = sum("reset received in FIN_WAIT2" in row for row in rows)
                assert len(rows) == count and extra <= 2, out
                if reasons_on:
                    no_port = "reset sent (NO_SOCKET), no socket"
                    assert sum(no_port in row for row in rows) == no_socket, out
                    on_data = sum("reset sent (TCP_ABORT_ON_DATA) in CLOSE" in row for row in rows)
                    assert 2 - extra <= on_data <= 2, out
                else:
                    # No reason to name: the abortive closes' and the data's.
                    assert sum("reset sent, no socket" in row for row in rows) == no_socket, out
                    closed = sum("reset sent in CLOSE" in row for row in rows)
                    assert 4 - extra <= closed <= 4, out
