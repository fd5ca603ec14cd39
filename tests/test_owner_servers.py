"""Who an event names, against real servers that hand connections over.

PostgreSQL's postmaster accepts each connection and forks a backend that
serves it and closes it at its exit; sshd's listener accepts and forks a
per-connection child. Each server's own account (PostgreSQL's log names
the backend pid per client port; sshd's log names the child it forked) is
compared with the events: the server side is the backend's (the child's),
and its origin the process that listens. Both run on loopback, on a free
port, from throwaway directories (a cluster made by initdb; sshd with its
own host key and configuration), started after the tracer so that it sees
their listen(). The Debian packages: TEST_APT_PACKAGES in the Makefile.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from netutil import wait_until
from procutil import without_preload

import tcpevent

pytestmark = pytest.mark.bpf

CONNECTIONS = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collect(
    tracer: tcpevent.Tracer, port: int, until, timeout: float = 20
) -> list[tcpevent.TcpEvent]:
    """Close events with ``port`` at either end, until ``until(events)``."""
    got: list[tcpevent.TcpEvent] = []

    def done() -> bool:
        got.extend(
            e
            for e in tracer.dequeue_batch(4096, timeout=0)
            if e.kind == "close" and port in (e.sport, e.dport)
        )
        return bool(until(got))

    assert wait_until(done, timeout=timeout), got
    return got


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    assert found, "PostgreSQL is missing: apt-get install postgresql (make test does)"
    return Path(found[-1]).parent


@contextmanager
def postgres_cluster() -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A throwaway cluster (initdb in a temporary directory), its postmaster
    listening on 127.0.0.1:port, logging each connection with its pid.
    Yields the postmaster, the port and the server log."""
    user = pwd.getpwnam("postgres")
    top = Path(tempfile.mkdtemp(prefix="tcpevent-pg-"))
    os.chown(top, user.pw_uid, user.pw_gid)
    data, log = top / "data", top / "server.log"
    as_postgres = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    proc = None
    try:
        subprocess.run(
            [pg_bin() / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            capture_output=True,
            cwd=top,
            env=without_preload(),
            **as_postgres,
        )
        port = free_port()
        with open(log, "wb") as out:
            os.chown(log, user.pw_uid, user.pw_gid)
            proc = subprocess.Popen(
                [
                    pg_bin() / "postgres",
                    *("-D", data, "-p", str(port), "-k", top),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "log_connections=on"),
                    *("-c", "log_line_prefix=%p ", "-c", "logging_collector=off"),
                    *("-c", "fsync=off"),
                ],
                stdout=out,
                stderr=out,
                env=without_preload(),
                cwd=top,
                **as_postgres,
            )
        assert wait_until(
            lambda: "ready to accept connections" in log.read_text() or proc.poll() is not None,
            timeout=30,
        ), log.read_text()
        assert proc.poll() is None, log.read_text()
        yield proc, port, log
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(top, ignore_errors=True)


