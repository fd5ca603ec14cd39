"""``connections(netns=...)`` and ``tcpevent --connections --netns``: the live
sockets of another network namespace, with their cgroup and container.

A connection is held open inside a network namespace of the test's own
(loopback only) by two forked processes placed in a container-like cgroup
(``cri-containerd-<id>.scope``) made under the test's own cgroup.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from nsutil import Cgroup, Netns, cgroup_root, netns, placer
from peer import Peer, PeerInfo

import tcpevent
from tcpevent import _core
from tcpevent.cli import command as cli
from tcpevent.connections import Connection

pytestmark = pytest.mark.bpf  # making namespaces and cgroups needs root


@dataclass
class Held:
    ns: Netns
    cgroup: Cgroup
    container_id: str
    server: PeerInfo
    client: PeerInfo

    def ends(self) -> set[tuple[int, int, int]]:
        """(pid, local port, remote port) of both sockets."""
        s, c = self.server, self.client
        return {(s.pid, s.port, c.port), (c.pid, c.port, s.port)}


def ours(conns: list[Connection], held: Held) -> list[Connection]:
    return [c for c in conns if (c.pid, c.sport, c.dport) in held.ends()]


@pytest.fixture
def held() -> Iterator[Held]:
    cid = secrets.token_hex(32)
    with cgroup_root() as top, netns() as ns:
        cg = top.child(f"cri-containerd-{cid}.scope")
        enter = placer(cg, ns)
        server = Peer("server", socket.AF_INET, "te-ns-srv", enter=enter)
        try:
            client = Peer(
                "client", socket.AF_INET, "te-ns-cli", connect_port=server.listen_port, enter=enter
            )
            try:
                h = Held(ns, cg, cid, server.accept_info(), client.accept_info())
                client.do("send 300")
                server.do("recv 300")
                yield h
                client.do("close")
                server.do("close")
            finally:
                client.finish()
        finally:
            server.finish()


def test_lists_another_namespaces_sockets(held: Held) -> None:
    for given in (held.ns.name, held.ns.path, held.ns.inode, str(held.ns.inode)):
        got = ours(tcpevent.connections(netns=given), held)
        assert {(c.pid, c.sport, c.dport) for c in got} == held.ends(), given
        for c in got:
            assert c.state == tcpevent.TcpState.ESTABLISHED
            assert c.saddr == c.daddr == "127.0.0.1"
            assert c.cgroup_id == held.cgroup.id
            assert c.cgroup == held.cgroup.path
            assert c.container_id == held.container_id
            assert c.pod_uid is None
            d = c.to_dict(resolve=True)
            assert (d["cgroup"], d["container_id"]) == (held.cgroup.path, held.container_id)
        server = next(c for c in got if c.sport == held.server.port)
        assert server.info is not None and server.info.bytes_received == 300
    # Our own namespace does not have them.
    assert ours(tcpevent.connections(), held) == []


def test_an_unknown_namespace_is_a_clear_error(held: Held) -> None:
    with pytest.raises(ValueError, match="tcpevent-no-such"):
        tcpevent.connections(netns="tcpevent-no-such")
    with pytest.raises(ValueError, match="/nonexistent/ns"):
        tcpevent.connections(netns="/nonexistent/ns")
    with pytest.raises(ValueError, match="not a network namespace"):
        tcpevent.connections(netns="/proc/self/ns/uts")
    with pytest.raises(ValueError, match="no process"):
        tcpevent.connections(netns=2**32 - 2)
    with pytest.raises(TypeError):
        tcpevent.connections(netns=1.5)  # type: ignore[arg-type]


def _query(netns_path: bytes | None, size_delta: int = 0) -> tuple[int, str]:
    """tcpevent_connections() called as a C program would."""
    ffi, lib = _core.ffi, _core.lib
    q = ffi.new("struct tcpevent_conn_query *")
    lib.tcpevent_conn_query_init(q)
    keep = None
    if netns_path is not None:
        keep = ffi.new("char[]", netns_path)
        q.netns = keep
    q.size += size_delta
    out = ffi.new("struct tcpevent_conn **")
    count = ffi.new("size_t *")
    rc = lib.tcpevent_connections(q, out, count)
    lib.tcpevent_connections_free(out[0], count[0])
    del keep
    return rc, _core.last_error()


def test_c_api_errors_and_the_older_query_size(held: Held) -> None:
    rc, text = _query(b"/proc/self/ns/uts")
    assert rc == -errno.EINVAL and "/proc/self/ns/uts is not a network namespace" in text
    rc, text = _query(b"/nonexistent/ns")
    assert rc == -errno.ENOENT and "/nonexistent/ns" in text
    rc, text = _query(b"")
    assert rc == -errno.EINVAL and "empty" in text
    rc, _ = _query(held.ns.path.encode())
    assert rc == 0
    # A caller built before netns was appended: accepted, its own namespace.
    v1 = _core.ffi.offsetof("struct tcpevent_conn_query", "netns")
    size = _core.ffi.sizeof("struct tcpevent_conn_query")
    assert _query(None, v1 - size)[0] == 0
    rc, text = _query(None, 4)
    assert rc == -errno.EINVAL and "query size" in text


def test_cli_connections_netns(held: Held, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--connections", "--json", "--netns", held.ns.name]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    mine = [r for r in rows if (r["pid"], r["sport"], r["dport"]) in held.ends()]
    assert len(mine) == 2
    for r in mine:
        assert r["container_id"] == held.container_id
        assert r["cgroup"] == held.cgroup.path
        assert r["cgroup_id"] == held.cgroup.id
    # The table, through the real command.
    table = subprocess.run(
        [sys.executable, "-m", "tcpevent", "--connections", "--netns", held.ns.path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"127.0.0.1:{held.server.port}" in table and "te-ns-srv" in table


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--netns", "tcpevent-no-such"], "tcpevent-no-such"),
        (["--netns", "/proc/self/ns/uts"], "not a network namespace"),
        (["--netns", "a", "--netns", "b"], "one network namespace"),
    ],
)
def test_cli_connections_netns_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--connections", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err


def test_the_calling_thread_stays_in_its_namespace(held: Held) -> None:
    before = os.stat("/proc/thread-self/ns/net").st_ino
    tcpevent.connections(netns=held.ns.name)
    assert os.stat("/proc/thread-self/ns/net").st_ino == before
