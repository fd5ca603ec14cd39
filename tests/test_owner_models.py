"""Who an event names, in every server model (docs/attribution.md).

An event's ``pid``/``uid``/``task`` name the process that ended the
connection in process context (its close(), shutdown() or exit): in a
server that accepts in one process and serves in another, the one that
served and closed it. ``origin_pid``/``origin_task`` name the process that
set it up: connect()'s caller, or the owner of the listener (the process
that called listen()). Each model here is a real program that reports its
own pids, compared with the events; the tracer starts before the servers,
so that it sees their listen(), except where a server that predates it is
the point.

(PostgreSQL and sshd: tests/test_owner_servers.py.)
"""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from liveness import PROMPTLY
from netutil import wait_until

import tcpevent

pytestmark = pytest.mark.bpf

# Sets the calling process's name (comm), so that each role is told apart
# by its task name as well as its pid.
PRCTL = textwrap.dedent(
    """
    import ctypes, os, socket, struct, sys, time
    def name(comm):
        ctypes.CDLL(None).prctl(15, comm.encode(), 0, 0, 0)  # PR_SET_NAME
    """
)

# A server that forks per connection: the parent accepts and closes its
# copy at once, the child serves and closes (after a reset too: it reads the
# error, waits, then closes).
FORKING = PRCTL + textwrap.dedent(
    """
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    name("te-parent")
    ls = socket.create_server(("127.0.0.1", 0))
    print(os.getpid(), ls.getsockname()[1], flush=True)
    while True:
        conn, peer = ls.accept()
        child = os.fork()
        if child == 0:
            name("te-child")
            ls.close()
            try:
                while conn.recv(100):
                    conn.sendall(b"x")
            except ConnectionResetError:
                time.sleep(0.3)  # the close waits for this release
            print(peer[1], os.getpid(), flush=True)
            conn.close()
            os._exit(0)
        conn.close()  # not the last reference: nothing happens
    """
)

# The acceptor hands each connection to a worker over a Unix socket
# (SCM_RIGHTS) and closes its own copy; the worker serves and closes it.
FD_PASSING = PRCTL + textwrap.dedent(
    """
    import array
    name("te-acceptor")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    worker = os.fork()
    if worker == 0:
        name("te-worker")
        a.close()
        while True:
            fds = array.array("i")
            msg, anc, _, _ = b.recvmsg(16, socket.CMSG_SPACE(4))
            if not msg:
                os._exit(0)
            fds.frombytes(anc[0][2][:4])
            conn = socket.socket(fileno=fds[0])
            while conn.recv(100):
                conn.sendall(b"x")
            print(conn.getpeername()[1], os.getpid(), flush=True)
            conn.close()
    b.close()
    ls = socket.create_server(("127.0.0.1", 0))
    print(os.getpid(), ls.getsockname()[1], flush=True)
    while True:
        conn, _ = ls.accept()
        a.sendmsg([b"c"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", conn.fileno()))])
        conn.close()
    """
)

# systemd's Accept=yes, inetd: the parent accepts, a child execs a program
# that serves the connection on its stdin and closes it.
SERVED = PRCTL + textwrap.dedent(
    """
    name("te-served")
    conn = socket.socket(fileno=0)
    while conn.recv(100):
        conn.sendall(b"x")
    print(conn.getpeername()[1], os.getpid(), flush=True)
    conn.close()  # fd 0: the socket owns it
    """
)
ACCEPT_YES = PRCTL + textwrap.dedent(
    """
    import signal
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    name("te-inetd")
    ls = socket.create_server(("127.0.0.1", 0))
    print(os.getpid(), ls.getsockname()[1], flush=True)
    while True:
        conn, _ = ls.accept()
        if os.fork() == 0:
            os.dup2(conn.fileno(), 0)
            conn.close()
            ls.close()
            os.execv(sys.executable, [sys.executable, "-c", sys.argv[1]])
        conn.close()
    """
)

# A pre-forking server (nginx, Apache prefork): the master listens, then
# forks workers that accept and serve; as a root master's workers would,
# they drop to another uid, so that the origin's uid tells the two apart.
PREFORK = PRCTL + textwrap.dedent(
    """
    name("te-master")
    ls = socket.create_server(("127.0.0.1", 0))
    for _ in range(2):
        if os.fork() == 0:
            name("te-worker")
            if os.getuid() == 0:
                os.setuid(65534)
            while True:
                conn, peer = ls.accept()
                while conn.recv(100):
                    conn.sendall(b"x")
                print(peer[1], os.getpid(), flush=True)
                conn.close()
    print(os.getpid(), ls.getsockname()[1], flush=True)
    while True:
        time.sleep(60)
    """
)

# A client that forks after connect(): the parent closes its copy, the
# child talks and closes.
FORKING_CLIENT = PRCTL + textwrap.dedent(
    """
    name("te-connector")
    c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    child = os.fork()
    if child == 0:
        name("te-talker")
        c.sendall(b"hello")
        c.recv(100)
        print(c.getsockname()[1], os.getpid(), flush=True)
        c.close()
        os._exit(0)
    c.close()
    os.waitpid(child, 0)
    print(os.getpid(), flush=True)
    """
)


