"""A passive connection whose birth the kernel never showed the program is
counted at its release, never silent; one born before the tracer is not.

Some kernels do not run BPF programs for what they do in softirq in some
tasks' context (docs/reliability.md): a SYN_RECV child made there has no
entry in the table, and its close would pass unseen. The release hook
finds such a socket with no entry; the census taken when the tracer
attached (csrc/bpf/tcp_census.bpf.c) tells it
apart from a socket that existed before. A build of the built-in program
blind to one port's passive births (tests/support/bpf/hidden_birth.bpf.c)
makes that happen on demand.

And nothing else may be taken for one: a passive socket whose close was
told while its file was still open (its process shut it down first, or a
reset whose held record the sweep flushed) keeps its entry until its
release.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import bpfutil
import pytest
from liveness import PROMPTLY
from netutil import listener, set_reset_on_close, wait_until

import tcpevent
from tcpevent._core import lib

pytestmark = pytest.mark.bpf

HERE = Path(__file__).resolve().parent
CSRC_BPF = HERE.parent / "csrc" / "bpf"
EACH = 5  # connections of each way of ending one


def hidden_birth_program(compile_bpf, port: int, build: str | None = None) -> Path:
    """tests/support/bpf/hidden_birth.bpf.c blind to the passive births on
    ``port``: ``build``, or the build the library loads on this kernel."""
    defines = [f"-DHIDDEN_PORT={port}", *bpfutil.build_defines(build)]
    path: Path = compile_bpf(HERE / "support" / "bpf" / "hidden_birth.bpf.c", *defines)
    return path


def pair(ls: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(ls.getsockname())
    server, _ = ls.accept()
    return client, server


def end_every_way(ls: socket.socket) -> list[int]:
    """EACH connections ended each way a passive side can end; the clients'
    ports."""
    ports = []
    for way in ("client first", "server first", "client resets", "server shuts down"):
        for _ in range(EACH):
            client, server = pair(ls)
            ports.append(client.getsockname()[1])
            if way == "client first":
                client.close()
                assert server.recv(1) == b""
                server.close()
            elif way == "server first":
                server.close()
                assert client.recv(1) == b""
                client.close()
            elif way == "client resets":  # the server is closed before its release
                set_reset_on_close(client)
                client.close()
                with pytest.raises(ConnectionResetError):
                    server.recv(1)
                server.close()
            else:  # the server is closed (TIME_WAIT) before its release
                server.shutdown(socket.SHUT_WR)
                assert client.recv(1) == b""
                client.close()
                assert wait_until(lambda s=server: tcp_state(s) == "CLOSE", timeout=PROMPTLY)
                server.close()
    return ports


def tcp_state(sock: socket.socket) -> str:
    """The socket's state as ss names it: TCP_INFO's first byte."""
    states = {1: "ESTABLISHED", 4: "FIN_WAIT1", 5: "FIN_WAIT2", 6: "TIME_WAIT", 7: "CLOSE"}
    state = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    return states.get(state, str(state))


@pytest.mark.parametrize("build", bpfutil.builds())
def test_unseen_births_are_counted_at_release(compile_bpf, build: str) -> None:
    me = os.getpid()
    with listener() as ls:
        port = ls.getsockname()[1]
        program = hidden_birth_program(compile_bpf, port, build)
        # Born before the tracer: one accepted, one still in the accept queue.
        old_client, old_server = pair(ls)
        queued_client = socket.create_connection(ls.getsockname())
        assert wait_until(lambda: tcp_state(queued_client) == "ESTABLISHED", timeout=PROMPTLY)
        old_ports = {old_client.getsockname()[1], queued_client.getsockname()[1]}
        with tcpevent.Tracer(pids=[me], program=program) as tracer:
            assert "not counted in missed" not in tracer.warnings  # the census ran
            census = bpfutil.map_named(me, "born_before")
            # Both passive ends, and any other process's open ones.
            noted = bpfutil.map_keys(census)
            assert len(noted) >= 2
            queued_server, _ = ls.accept()
            clients = end_every_way(ls)
            # Every client's close is told; no server's (its birth was
            # hidden), and each of those is counted once, at its release.
            events: list[tcpevent.TcpEvent] = []

            def clients_told() -> bool:
                events.extend(tracer.dequeue_batch(4096, timeout=0))
                return sorted(e.sport for e in events if e.dport == port) == sorted(clients)

            assert wait_until(clients_told, timeout=10 * PROMPTLY)
            assert tracer.stats.missed == len(clients)
            # The ones born before the tracer are not counted.
            for s in (old_client, old_server, queued_client, queued_server):
                s.close()
            time.sleep(2.5)  # two sweeps: nothing more is counted later
            events.extend(tracer.dequeue_batch(4096, timeout=0))
            stats = tracer.stats
            # Each was deleted at its release; other processes' may stay.
            left = bpfutil.map_keys(census)
            assert left <= noted and len(noted - left) >= 2, (noted, left)
    assert [e for e in events if e.sport == port] == []
    assert [e for e in events if e.sport in old_ports] == []  # untracked: no event
    assert stats.missed == len(clients), stats
    assert stats.untracked == 0 and stats.dropped_kernel == 0


@pytest.mark.parametrize("build", bpfutil.builds())
def test_a_passive_close_told_before_its_release_is_not_counted(compile_bpf, build: str) -> None:
    """With every birth seen, no way of ending a passive connection counts
    anything: a server told while its file is still open keeps its entry
    until the release, and one held past the sweep's limit (a reset its
    process releases only 2.5 s later) is told by the sweep, ownerless,
    then released: once, and not counted. (Where there is no sweep, it is
    told at that release, by its closer.)"""
    me = os.getpid()
    swept = bpfutil.kernel_has_sweep()
    program = compile_bpf(CSRC_BPF / "tcp.bpf.c", *bpfutil.build_defines(build))
    with listener() as ls:
        port = ls.getsockname()[1]
        with tcpevent.Tracer(ports=[port], program=program) as tracer:
            sockets = bpfutil.map_named(me, "sockets")  # of this port only
            clients = end_every_way(ls)
            client, server = pair(ls)
            late = client.getsockname()[1]
            set_reset_on_close(client)
            client.close()
            events: list[tcpevent.TcpEvent] = []

            def told(sport: int, dport: int) -> bool:
                events.extend(tracer.dequeue_batch(4096, timeout=0))
                return any((e.sport, e.dport) == (sport, dport) for e in events)

            if swept:
                assert wait_until(lambda: told(port, late), timeout=10 * PROMPTLY)
                assert bpfutil.map_entries(sockets) != []  # kept for its release
            server.close()
            if not swept:
                assert wait_until(lambda: told(port, late), timeout=10 * PROMPTLY)
            time.sleep(2.5)  # two sweeps
            events.extend(tracer.dequeue_batch(4096, timeout=0))
            assert [e.pid for e in events if e.dport == late and e.sport == port] == [
                0 if swept else me
            ]
            assert wait_until(lambda: bpfutil.map_entries(sockets) == [], timeout=PROMPTLY)
            stats = tracer.stats
    ours = Counter((e.sport, e.dport) for e in events)
    ends = [*clients, late]
    assert ours == Counter((port, c) for c in ends) + Counter((c, port) for c in ends)
    assert stats.missed == 0, stats


@pytest.mark.parametrize("build", bpfutil.builds())
def test_a_reset_waits_for_its_release_under_a_pid_filter(compile_bpf, build: str) -> None:
    """A passive socket reset while its process holds it open: with a pid
    filter only its release can name its owner, so it waits for that
    release, however long, and is told then, with its owner."""
    me = os.getpid()
    program = compile_bpf(CSRC_BPF / "tcp.bpf.c", *bpfutil.build_defines(build))
    with listener() as ls, tcpevent.Tracer(pids=[me], program=program) as tracer:
        port = ls.getsockname()[1]
        client, server = pair(ls)
        set_reset_on_close(client)
        client.close()
        time.sleep(2.5)  # past the hold's limit: two sweeps
        events = tracer.dequeue_batch(4096, timeout=0)
        assert [e for e in events if e.sport == port] == []
        server.close()
        assert wait_until(
            lambda: (
                events.extend(tracer.dequeue_batch(4096, timeout=0))
                or any(e.sport == port for e in events)
            ),
            timeout=10 * PROMPTLY,
        )
        stats = tracer.stats
    (told,) = [e for e in events if e.sport == port]
    assert told.pid == me and told.error == errno.ECONNRESET
    assert stats.missed == 0, stats


# Another process, in no filter of ours: it sleeps.
SLEEPER = "import time; time.sleep(600)"


def test_a_birth_the_filters_reject_is_not_counted(compile_bpf) -> None:
    """Three tracers of the blind build at once: one for this process, one
    for another process, one for another port. Only the first counts the
    hidden births, each once."""
    me = os.getpid()
    sleeper = subprocess.Popen([sys.executable, "-c", SLEEPER])
    try:
        with listener() as ls, listener() as other_ls:
            port = ls.getsockname()[1]
            program = hidden_birth_program(compile_bpf, port)
            with (
                tcpevent.Tracer(pids=[me], program=program) as ours,
                tcpevent.Tracer(pids=[sleeper.pid], program=program) as theirs,
                tcpevent.Tracer(ports=[other_ls.getsockname()[1]], program=program) as elsewhere,
            ):
                clients = end_every_way(ls)
                assert wait_until(lambda: ours.stats.missed >= len(clients), timeout=PROMPTLY)
                time.sleep(1.5)  # a sweep
                assert ours.stats.missed == len(clients)
                assert theirs.stats.missed == 0 and elsewhere.stats.missed == 0
    finally:
        sleeper.kill()
        sleeper.wait()


def accept_queue_length(ls: socket.socket) -> int:
    """A listener's tcpi_unacked: the children waiting for accept()."""
    info = ls.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 32)
    return int(struct.unpack_from("I", info, 24)[0])  # after 8 bytes and 4 u32


@pytest.mark.parametrize("extra", [0, 1], ids=["queue-at-the-limit", "queue-past-it"])
def test_an_accept_queue_longer_than_the_census_walks_turns_counting_off(extra: int) -> None:
    """The census walks at most TCPEVENT_CENSUS_QUEUE_MAX children of a
    listener's queue: one more, and it cannot tell them from births never
    seen, so counting is off, and the tracer says so; at the limit, on."""
    queued = int(lib.TCPEVENT_CENSUS_QUEUE_MAX) + extra
    with socket.socket() as ls:
        ls.bind(("127.0.0.1", 0))
        ls.listen(queued + 16)
        clients = [socket.create_connection(ls.getsockname()) for _ in range(queued)]
        try:
            assert wait_until(lambda: accept_queue_length(ls) == queued, timeout=10 * PROMPTLY)
            with tcpevent.Tracer(pids=[os.getpid()]) as tracer:
                warned = "accept queue is longer than" in tracer.warnings
                entries = len(bpfutil.map_entries(bpfutil.map_named(os.getpid(), "born_before")))
        finally:
            for c in clients:
                c.close()
    assert warned == bool(extra), tracer.warnings
    assert entries >= queued - extra  # every child it walked is noted
