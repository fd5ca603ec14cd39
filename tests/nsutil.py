"""Network namespaces of a test's own: made, used and deleted by it.

Only their loopback is brought up: traffic in them never leaves the host.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

_names = itertools.count()


@dataclass(frozen=True)
class Netns:
    name: str
    inode: int  # what TcpEvent.netns says of its sockets

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

    def tcp_mib(self) -> dict[str, int]:
        """The namespace's Tcp counters of /proc/net/snmp (IPv4 and IPv6 alike)."""
        lines = [line.split() for line in self.run("cat", "/proc/net/snmp").splitlines()]
        names, values = (line[1:] for line in lines if line[0] == "Tcp:")
        return dict(zip(names, map(int, values)))


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