@contextmanager
def server(script: str, *args: str) -> Iterator[tuple[subprocess.Popen[str], int, int]]:
    """Run a server script; yields it, its pid and its port (its first line)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        pid, port = (int(w) for w in proc.stdout.readline().split())
        yield proc, pid, port
    finally:
        os.killpg(proc.pid, 9)  # the server and its children
        proc.wait()


def served_by(proc: subprocess.Popen[str]) -> tuple[int, int]:
    """The next "client-port pid" line a server's handler prints."""
    assert proc.stdout is not None
    port, pid = (int(w) for w in proc.stdout.readline().split())
    return port, pid


def talk(port: int, reset: bool = False) -> int:
    """A connection to the server: one exchange, then close (or, ``reset``,
    an abortive close: RST). Returns the client's port."""
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"hello")
    assert c.recv(1) == b"x"
    mine = c.getsockname()[1]
    if reset:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    return int(mine)


def closes(tracer: tcpevent.Tracer, ports: tuple[int, int], n: int = 2) -> list[tcpevent.TcpEvent]:
    """The close events of the connection between ``ports`` (both sides)."""
    got: list[tcpevent.TcpEvent] = []

    def done() -> bool:
        got.extend(
            e for e in tracer.dequeue_batch(4096, timeout=0) if {e.sport, e.dport} == set(ports)
        )
        return len(got) >= n

    assert wait_until(done, timeout=10 * PROMPTLY), got
    return got


def side(events: list[tcpevent.TcpEvent], local_port: int) -> tcpevent.TcpEvent:
    (ev,) = [e for e in events if e.sport == local_port]
    return ev


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset-before-close"])
def test_forking_server_names_the_child_that_served(reset: bool) -> None:
    """After a reset too: the accepted side reaches TCP_CLOSE in softirq
    while the child still holds it; its event waits for the child's close."""
    me = os.getpid()
    with tcpevent.Tracer() as tracer, server(FORKING) as (proc, parent, port):
        client_port = talk(port, reset=reset)
        reported_port, child = served_by(proc)
        events = closes(tracer, (port, client_port))
    assert reported_port == client_port and child != parent
    srv = side(events, port)
    assert (srv.pid, srv.task) == (child, "te-child")
    assert (srv.origin_pid, srv.origin_task) == (parent, "te-parent")
    cli = side(events, client_port)
    assert cli.pid == cli.origin_pid == me
    if reset:
        assert srv.error_name == "ECONNRESET" and srv.state == tcpevent.TcpState.ESTABLISHED


def test_fd_passed_over_scm_rights_names_the_worker() -> None:
    with tcpevent.Tracer() as tracer, server(FD_PASSING) as (proc, acceptor, port):
        client_port = talk(port)
        reported_port, worker = served_by(proc)
        events = closes(tracer, (port, client_port))
    assert reported_port == client_port
    srv = side(events, port)
    assert (srv.pid, srv.task) == (worker, "te-worker")
    assert (srv.origin_pid, srv.origin_task) == (acceptor, "te-acceptor")
    assert worker != acceptor


def test_accept_yes_names_the_program_it_execs() -> None:
    with tcpevent.Tracer() as tracer, server(ACCEPT_YES, SERVED) as (proc, inetd, port):
        client_port = talk(port)
        reported_port, served = served_by(proc)
        events = closes(tracer, (port, client_port))
    assert reported_port == client_port
    srv = side(events, port)
    assert (srv.pid, srv.task) == (served, "te-served")
    assert (srv.origin_pid, srv.origin_task) == (inetd, "te-inetd")


def test_client_that_forks_after_connect_names_the_child() -> None:
    with tcpevent.Tracer() as tracer, socket.create_server(("127.0.0.1", 0)) as ls:
        port = ls.getsockname()[1]
        client = subprocess.Popen(
            [sys.executable, "-c", FORKING_CLIENT, str(port)], stdout=subprocess.PIPE, text=True
        )
        try:
            conn, _ = ls.accept()
            assert conn.recv(100) == b"hello"
            conn.sendall(b"x")
            out, _ = client.communicate(timeout=10 * PROMPTLY)
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()
        (client_port, talker), (connector,) = (
            [int(w) for w in line.split()] for line in out.splitlines()
        )
        assert conn.recv(100) == b""
        conn.close()
        events = closes(tracer, (port, client_port))
    cli = side(events, client_port)
    assert (cli.pid, cli.task) == (talker, "te-talker")
    assert (cli.origin_pid, cli.origin_task) == (connector, "te-connector")
    assert side(events, port).pid == os.getpid()


