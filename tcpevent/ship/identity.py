"""Who and when an event belongs to: the host's id, the boot's id, and each
event's id, unique across hosts and boots and computed from the event alone.

The id is deterministic: the same event gives the same id in any process,
so a batch sent twice (a timeout after the server committed it, a shipper
killed between sending and forgetting a batch) carries the same ids and the
table's deduplication (docs/fleet.md) collapses it. It is the first 8 bytes
of BLAKE2b over the host id, the boot id and what makes an event unique in
one boot: its kind, its time in ns, its network namespace and both
endpoints. Two events of one boot agree on all of these only if one socket
four-tuple of one namespace had two events of the same kind in the same
nanosecond, which TCP cannot do (a four-tuple belongs to one socket at a
time, and a socket has one event of each kind).
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass
from pathlib import Path

from tcpevent.event import TcpEvent

__all__ = ["BOOT_ID_PATH", "MACHINE_ID_PATHS", "HostIdentity", "event_id"]

#: Where systemd (then D-Bus) keep the host's id: 32 hex digits.
MACHINE_ID_PATHS = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
#: The kernel's random id of this boot (a UUID).
BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class HostIdentity:
    """The host an event was traced on: its name (``socket.gethostname()``),
    its machine id and the id of the boot."""

    host: str
    host_id: str
    boot_id: str

    @classmethod
    def of_this_host(cls) -> HostIdentity:
        """Read from the files above; ``OSError`` when the machine id or the
        boot id cannot be read (an id made up here would not be stable)."""
        host_id = ""
        for path in MACHINE_ID_PATHS:
            try:
                host_id = path.read_text().strip()
            except FileNotFoundError:
                continue
            if host_id:
                break
        if not host_id:
            names = " or ".join(str(p) for p in MACHINE_ID_PATHS)
            raise OSError(f"no machine id in {names}: run systemd-machine-id-setup")
        boot_id = BOOT_ID_PATH.read_text().strip()
        return cls(socket.gethostname(), host_id, boot_id)

    def prefix(self) -> bytes:
        """What every event id of this host and boot starts its hash with."""
        return f"{self.host_id}\0{self.boot_id}\0".encode()


def event_id(ev: TcpEvent, identity: HostIdentity) -> int:
    """The event's id, an unsigned 64-bit integer (see the module's text)."""
    return _event_id(ev, identity.prefix())


def _event_id(ev: TcpEvent, prefix: bytes) -> int:
    key = (
        f"{ev.kind}\0{ev.time_ns}\0{ev.netns}\0{int(ev.family)}\0"
        f"{ev.saddr}\0{ev.sport}\0{ev.daddr}\0{ev.dport}"
    )
    digest = hashlib.blake2b(prefix + key.encode("utf-8", "surrogateescape"), digest_size=8)
    return int.from_bytes(digest.digest(), "big")
