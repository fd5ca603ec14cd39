"""One end of a TCP connection in a process of its own, driven by commands.

The peer is a fork of the test process (no exec: nothing on disk has to be
readable by the uid it may switch to). It renames itself (its comm), can
drop to another uid, first run ``enter()`` (e.g. to move into a cgroup or
a network namespace), and obeys one command at a time: "send N", "recv N",
"wait-fin" (until the peer's FIN), "wait-reset" (until the peer's RST),
"close", "reset" (close with RST),
"move DIR" (into the cgroup v2 directory DIR, keeping its socket).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass

from netutil import LOOPBACK, Connection, Endpoint


@dataclass
class PeerInfo:
    pid: int
    addr: str
    port: int
    listen_port: int


def peer_connection(
    family: int, client: PeerInfo, server: PeerInfo, client_sent: int, server_sent: int
) -> Connection:
    """The connection between two peers, as netutil describes one."""
    return Connection(
        family=family,
        client=Endpoint(client.addr, client.port),
        server=Endpoint(server.addr, server.port),
        client_sent=client_sent,
        server_sent=server_sent,
    )


class Peer:
    def __init__(
        self,
        role: str,
        family: int,
        comm: str,
        uid: int | None = None,
        connect_port: int = 0,
        host: str | None = None,
        enter: Callable[[], None] | None = None,
    ) -> None:
        """``host``: where the server listens and the client connects;
        loopback of ``family`` by default (e.g. "::ffff:127.0.0.1" on
        AF_INET6 for an IPv4-mapped connection)."""
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                os.close(self._to_child)
                os.close(self._from_child)
                host = host or LOOPBACK[family]
                if enter is not None:
                    enter()
                _child(role, family, comm, uid, host, connect_port, to_child_r, from_child_w)
                code = 0
            finally:
                os._exit(code)
        os.close(to_child_r)
        os.close(from_child_w)
        self._reader = os.fdopen(self._from_child, "r")
        self._writer = os.fdopen(self._to_child, "w")
        self.listen_port = int(self._reply()) if role == "server" else connect_port

    def _reply(self) -> str:
        line = self._reader.readline()
        if not line:
            raise RuntimeError("peer died")
        return line.strip()

    def accept_info(self) -> PeerInfo:
        addr, port = self._reply().split()
        return PeerInfo(self.pid, addr, int(port), self.listen_port)

    def do(self, command: str) -> None:
        self._writer.write(command + "\n")
        self._writer.flush()
        assert self._reply() == "ok", command

    def finish(self) -> None:
        self._writer.close()
        _, status = os.waitpid(self.pid, 0)
        self._reader.close()
        assert os.waitstatus_to_exitcode(status) == 0


def _child(
    role: str, family: int, comm: str, uid: int | None, host: str, port: int, rfd: int, wfd: int
) -> None:  # pragma: no cover - runs in the child
    with open("/proc/self/comm", "w") as f:
        f.write(comm)
    if uid is not None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    reader, writer = os.fdopen(rfd, "r"), os.fdopen(wfd, "w")

    def say(text: object) -> None:
        writer.write(f"{text}\n")
        writer.flush()

    if role == "server":
        ls = socket.socket(family)
        ls.bind((host, 0))
        ls.listen(1)
        say(ls.getsockname()[1])
        sock, _ = ls.accept()
        ls.close()
    else:
        sock = socket.socket(family)
        sock.connect((host, port))
    addr, lport = sock.getsockname()[:2]
    say(f"{addr} {lport}")
    for line in reader:
        cmd, *arg = line.split()
        if cmd == "send":
            sock.sendall(b"x" * int(arg[0]))
        elif cmd == "recv":
            need = int(arg[0])
            while need:
                need -= len(sock.recv(need))
        elif cmd == "wait-fin":
            assert sock.recv(1) == b""
        elif cmd == "wait-reset":
            try:
                sock.recv(1)
            except ConnectionResetError:
                pass
            else:
                raise AssertionError("no reset came")
        elif cmd == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        elif cmd == "close":
            sock.close()
        elif cmd == "move":
            with open(os.path.join(arg[0], "cgroup.procs"), "w") as f:
                f.write("0\n")
        say("ok")
