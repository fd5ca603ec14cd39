"""The command and containers: ``--container ID``, and the container's short
id on each line. Real cgroups named as runtimes name them, made under the
test's own cgroup (the podman test runs a real container)."""

from __future__ import annotations

import dataclasses
import json
import secrets
import socket
import sys
import time
from collections.abc import Iterator

import pytest
from nsutil import Cgroup, cgroup_root, placer
from peer import Peer
from procutil import start

from tcpevent.cli import command as cli
from tcpevent.cli import render as _render
from tcpevent.event import ZERO_EVENT, TcpEvent, TcpState

pytestmark = pytest.mark.bpf  # making cgroups needs root


@pytest.fixture
def top() -> Iterator[Cgroup]:
    with cgroup_root() as cg:
        yield cg


def event(cgroup_id: int) -> TcpEvent:
    return dataclasses.replace(
        ZERO_EVENT,
        time_ns=1628184562_512_000_000,
        pid=4242,
        family=socket.AF_INET,
        sport=40000,
        dport=80,
        task="curl",
        saddr="127.0.0.1",
        daddr="127.0.0.2",
        state=TcpState.FIN_WAIT1,
        cgroup_id=cgroup_id,
    )


def test_line_ends_with_the_short_id_of_a_container(top: Cgroup) -> None:
    cid = secrets.token_hex(32)
    inside = top.child(f"docker-{cid}.scope")
    ev, plain = event(inside.id), event(top.id)
    line, plain_line = _render.format_line(ev), _render.format_line(plain)
    suffix = f" container={cid[:12]}\n"
    assert line.endswith(suffix)
    # Only the suffix differs: without a container, the line is as before.
    assert "container=" not in plain_line
    assert line.removesuffix(suffix) + "\n" == plain_line
    assert _render.format_lifecycle_line(ev).endswith(f" container={cid[:12]}\n")
    d = json.loads(_render.format_json(ev))
    assert (d["cgroup"], d["container_id"], d["pod_uid"]) == (inside.path, cid, None)
    d = json.loads(_render.format_json(plain))
    assert (d["cgroup"], d["container_id"]) == (top.path, None)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--container", "xyz"], "hex digits"),
        (["--container", "f" * 65], "hex digits"),
        (["--container", "fedcba98765432"], "no cgroup"),
        (["--container", "abc", "--cgroup", "/"], "cannot be combined"),
        (["--container", "abc", "--cgroup-subtree"], "--cgroup-subtree needs --cgroup"),
        (["--container", "abc", "--connections"], "does not apply to --connections"),
    ],
)
def test_container_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        code = cli.main(argv)
        raise SystemExit(code)
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err


def test_an_ambiguous_prefix_is_a_usage_error(
    top: Cgroup, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = secrets.token_hex(4)
    ids = [prefix + secrets.token_hex(28) for _ in range(2)]
    top.child(f"crio-{ids[0]}.scope")
    top.child(f"libpod-{ids[1]}")
    assert cli.main(["--container", prefix]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "ambiguous" in err and ids[0] in err and ids[1] in err


def test_container_filter_takes_the_containers_cgroups(top: Cgroup) -> None:
    """--container resolves to the cgroup named after the container, and the
    kernel filter takes it with the cgroups below: a process there shows,
    one in a sibling cgroup does not."""
    cid = secrets.token_hex(32)
    scope = top.child(f"cri-containerd-{cid}.scope")
    below = scope.child("inner")
    sibling = top.child("sibling")
    proc, out = start([sys.executable, "-m", "tcpevent", "--container", cid[:16], "--json"])
    try:
        deadline = time.monotonic() + 20
        others: set[int] = set()
        while not out.wait_for(lambda text: len(text.splitlines()) >= 2, timeout=0.5):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the CLI never showed the container's traffic"
            others |= connect(sibling, sibling)
            connect(below, scope)
        others |= connect(sibling, sibling)
        connect(scope, below)
        assert out.wait_for(lambda text: len(text.splitlines()) >= 4, timeout=20)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    rows = [json.loads(line) for line in out.lines]
    assert {r["cgroup_id"] for r in rows} <= {scope.id, below.id}
    assert {r["container_id"] for r in rows} == {cid}
    assert not {r["pid"] for r in rows} & others


def connect(server_cg: Cgroup, client_cg: Cgroup) -> set[int]:
    """One short connection; the pids of both sides."""
    server = Peer("server", socket.AF_INET, "te-srv", enter=placer(server_cg))
    client = Peer(
        "client", socket.AF_INET, "te-cli", connect_port=server.listen_port, enter=placer(client_cg)
    )
    server.accept_info()
    client.accept_info()
    client.do("close")
    server.do("wait-fin")
    server.do("close")
    client.finish()
    server.finish()
    return {server.pid, client.pid}
