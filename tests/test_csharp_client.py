"""The C# client (examples/csharp), built with mcs and run under Mono.

It declares what RealTimeKql's EbpfSession declares ([DllImport("event")]
setupBPF(char[]) and DequeuePerfEvent() returning a packed struct with
ByValTStr strings), so it loads our library as libevent.so: from
LD_LIBRARY_PATH, or from the assembly's own directory.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401  (peers resolve addresses after dropping to a uid that cannot import it)
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import bpfutil
import pytest
from netutil import Connection, connection, wait_until
from peer import Peer, peer_connection
from procutil import Owner, check_pair, parse_blocks, start, wait_until_tracing

pytestmark = pytest.mark.bpf

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "csharp" / "TcpEventClient.cs"
# It prints the seed example's blocks: parse_blocks() names the fields as
# check_pair() does.
FIELDS = ("pid", "uid", "task", "saddr", "sport", "daddr", "dport")
KEYS = {k: k for k in (*FIELDS, "rx", "tx", "segs_out", "segs_in", "time")}
NOBODY = 65534


@dataclass(frozen=True)
class Case:
    family: int
    host: str | None  # None: the family's loopback
    client_sends: int
    server_sends: int
    closing: tuple[tuple[str, str], ...]  # (peer, command) in order


CASES = {
    "ipv4-fin": Case(
        socket.AF_INET,
        None,
        3000,
        1500,
        (("client", "close"), ("server", "wait-fin"), ("server", "close")),
    ),
    "ipv6-client-resets": Case(
        socket.AF_INET6, None, 777, 54321, (("client", "reset"), ("server", "close"))
    ),
    "ipv4-mapped-server-resets": Case(
        socket.AF_INET6, "::ffff:127.0.0.1", 4242, 99, (("server", "reset"), ("client", "close"))
    ),
}


@dataclass(frozen=True)
class Made:
    conn: Connection
    owners: tuple[Owner, Owner]
    closed: tuple[int, int]


def make(case: Case) -> Made:
    """One connection between two processes, the server as another uid."""
    server = Peer("server", case.family, "te-cs-server", uid=NOBODY, host=case.host)
    client = Peer(
        "client", case.family, "te-cs-client", connect_port=server.listen_port, host=case.host
    )
    c, s = client.accept_info(), server.accept_info()
    client.do(f"send {case.client_sends}")
    server.do(f"recv {case.client_sends}")
    server.do(f"send {case.server_sends}")
    client.do(f"recv {case.server_sends}")
    peers = {"client": client, "server": server}
    first = time.time_ns()
    for who, command in case.closing:
        peers[who].do(command)
    last = time.time_ns()
    client.finish()
    server.finish()
    return Made(
        peer_connection(case.family, c, s, case.client_sends, case.server_sends),
        (Owner(c.pid, os.getuid(), "te-cs-client"), Owner(s.pid, NOBODY, "te-cs-server")),
        (first, last),
    )


@pytest.fixture(scope="module")
def csharp(tmp_path_factory: pytest.TempPathFactory, libpath: Path) -> dict[str, Path]:
    """The client compiled by mcs; our library as libevent.so, once in a
    directory of its own (for LD_LIBRARY_PATH) and once beside a copy of
    the assembly."""
    mcs = shutil.which("mcs")
    assert mcs and shutil.which("mono"), "mono-mcs and mono-runtime are needed (make deps)"
    d = tmp_path_factory.mktemp("csharp")
    app, lib, beside = d / "app", d / "lib", d / "beside"
    for sub in (app, lib, beside):
        sub.mkdir()
    exe = app / "TcpEventClient.exe"
    subprocess.run([mcs, "-warnaserror", f"-out:{exe}", str(EXAMPLE)], check=True)
    (lib / "libevent.so").symlink_to(libpath)
    shutil.copy2(exe, beside / exe.name)
    (beside / "libevent.so").symlink_to(libpath)
    return {"exe": exe, "lib": lib, "beside": beside / exe.name}


def port_seen(text: str, port: int) -> bool:
    return any(b["sport"] == port for b in parse_blocks(text))


def test_every_field_of_every_event_is_exact(csharp: dict[str, Path]) -> None:
    env = dict(os.environ, LD_LIBRARY_PATH=str(csharp["lib"]))
    proc, out = start(["mono", str(csharp["exe"])], env=env)
    try:
        wait_until_tracing(out, port_seen, timeout=60)  # setupBPF, then 3 s asleep
        ours = bpfutil.held_by(proc.pid)
        assert ours["prog_id"] and ours["link_id"], ours
        made = {name: make(case) for name, case in CASES.items()}
        ports = [p for m in made.values() for p in (m.conn.client.port, m.conn.server.port)]
        assert out.wait_for(lambda t: all(port_seen(t, p) for p in ports), timeout=30), out.text()
        events = parse_blocks(out.text())
        for m in made.values():
            check_pair(events, m.conn, KEYS, owners=m.owners, closed=m.closed)
    finally:
        proc.terminate()  # Mono has no SIGTERM handler: it dies, the kernel detaches
        proc.wait(10)
    assert wait_until(lambda: not bpfutil.owned_by_kernel(ours), timeout=5)
    stderr = proc.stderr.read() if proc.stderr else ""
    # The BCC text it passes is accepted, not compiled: one notice says so.
    assert stderr.count("tcpevent: setupBPF: the ") == 1, stderr
    assert "not compiled" in stderr and "Exception" not in stderr, stderr


def test_stops_cleanly_with_the_library_beside_the_assembly(csharp: dict[str, Path]) -> None:
    """No LD_LIBRARY_PATH: Mono finds libevent.so in the assembly's
    directory. After one event (anyone's: the host is shared) the client
    calls cleanup(), which makes its setupBPF() thread return 0."""
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    proc, out = start(["mono", str(csharp["beside"]), "1"], env=env)
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            connection(client_sends=1, server_sends=1)
            time.sleep(0.2)
        assert proc.wait(10) == 0, (out.text(), proc.stderr.read() if proc.stderr else "")
    finally:
        proc.kill()
    assert out.wait_for(lambda t: len(parse_blocks(t)) == 1, timeout=5), out.text()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert stderr.splitlines()[-1] == "setupBPF returned 0", stderr
