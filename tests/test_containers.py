"""Every event names its socket's own cgroup, network namespace, container
and pod, read from the socket in the kernel: right in softirq, and after its
process moved to another cgroup. And the kernel's cgroup and netns filters.

Real kernel, real cgroups of the test's own under the cgroup v2 hierarchy,
real network namespaces of the test's own (loopback only). Each side of a
connection is a forked process placed in its cgroup and namespace before it
makes its socket; events are picked by that process's pid and ports.
"""

from __future__ import annotations

import errno
import pickle
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from nsutil import Cgroup, Netns, cgroup_root, netns, own_cgroup, placer
from peer import Peer, PeerInfo

import tcpevent
from tcpevent import TcpEvent

pytestmark = pytest.mark.bpf

#: Longest wait for the events of a connection that has closed.
EVENTS_WAIT = 15.0


@dataclass
class Side:
    """One end of a finished connection: its process and where it was put."""

    info: PeerInfo
    cgroup: Cgroup
    ns: Netns | None
    peer_port: int

    def matches(self, ev: TcpEvent) -> bool:
        return (ev.pid, ev.sport, ev.dport) == (self.info.pid, self.info.port, self.peer_port)


def pair(
    server_cg: Cgroup,
    client_cg: Cgroup,
    ns: Netns | None,
    close: str = "orderly",
    before_close: Callable[[Peer, Peer], None] | None = None,
) -> tuple[Side, Side]:
    """A connection between a server in ``server_cg`` and a client in
    ``client_cg``, both in ``ns``: data both ways, then closed ``close``:
    ``orderly`` (the client first), ``client-resets`` or ``server-resets``
    (SO_LINGER 0: the other side's socket is closed in softirq by the RST)."""
    server = Peer("server", socket.AF_INET, "te-cg-srv", enter=placer(server_cg, ns))
    try:
        client = Peer(
            "client",
            socket.AF_INET,
            "te-cg-cli",
            connect_port=server.listen_port,
            enter=placer(client_cg, ns),
        )
        try:
            c = client.accept_info()
            s = server.accept_info()
            client.do("send 1000")
            server.do("recv 1000")
            server.do("send 2000")
            client.do("recv 2000")
            if before_close is not None:
                before_close(server, client)
            first, second = (server, client) if close == "server-resets" else (client, server)
            if close == "orderly":
                first.do("close")
                second.do("wait-fin")
            else:
                first.do("reset")
                second.do("wait-reset")
            second.do("close")
        finally:
            client.finish()
    finally:
        server.finish()
    return Side(s, server_cg, ns, c.port), Side(c, client_cg, ns, s.port)


def collect(tracer: tcpevent.Tracer, sides: list[Side]) -> dict[int, TcpEvent]:
    """The close event of each side (by index), waiting for all of them."""
    found: dict[int, TcpEvent] = {}
    deadline = time.monotonic() + EVENTS_WAIT
    while len(found) < len(sides) and time.monotonic() < deadline:
        for ev in tracer.dequeue_batch(256, timeout=0.2):
            for i, side in enumerate(sides):
                if side.matches(ev):
                    assert i not in found, f"two events for {side}: {found[i]} and {ev}"
                    found[i] = ev
    missing = [sides[i] for i in range(len(sides)) if i not in found]
    assert not missing, f"no event for {missing}"
    return found


def check(ev: TcpEvent, side: Side) -> None:
    assert ev.kind == "close"
    assert ev.cgroup_id == side.cgroup.id
    assert ev.cgroup == side.cgroup.path
    if side.ns is not None:
        assert ev.netns == side.ns.inode


@pytest.fixture
def top() -> Iterator[Cgroup]:
    with cgroup_root() as cg:
        yield cg


@pytest.fixture
def two_netns() -> Iterator[tuple[Netns, Netns]]:
    with netns() as one, netns() as two:
        assert one.inode != two.inode
        yield one, two


# ---- cgroup, netns and the close in softirq ------------------------------------------------


def test_each_side_names_its_own_cgroup_and_namespace(
    top: Cgroup, two_netns: tuple[Netns, Netns]
) -> None:
    a, b = top.child("a"), top.child("b")
    cases = [(ns, how) for ns in two_netns for how in ("orderly", "client-resets", "server-resets")]
    with tcpevent.Tracer(cgroups=[top.id], cgroup_subtree=True) as tracer:
        sides = []
        for ns, how in cases:
            sides += pair(a, b, ns, how)
        events = collect(tracer, sides)
    for i, side in enumerate(sides):
        check(events[i], side)
        assert events[i].container_id is None and events[i].pod_uid is None
    # The namespaces' loopbacks are separate: the same traffic, each in its own.
    for k, (ns, how) in enumerate(cases):
        server, client = events[2 * k], events[2 * k + 1]
        assert server.netns == client.netns == ns.inode
        if how == "client-resets":  # the server's socket was closed by the RST, in softirq
            assert server.error == errno.ECONNRESET
        elif how == "server-resets":
            assert client.error == errno.ECONNRESET
        else:
            assert server.error == client.error == 0


