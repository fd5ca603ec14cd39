"""Network namespaces and cgroups of a test's own: made, used and deleted by it.

Only the namespaces' loopback is brought up: traffic in them never leaves
the host. Cgroups are made under the cgroup v2 hierarchy
(``/sys/fs/cgroup/unified`` on this hybrid host), below one directory per
test named after this process. Everything is removed on the way out, also
when the test fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tcpevent.cgroups import cgroup2_mount

_names = itertools.count()
_CLONE_NEWNET = 0x40000000


# ---- network namespaces ------------------------------------------------------------------


@dataclass(frozen=True)
class Netns:
    name: str
    inode: int  # what TcpEvent.netns says of its sockets

    @property
    def path(self) -> str:
        """Its nsfs file, as ``ip netns`` keeps it."""
        return f"/run/netns/{self.name}"

    @property
    def prefix(self) -> list[str]:
        """Run a command in this namespace: ``[*ns.prefix, cmd, ...]``."""
        return ["ip", "netns", "exec", self.name]

    def run(self, *cmd: str, stdin: str | None = None) -> str:
        """The command's output; its stderr in the error if it fails."""
        proc = subprocess.run([*self.prefix, *cmd], input=stdin, capture_output=True, text=True)
        if proc.returncode:
            raise AssertionError(f"{cmd} in {self.name} failed ({proc.returncode}): {proc.stderr}")
        return proc.stdout

    def sysctl(self, name: str, value: str) -> None:
        self.run("sysctl", "-qw", f"{name}={value}")

    def nft(self, ruleset: str) -> None:
        """Load an nftables ruleset in this namespace (it goes with it)."""
        self.run("nft", "-f", "-", stdin=ruleset)

    def counters(self) -> dict[str, int]:
        """The namespace's TCP counters (:func:`tcp_counters`)."""
        return tcp_counters(self.name)


def tcp_counters(name: str) -> dict[str, int]:
    """The Tcp (/proc/net/snmp, IPv4 and IPv6 alike) and TcpExt
    (/proc/net/netstat) counters of the network namespace ``name``, as one
    dict: the two tables share no name."""
    out: dict[str, int] = {}
    for path, prefix in (("/proc/net/snmp", "Tcp:"), ("/proc/net/netstat", "TcpExt:")):
        text = subprocess.run(
            ["ip", "netns", "exec", name, "cat", path], check=True, capture_output=True, text=True
        ).stdout
        lines = [line.split() for line in text.splitlines()]
        names, values = (line[1:] for line in lines if line[0] == prefix)
        out.update(zip(names, map(int, values)))
    return out


def counters_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """How much each of :func:`tcp_counters` grew from ``before`` to ``after``."""
    return {name: after[name] - before[name] for name in after}


@contextmanager
def netns(sysctls: Sequence[tuple[str, str]] = ()) -> Iterator[Netns]:
    """A new network namespace with its loopback up, deleted afterwards."""
    name = f"tcpevent-test-{os.getpid()}-{next(_names)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        ns = Netns(name, os.stat(f"/run/netns/{name}").st_ino)
        for key, value in sysctls:
            ns.sysctl(key, value)
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def enter_netns(path: str) -> None:
    """Move the calling thread (of a single-threaded child) into a network namespace."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


# ---- cgroups -----------------------------------------------------------------------------


def mount() -> Path:
    found = cgroup2_mount()
    assert found is not None, "no cgroup v2 hierarchy is mounted"
    return found


def own_cgroup(pid: int | str = "self") -> str:
    """The cgroup v2 path of a process, relative to the mount (``0::`` line)."""
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].rstrip("\n")
    raise AssertionError(f"process {pid} has no cgroup v2 line")


class Cgroup:
    """A cgroup v2 directory: ``path`` relative to the mount, ``dir`` absolute,
    ``id`` its inode (the kernel's cgroup id)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.dir = mount() / path.lstrip("/")
        self.dir.mkdir()
        self.id = os.stat(self.dir).st_ino

    def child(self, name: str) -> Cgroup:
        return Cgroup(f"{self.path}/{name}")

    def enter(self, pid: int = 0) -> None:
        """Move a process (0: the caller) into this cgroup."""
        (self.dir / "cgroup.procs").write_text(f"{pid}\n")

    def pids(self) -> list[int]:
        return [int(p) for p in (self.dir / "cgroup.procs").read_text().split()]


def _remove_tree(top: Path) -> None:
    """Remove a cgroup tree bottom-up, moving any process left to the root."""
    root_procs = mount() / "cgroup.procs"
    for directory, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
        procs = Path(directory) / "cgroup.procs"
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(OSError):
                    root_procs.write_text(pid + "\n")
        deadline = time.monotonic() + 10
        while True:
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY: a process is still leaving
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


@contextmanager
def cgroup_root() -> Iterator[Cgroup]:
    """A fresh cgroup for one test, removed with everything below it."""
    top = Cgroup(f"/tcpevent-test-{os.getpid()}-{next(_names)}")
    try:
        yield top
    finally:
        _remove_tree(top.dir)


def placer(cgroup: Cgroup | None = None, ns: Netns | None = None) -> Callable[[], None]:
    """A function for a forked child: into ``cgroup`` and ``ns`` before anything else."""

    def enter() -> None:
        if cgroup is not None:
            cgroup.enter()
        if ns is not None:
            enter_netns(ns.path)

    return enter
