"""A real container: podman (with runc) runs busybox ``nc`` as a server and
a client on the container's own loopback; their events carry the
container's full id, its cgroup path and its network namespace, and
``tcpevent --container ID`` shows them and nothing else.

No image registry is needed: the root filesystem is ``busybox-static``'s
binary and its applet links (``--rootfs``). ``--network=none`` gives the
container a network namespace with nothing but its loopback. The container
and the root filesystem are removed at the end.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from netutil import connection
from nsutil import mount, own_cgroup
from procutil import start

import tcpevent
from tcpevent.cli.render import LINE_HEADER

pytestmark = pytest.mark.bpf

#: What owns a socket of the container's connections: the client nc, the
#: server nc (it accepts) or the cat it runs for each connection (it closes).
TASKS = ("nc", "cat")
EVENTS_WAIT = 20.0


@dataclass
class Container:
    name: str
    id: str
    pid: int
    cgroup: str
    netns: int
    port: int

    def podman(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["podman", *argv], check=True, capture_output=True, text=True, timeout=120
        )

    def client(self) -> None:
        """busybox nc, in the container, connects to its server, sends a line
        and reads it back."""
        self.podman("exec", self.name, "/bin/sh", "-c", f"echo hello | nc 127.0.0.1 {self.port}")


@pytest.fixture
def container(rootfs: Path) -> Iterator[Container]:
    name = f"tcpevent-test-{os.getpid()}"
    port = random.randint(10000, 30000)  # below the ephemeral range
    # A listener that stays (-ll), echoing each connection back through cat.
    server = f"nc -ll -p {port} -e /bin/cat"
    subprocess.run(
        ["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False, timeout=120
    )
    run = subprocess.run(
        [
            *("podman", "run", "-d", "--name", name, "--runtime", "runc"),
            *("--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"),
            *("--network=none", "--rootfs", str(rootfs)),
            *("/bin/sh", "-c", server),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert run.returncode == 0, f"podman run failed: {run.stderr}"
    try:
        fmt = "{{.Id}} {{.State.Pid}} {{.State.CgroupPath}}"
        inspect = subprocess.run(
            ["podman", "inspect", "--format", fmt, name],
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout.split()
        cid, pid, cgroup = inspect[0], int(inspect[1]), inspect[2]
        assert len(cid) == 64 and run.stdout.strip() == cid
        assert own_cgroup(pid) == cgroup  # where podman says it put it
        c = Container(name, cid, pid, cgroup, os.stat(f"/proc/{pid}/ns/net").st_ino, port)
        assert c.netns != os.stat("/proc/self/ns/net").st_ino
        yield c
    finally:
        subprocess.run(
            ["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False, timeout=120
        )


def ours(ev: tcpevent.TcpEvent, c: Container) -> bool:
    return c.port in (ev.sport, ev.dport) and ev.task in TASKS


def test_container_events_name_the_container(container: Container) -> None:
    c = container
    with tcpevent.Tracer(ports=[c.port]) as tracer:
        c.client()
        c.client()
        events: list[tcpevent.TcpEvent] = []
        deadline = time.monotonic() + EVENTS_WAIT
        while len(events) < 4 and time.monotonic() < deadline:
            events += [ev for ev in tracer.dequeue_batch(64, timeout=0.2) if ours(ev, c)]
    assert len(events) == 4, events
    assert sorted(ev.sport == c.port for ev in events) == [False, False, True, True]
    for ev in events:
        assert ev.container_id == c.id
        assert ev.cgroup == c.cgroup
        assert ev.cgroup.endswith(f"/libpod-{c.id}")
        assert ev.cgroup_id == os.stat(f"{mount()}{c.cgroup}").st_ino
        assert ev.netns == c.netns
        assert ev.pod_uid is None
        # nc's server listens on :: (both families): its side is IPv4-mapped.
        assert ev.saddr == ev.daddr
        assert ev.saddr in ("127.0.0.1", "::ffff:127.0.0.1")
        assert ev.rx_bytes + ev.tx_bytes >= len("hello\n")


def _cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "tcpevent", *argv]


def test_cli_container_filter_shows_it_and_nothing_else(container: Container) -> None:
    c = container
    proc, out = start(_cli("--container", c.id[:12], "--json"))
    try:
        host_ports: set[int] = set()
        deadline = time.monotonic() + EVENTS_WAIT
        # Until the tracer shows the container's traffic, with the host's beside it.
        while not out.wait_for(lambda text: '"container_id"' in text, timeout=0.5):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the CLI never showed the container's traffic"
            host = connection(client_sends=10, server_sends=10)
            host_ports |= {host.client.port, host.server.port}
            c.client()
        shown = len(out.lines)
        for _ in range(2):
            host = connection(client_sends=10, server_sends=10)
            host_ports |= {host.client.port, host.server.port}
            c.client()
        assert out.wait_for(lambda text: len(text.splitlines()) >= shown + 4, timeout=EVENTS_WAIT)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    rows = [json.loads(line) for line in out.lines]
    assert proc.returncode == 0
    assert len(rows) >= 4
    for row in rows:
        assert row["container_id"] == c.id
        assert row["cgroup"] == c.cgroup
        assert row["netns"] == c.netns
        assert row["task"] in TASKS
        assert c.port in (row["sport"], row["dport"])


def test_cli_line_format_shows_the_short_id(container: Container) -> None:
    c = container
    proc, out = start(_cli("--container", c.id, "--count", "2"))
    try:
        deadline = time.monotonic() + EVENTS_WAIT
        while not out.wait_for(lambda text: len(text.splitlines()) >= 3, timeout=0.5):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the CLI never showed the container's traffic"
            c.client()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    header, *lines = out.lines
    assert header + "\n" == LINE_HEADER
    assert len(lines) == 2
    for line in lines:
        assert line.endswith(f" container={c.id[:12]}")
        assert any(f" {task} " in line for task in TASKS)