def test_a_socket_keeps_the_cgroup_it_was_made_in(top: Cgroup) -> None:
    """Its process moves to cgroup B before closing it: the event says A."""
    a, b = top.child("a"), top.child("b")
    moved: list[str] = []

    def move_both(server: Peer, client: Peer) -> None:
        for p in (server, client):
            p.do(f"move {b.dir}")
            moved.append(own_cgroup(p.pid))

    with tcpevent.Tracer(cgroups=[top.id], cgroup_subtree=True) as tracer:
        sides = list(pair(a, a, None, "orderly", before_close=move_both))
        sides += pair(a, a, None, "client-resets", before_close=move_both)
        events = collect(tracer, sides)
    assert moved == [b.path] * 4  # the processes really were in B when they closed
    for i, side in enumerate(sides):
        assert side.cgroup is a
        check(events[i], side)


def test_kubelet_cgroups_give_pod_uid_and_container_id(top: Cgroup) -> None:
    """Pod and container cgroups shaped as the kubelet makes them, for real
    under the test's cgroup: systemd driver (containerd) and cgroupfs."""
    uid_a, uid_b = str(uuid.uuid4()), str(uuid.uuid4())
    id_a, id_b = secrets.token_hex(32), secrets.token_hex(32)
    systemd = (
        top.child("kubepods.slice")
        .child("kubepods-burstable.slice")
        .child(f"kubepods-burstable-pod{uid_a.replace('-', '_')}.slice")
        .child(f"cri-containerd-{id_a}.scope")
    )
    cgroupfs = top.child("kubepods").child("besteffort").child(f"pod{uid_b}").child(id_b)
    with tcpevent.Tracer(cgroups=[top.id], cgroup_subtree=True) as tracer:
        sides = list(pair(systemd, cgroupfs, None))
        events = collect(tracer, sides)
    server, client = events[0], events[1]
    check(server, sides[0])
    check(client, sides[1])
    assert (server.pod_uid, server.container_id) == (uid_a, id_a)
    assert (client.pod_uid, client.container_id) == (uid_b, id_b)
    d = client.to_dict(resolve=True)
    assert (d["cgroup"], d["container_id"], d["pod_uid"]) == (cgroupfs.path, id_b, uid_b)
    assert d["cgroup_id"] == cgroupfs.id
    # Resolved names are not state: pickling, equality and hashing are the fields'.
    copy = pickle.loads(pickle.dumps(client))
    assert copy == client and hash(copy) == hash(client) and copy != server
    assert (copy.pod_uid, copy.container_id) == (uid_b, id_b)
    assert not hasattr(client, "__dict__")


# ---- the filters in the kernel --------------------------------------------------------------


def only(tracer: tcpevent.Tracer, want: list[Side], unwanted: list[Side]) -> None:
    """``want``'s events arrive, none of ``unwanted``'s (whose connections
    closed first), and the kernel sent nothing else: it never queued them."""
    events = collect(tracer, want)
    time.sleep(0.2)  # anything still in flight
    rest = tracer.dequeue_batch(1024, timeout=0)
    got = [*events.values(), *rest]
    assert not [ev for ev in got for side in unwanted if side.matches(ev)]
    stats = tracer.stats
    assert stats.received == len(got) == len(want)
    assert stats.filtered == 0 and stats.dropped == 0


def test_cgroup_filter(top: Cgroup) -> None:
    a, b = top.child("a"), top.child("b")
    with tcpevent.Tracer(cgroups=[a.id]) as tracer:
        out = list(pair(b, b, None))
        only(tracer, list(pair(a, a, None, "client-resets")), out)
    # By path, and a parent without the subtree: only the cgroups named.
    with tcpevent.Tracer(cgroups=[top.path, a.path]) as tracer:
        out = list(pair(b, b, None))
        only(tracer, list(pair(a, a, None)), out)
    with tcpevent.Tracer(cgroups=[top.dir], cgroup_subtree=True) as tracer:
        only(tracer, [*pair(a, b, None), *pair(b, a, None, "server-resets")], [])


def test_netns_filter(top: Cgroup, two_netns: tuple[Netns, Netns]) -> None:
    one, two = two_netns
    with tcpevent.Tracer(netns=[one.inode]) as tracer:
        out = list(pair(top, top, two))
        only(tracer, list(pair(top, top, one, "server-resets")), out)
    for given in (one.name, one.path):
        with tcpevent.Tracer(netns=given) as tracer:
            out = list(pair(top, top, two))
            only(tracer, list(pair(top, top, one)), out)


def test_an_unknown_cgroup_or_namespace_is_an_error(top: Cgroup) -> None:
    with pytest.raises(ValueError, match="no-such"):
        tcpevent.Tracer(cgroups=[f"{top.path}/no-such"])
    with pytest.raises(ValueError, match="no-such"):
        tcpevent.Tracer(netns="tcpevent-no-such")
