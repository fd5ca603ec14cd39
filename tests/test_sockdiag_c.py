"""Tests of the C sock_diag client (csrc/sockdiag_*.c, csrc/connections.c,
csrc/snapshot_record.c, csrc/procowner.c).

The driver tests/support/c/test_sockdiag.c is compiled twice (plain and with
ASan/UBSan); the connections it lists are real loopback sockets made here,
on 127.0.0.1 and ::1 only. Every check filters by this test's own ports or
pid: the machine has other sockets.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    "tests/support/c/test_sockdiag.c",
    # the sock_diag client, file by file (csrc/sockdiag.h)
    "csrc/sockdiag_parse.c",
    "csrc/sockdiag_dump.c",
    "csrc/sockdiag_netlink.c",
    "csrc/connections.c",
    "csrc/snapshot_record.c",
    "csrc/procowner.c",
    "csrc/error.c",  # te_fail(): the library's one error channel
    "csrc/sorted.c",  # te_cmp_u32(): procowner.c's sorted pids
]
WARN_FLAGS = ["-Wall", "-Wextra", "-Icsrc/include", "-Icsrc"]
SAN_FLAGS = [
    "-O1",
    "-g",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
]
SAN_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
}

TCP_ESTABLISHED = 1
TCP_FIN_WAIT2 = 5
TCP_CLOSE_WAIT = 8
# struct tcp_info offsets (include/uapi/linux/tcp.h, Linux 6.18): u8 state
# at 0, u32 rtt at 68, u64 bytes_acked at 120, u64 bytes_received at 128.
TI_STATE, TI_RTT, TI_BYTES_ACKED, TI_BYTES_RECEIVED = 0, 68, 120, 128


def _compile(out: Path, extra: list[str]) -> Path:
    cmd = ["gcc", *extra, *WARN_FLAGS, *SOURCES, "-o", str(out), "-lbpf"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    # warning-free is part of the contract
    assert "warning" not in proc.stderr, proc.stderr
    return out


@pytest.fixture(scope="session")
def driver(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory.mktemp("sockdiag") / "test_sockdiag", ["-O2"])


@pytest.fixture(scope="session")
def driver_asan(tmp_path_factory) -> Path:
    return _compile(tmp_path_factory.mktemp("sockdiag_asan") / "test_sockdiag", SAN_FLAGS)


def run(drv: Path, *args: str, sanitized: bool = False, check: bool = True):
    env = dict(os.environ, **SAN_ENV) if sanitized else None
    proc = subprocess.run([str(drv), *args], capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def list_conns(drv: Path, *args: str, sanitized: bool = False) -> list[dict]:
    proc = run(drv, "list", *args, sanitized=sanitized)
    return [json.loads(line) for line in proc.stdout.splitlines() if line]


def tcp_info(sock: socket.socket) -> bytes:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)


def info_counters(sock: socket.socket) -> tuple[int, int]:
    raw = tcp_info(sock)
    return struct.unpack_from("<QQ", raw, TI_BYTES_ACKED)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "peer closed early"
        data += chunk
    return data


def own_comm() -> str:
    return Path("/proc/self/comm").read_text().rstrip("\n")


def own_cmdline() -> str:
    raw = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0")
    return raw.replace(b"\0", b" ").decode()


class Pair:
    """A held-open loopback connection: client, accepted server, listener."""

    def __init__(
        self,
        family: int,
        host: str,
        connect_family: int | None = None,
        connect_host: str | None = None,
    ):
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        cfam = connect_family or family
        self.client = socket.socket(cfam, socket.SOCK_STREAM)
        if cfam == socket.AF_INET6:
            self.client.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.client.connect((connect_host or host, self.port))
        self.server, _ = self.listener.accept()
        self.cport = self.client.getsockname()[1]

    def exchange(self, up: int, down: int) -> None:
        self.client.sendall(b"u" * up)
        recv_exactly(self.server, up)
        self.server.sendall(b"d" * down)
        recv_exactly(self.client, down)

    def close(self) -> None:
        for s in (self.client, self.server, self.listener):
            s.close()


def stable_listing(drv: Path, pair: Pair, *args: str):
    """List while the counters hold still: read TCP_INFO before and after
    the dump, retry until they agree (a delayed ACK may land in between)."""
    for _ in range(20):
        before = (info_counters(pair.client), info_counters(pair.server))
        conns = list_conns(drv, *args)
        after = (info_counters(pair.client), info_counters(pair.server))
        if before == after:
            return conns, after
        time.sleep(0.05)
    pytest.fail("tcp_info counters never settled")


def find(conns: list[dict], sport: int, dport: int) -> dict:
    hits = [c for c in conns if c["sport"] == sport and c["dport"] == dport]
    assert len(hits) == 1, f"{sport}->{dport}: {len(hits)} entries"
    return hits[0]


def test_parse_short(driver):
    proc = run(driver, "parse-short")
    print(proc.stdout)
    assert "parse-short: 0 failure(s)" in proc.stdout


def test_parse_short_sanitized(driver_asan):
    proc = run(driver_asan, "parse-short", sanitized=True)
    assert "parse-short: 0 failure(s)" in proc.stdout
    assert "runtime error" not in proc.stderr, proc.stderr


def test_restart_logic_sanitized(driver_asan):
    proc = run(driver_asan, "restart", sanitized=True)
    print(proc.stdout)
    assert "restart: 0 failure(s)" in proc.stdout
    assert "runtime error" not in proc.stderr, proc.stderr


def test_fuzz_sanitized(driver_asan):
    proc = run(driver_asan, "fuzz", "30000", sanitized=True)
    print(proc.stdout)
    assert "fuzz: 30000 iterations" in proc.stdout
    assert "runtime error" not in proc.stderr, proc.stderr


def test_ipv4_connection_fields(driver):
    pair = Pair(socket.AF_INET, "127.0.0.1")
    try:
        pair.exchange(1000, 2500)
        conns, (cli, srv) = stable_listing(
            driver, pair, "4", "--port", str(pair.port), "--process", "--cmdline"
        )
        client = find(conns, pair.cport, pair.port)
        server = find(conns, pair.port, pair.cport)
        raw = tcp_info(pair.client)
        # our Python-side offsets are right: exactly 2500 bytes came in
        assert raw[TI_STATE] == TCP_ESTABLISHED
        assert cli[1] == 2500 and srv[1] == 1000
        for entry, counters in ((client, cli), (server, srv)):
            info = entry["info"]
            assert entry["family"] == socket.AF_INET
            assert entry["saddr"] == "127.0.0.1" and entry["daddr"] == "127.0.0.1"
            assert entry["state"] == TCP_ESTABLISHED
            assert entry["pid"] == os.getpid()
            assert entry["task"] == own_comm()
            assert entry["cmdline"] == own_cmdline()
            assert entry["uid"] == os.getuid()
            assert entry["inode"] > 0 and entry["cookie"] > 0
            assert entry["shutdown"] == 0
            assert entry["cong"] != ""
            assert entry["skmem_count"] >= 9
            assert entry["info_len"] == len(raw)
            assert (info["bytes_acked"], info["bytes_received"]) == counters
            assert info["rtt"] > 0
            assert info["state"] == TCP_ESTABLISHED
            assert info["total_rto_time"] is not None
        assert client["info"]["data_segs_out"] >= 1
    finally:
        pair.close()


def test_shutdown_and_states(driver):
    pair = Pair(socket.AF_INET, "127.0.0.1")
    try:
        pair.client.shutdown(socket.SHUT_WR)
        assert pair.server.recv(1) == b""
        for _ in range(50):
            conns = list_conns(driver, "4", "--port", str(pair.port))
            client = find(conns, pair.cport, pair.port)
            if client["state"] == TCP_FIN_WAIT2:
                break
            time.sleep(0.02)
        server = find(conns, pair.port, pair.cport)
        assert client["state"] == TCP_FIN_WAIT2
        assert client["shutdown"] == 2  # SEND_SHUTDOWN
        assert server["state"] == TCP_CLOSE_WAIT
        assert server["shutdown"] == 1  # RCV_SHUTDOWN
        # owners were not asked for
        assert client["pid"] == 0 and client["cmdline"] is None
    finally:
        pair.close()


def test_ipv6_loopback(driver):
    pair = Pair(socket.AF_INET6, "::1")
    try:
        pair.exchange(10, 20)
        conns = list_conns(driver, "6", "--port", str(pair.port), "--process")
        client = find(conns, pair.cport, pair.port)
        assert client["family"] == socket.AF_INET6
        assert client["saddr"] == "::1" and client["daddr"] == "::1"
        assert client["pid"] == os.getpid()
        assert client["info"]["bytes_received"] == 20
        # an IPv4-only dump does not show it
        assert not list_conns(driver, "4", "--port", str(pair.port))
    finally:
        pair.close()


def test_ipv4_mapped_ipv6(driver):
    pair = Pair(
        socket.AF_INET,
        "127.0.0.1",
        connect_family=socket.AF_INET6,
        connect_host="::ffff:127.0.0.1",
    )
    try:
        conns = list_conns(driver, "0", "--port", str(pair.port))
        client = find(conns, pair.cport, pair.port)
        server = find(conns, pair.port, pair.cport)
        assert client["family"] == socket.AF_INET6
        assert client["saddr"] == "::ffff:127.0.0.1"
        assert client["daddr"] == "::ffff:127.0.0.1"
        assert server["family"] == socket.AF_INET and server["saddr"] == "127.0.0.1"
    finally:
        pair.close()


def test_pid_filter(driver):
    pair = Pair(socket.AF_INET, "127.0.0.1")
    try:
        port = str(pair.port)
        mine = list_conns(driver, "4", "--port", port, "--pid", str(os.getpid()))
        assert {(c["sport"], c["dport"]) for c in mine} == {
            (pair.cport, pair.port),
            (pair.port, pair.cport),
        }
        assert all(c["pid"] == os.getpid() for c in mine)
        # a process that does not hold them: nothing
        other = subprocess.Popen(["sleep", "30"])
        try:
            assert not list_conns(driver, "4", "--port", port, "--pid", str(other.pid))
        finally:
            other.kill()
            other.wait()
    finally:
        pair.close()


def test_listing_sanitized(driver_asan):
    """The real dump and the /proc scan, under ASan/UBSan (and LSan)."""
    pair = Pair(socket.AF_INET, "127.0.0.1")
    try:
        pair.exchange(100, 200)
        conns = list_conns(
            driver_asan,
            "0",
            "--port",
            str(pair.port),
            "--process",
            "--cmdline",
            "--states",
            "0xffffffff",
            sanitized=True,
        )
        listener = find(conns, pair.port, 0)
        assert listener["state"] == 10  # LISTEN, asked for by the mask
        assert find(conns, pair.cport, pair.port)["pid"] == os.getpid()
    finally:
        pair.close()


@pytest.fixture
def many_fds():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 10000 if hard == resource.RLIM_INFINITY else min(hard, 10000)
    assert want >= 4200, f"RLIMIT_NOFILE hard limit {hard} is too low for 2,000 connections"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_2000_connections(driver, many_fds):
    n = 2000
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    clients, servers = [], []
    linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT left over
    try:
        for _ in range(n):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            clients.append(c)
            c.connect(("127.0.0.1", port))
            s, _ = listener.accept()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            servers.append(s)
        cports = sorted(c.getsockname()[1] for c in clients)

        t0 = time.monotonic()
        proc = run(driver, "list", "4", "--port", str(port), "--process", "--time")
        wall = (time.monotonic() - t0) * 1e3
        timing = json.loads(proc.stderr.strip().splitlines()[-1])
        print(f"\n2000 connections: {timing} (driver wall time {wall:.1f} ms)")
        conns = [json.loads(line) for line in proc.stdout.splitlines()]

        srv_side = sorted(c["dport"] for c in conns if c["sport"] == port)
        cli_side = sorted(c["sport"] for c in conns if c["dport"] == port)
        assert srv_side == cports  # each accepted socket once
        assert cli_side == cports  # each client socket once
        assert len(conns) == 2 * n
        assert all(c["pid"] == os.getpid() for c in conns)
        assert all(c["state"] == TCP_ESTABLISHED for c in conns)
        assert timing["count"] == 2 * n
        assert timing["total_ms"] < 1000, timing
    finally:
        for s in clients + servers + [listener]:
            s.close()


def test_bench_driver(driver, many_fds):
    proc = run(driver, "bench", "2000")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"\nbench: {result}")
    assert result["sockets"] == 4000 and result["owned"] == 4000
    assert result["total_ms"] < 1000, result