def test_postgresql_backends_own_their_connections(tmp_path: Path) -> None:
    script = tmp_path / "select.sql"
    script.write_text("SELECT 1;\n")
    with tcpevent.Tracer() as tracer, postgres_cluster() as (postmaster, port, log):
        bench = subprocess.Popen(
            [
                pg_bin() / "pgbench",
                *("-n", "-C", "-c", "1", "-t", str(CONNECTIONS), "-f", script),
                *("-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "postgres"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=without_preload(),
        )
        _, err = bench.communicate(timeout=60)
        assert bench.returncode == 0, err

        # The server's own account: "<backend pid> LOG:  connection received:
        # host=127.0.0.1 port=<client port>", for every connection pgbench
        # made (its -C ones, and the one it opens first).
        backend_of = {
            int(m[2]): int(m[1])
            for m in re.finditer(
                r"^(\d+) LOG:  connection received: host=127\.0\.0\.1 port=(\d+)$",
                log.read_text(),
                re.M,
            )
        }
        assert len(backend_of) >= CONNECTIONS

        def both_sides_of_each(evs: list[tcpevent.TcpEvent]) -> bool:
            mine = {e.sport for e in evs if e.dport == port}
            served = {e.dport for e in evs if e.sport == port}
            return mine >= set(backend_of) and served >= set(backend_of)

        events = collect(tracer, port, both_sides_of_each)
    clients = [e for e in events if e.dport == port]
    assert {e.sport for e in clients} == set(backend_of)  # no other connection
    assert len(clients) == len(backend_of)
    for client in clients:
        assert (client.pid, client.origin_pid, client.task) == (bench.pid, bench.pid, "pgbench")
        (server,) = [e for e in events if (e.sport, e.dport) == (port, client.sport)]
        backend = backend_of[client.sport]
        assert backend != postmaster.pid
        assert (server.pid, server.task, server.uid) == (backend, "postgres", postgres_uid())
        assert (server.origin_pid, server.origin_task) == (postmaster.pid, "postgres")


def postgres_uid() -> int:
    return pwd.getpwnam("postgres").pw_uid


SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile none
LogLevel DEBUG1
"""


@contextmanager
def sshd() -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A throwaway sshd on a free loopback port, with its own host key and
    configuration, logging to a file. Yields it, its port and the log."""
    top = Path(tempfile.mkdtemp(prefix="tcpevent-sshd-"))
    log = top / "sshd.log"
    port = free_port()
    made_privsep_dir = not os.path.isdir("/run/sshd")
    if made_privsep_dir:
        os.makedirs("/run/sshd", mode=0o755)
    proc = None
    try:
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", top / "host_key"], check=True
        )
        (top / "sshd_config").write_text(SSHD_CONFIG.format(port=port, dir=top))
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-f", top / "sshd_config", "-E", log], env=without_preload()
        )
        assert wait_until(
            lambda: (
                (log.exists() and "Server listening" in log.read_text()) or proc.poll() is not None
            ),
            timeout=20,
        )
        assert proc.poll() is None, log.read_text()
        yield proc, port, log
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(top, ignore_errors=True)
        if made_privsep_dir:
            shutil.rmtree("/run/sshd", ignore_errors=True)


def descendants(pid: int) -> set[int]:
    """The living processes below ``pid``."""
    parents: dict[int, int] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue
        parents[int(text.split()[0])] = int(text.rpartition(")")[2].split()[1])
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def test_sshd_per_connection_child_owns_the_connection() -> None:
    """A client failing authentication (BatchMode, no key) makes and ends a
    connection the listener hands to its child: the child's, not the
    listener's. The child's pid is the one sshd's log says it forked."""
    with tcpevent.Tracer() as tracer, sshd() as (listener, port, log):
        # One held open, to see the connection's processes while it lives.
        held = socket.create_connection(("127.0.0.1", port))
        assert held.recv(64).startswith(b"SSH-2.0-")
        living = descendants(listener.pid)
        held_port = held.getsockname()[1]
        held.close()
        clients = []
        for _ in range(3):
            ssh = subprocess.run(
                [
                    "ssh",
                    *("-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"),
                    *("-o", "UserKnownHostsFile=/dev/null", "-o", "IdentityFile=/nonexistent"),
                    *("-o", "IdentitiesOnly=yes", "-p", str(port), "nobody@127.0.0.1", "true"),
                ],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert ssh.returncode == 255 and "Permission denied" in ssh.stderr, ssh.stderr
            clients.append(ssh)

        def all_four(evs: list[tcpevent.TcpEvent]) -> bool:
            return len({e.dport for e in evs if e.sport == port}) >= 4

        events = collect(tracer, port, all_four)
        forked = [int(n) for n in re.findall(r"Forked child (\d+)\.", log.read_text())]
    served = [e for e in events if e.sport == port]
    assert len(served) == 4 and len(forked) == 4, (served, forked)
    # In the order of the connections: each one's child.
    served.sort(key=lambda e: e.time_ns - e.lifetime_ns)
    for ev, child in zip(served, forked):
        assert ev.pid != listener.pid and ev.task.startswith("sshd")
        assert ev.pid == child, (ev, forked)
        assert ev.origin_pid == listener.pid
    (held_ev,) = [e for e in served if e.dport == held_port]
    assert held_ev.pid in living