@pytest.mark.parametrize(
    "script, worker_task, origin_task",
    [(FORKING, "te-child", "te-parent"), (PREFORK, "te-worker", "te-master")],
    ids=["forking", "prefork"],
)
def test_a_listener_older_than_the_tracer_still_names_its_origin(
    script: str, worker_task: str, origin_task: str
) -> None:
    """The server listens before the tracer starts, so no listen() is seen:
    the census at attach names the listener's first holder, the process
    that made it (the workers hold it too, under a prefork server)."""
    with server(script) as (proc, parent, port), tcpevent.Tracer() as tracer:
        client_port = talk(port)
        reported_port, worker = served_by(proc)
        events = closes(tracer, (port, client_port))
    assert reported_port == client_port and worker != parent
    srv = side(events, port)
    assert (srv.pid, srv.task) == (worker, worker_task)
    assert (srv.origin_pid, srv.origin_task, srv.origin_uid) == (parent, origin_task, os.getuid())


# The original ABI in a process of its own: AddProbe(), then every event of
# one port pair as "pid task" (DequeuePerfEvent()'s struct tcp_event_t).
LEGACY = textwrap.dedent(
    """
    import sys
    from tcpevent import abi

    lib = abi.load_library()
    lib.AddProbe(None)
    print("ATTACHED", flush=True)
    sport, dport = (int(p) for p in sys.stdin.readline().split())
    while True:
        ev = lib.DequeuePerfEvent()
        if (ev.SPT, ev.DPT) == (sport, dport):
            print(ev.pid, ev.task.decode(), flush=True)
            break
    lib.cleanup()
    """
)


def test_legacy_abi_carries_the_closer() -> None:
    """The original struct has one pid: the closer's, as tcplife reports."""
    legacy = subprocess.Popen(
        [sys.executable, "-c", LEGACY], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert legacy.stdin is not None and legacy.stdout is not None
    try:
        assert legacy.stdout.readline().strip() == "ATTACHED"
        with server(FORKING) as (proc, parent, port):
            client_port = talk(port)
            reported_port, child = served_by(proc)
        legacy.stdin.write(f"{port} {client_port}\n")
        legacy.stdin.flush()
        out, _ = legacy.communicate(timeout=10 * PROMPTLY)
    finally:
        if legacy.poll() is None:
            legacy.kill()
            legacy.wait()
    assert reported_port == client_port and child != parent
    assert out.split() == [str(child), "te-child"]


def test_connection_reset_before_accept_has_no_owner() -> None:
    """Nobody accepted it: no process ever held it (pid 0, task ""), its
    uid the socket's; the origin is still the listener's owner."""
    me = os.getpid()
    with tcpevent.Tracer() as tracer, socket.create_server(("127.0.0.1", 0)) as ls:
        port = ls.getsockname()[1]
        c = socket.create_connection(("127.0.0.1", port))
        client_port = c.getsockname()[1]
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST to the connection waiting in the accept queue
        events = closes(tracer, (port, client_port))
    srv = side(events, port)
    assert (srv.pid, srv.task, srv.uid) == (0, "", os.getuid())
    assert (srv.origin_pid, srv.direction) == (me, "inbound")
    assert side(events, client_port).pid == me


# Without CAP_NET_ADMIN (and CAP_SYS_ADMIN) the release hook cannot load;
# with accept_hooks=False nothing names a passive socket before its close.
NO_RELEASE_HOOK = textwrap.dedent(
    """
    import json, os, socket, struct, time, tcpevent
    LINGER0 = struct.pack("ii", 1, 0)
    with tcpevent.Tracer(accept_hooks=False) as t:
        ls = socket.create_server(("127.0.0.1", 0))
        port = ls.getsockname()[1]
        pairs = {}
        for case in ("server-aborts", "client-resets"):
            c = socket.create_connection(("127.0.0.1", port))
            s, _ = ls.accept()
            pairs[case] = [port, c.getsockname()[1]]
            first, then = (s, c) if case == "server-aborts" else (c, s)
            first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
            first.close()  # RST
            time.sleep(0.1)
            then.close()
        got = {}
        deadline = time.monotonic() + 10
        while len(got) < 2 and time.monotonic() < deadline:
            for e in t.dequeue_batch(4096, timeout=0.1):
                for case, key in pairs.items():
                    if [e.sport, e.dport] == key:
                        got[case] = [e.pid, e.task, e.state.name, e.error_name]
    print(json.dumps({"me": os.getpid(), "got": got}))
    """
)


def test_abortive_close_is_the_closers_without_the_release_hook() -> None:
    """The kernel fact the program relies on there (checked on this kernel):
    tcp_close() of an unread or SO_LINGER-0 socket goes straight to
    TCP_CLOSE in the closing process, with sk_shutdown already SHUTDOWN_MASK;
    a reset received (tcp_done(), softirq) sets it only after that state
    change. So the first is the closer's, the second nobody's."""
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-net_admin,-sys_admin",
            "--inh-caps=-net_admin,-sys_admin",
            sys.executable,
            "-c",
            NO_RELEASE_HOOK,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    me, got = result["me"], result["got"]
    assert got["server-aborts"][0] == me and got["server-aborts"][2] == "ESTABLISHED"
    assert got["client-resets"] == [0, "", "ESTABLISHED", "ECONNRESET"]
