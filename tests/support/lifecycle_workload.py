"""TCP connections of known fates, for tests/test_lifecycle.py.

Run inside a network namespace of the test's own (``ip netns exec``), on
its loopback; prints one JSON object saying what it did:

    lifecycle_workload.py churn N     N connections per family with data,
                                      some refused, some reset each way
    lifecycle_workload.py connect PORT
                                      listen on 127.0.0.1:PORT and connect
                                      to it once (the test drops SYNs there)
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys

from netutil import LOOPBACK, listener, recv_exact, set_reset_on_close


def closed_port(family: int) -> int:
    """A port nothing listens on (it was just bound and released)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK[family], 0))
        return int(s.getsockname()[1])


def churn(n: int) -> dict[str, object]:
    """Per family: n orderly connections (every 3rd one closed by the server
    first), n // 4 refused connects, n // 4 reset by the client, n // 4 reset
    by the server. Every connection that opens is accepted first."""
    fates: list[dict[str, object]] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        with listener(family) as ls:
            addr = ls.getsockname()[:2]
            for i in range(n + 2 * (n // 4)):
                client = socket.create_connection(addr)
                server, _ = ls.accept()
                cport = client.getsockname()[1]
                if i < n:
                    client.sendall(b"c" * (100 + i))
                    recv_exact(server, 100 + i)
                    server.sendall(b"s" * (200 + i))
                    recv_exact(client, 200 + i)
                    first, second = (server, client) if i % 3 == 0 else (client, server)
                    first.close()
                    second.recv(1)  # the FIN arrived: an orderly close each side
                    second.close()
                    fate = "orderly"
                else:
                    # The side that aborts sends RST; the other receives it.
                    aborts, receives = (client, server) if i % 2 else (server, client)
                    set_reset_on_close(aborts)
                    aborts.close()
                    with contextlib.suppress(ConnectionResetError):
                        receives.recv(1)
                    receives.close()
                    fate = "client reset" if aborts is client else "server reset"
                fates.append(
                    {"family": int(family), "cport": cport, "sport": addr[1], "fate": fate}
                )
        port = closed_port(family)
        for _ in range(n // 4):
            with contextlib.suppress(ConnectionRefusedError):
                socket.create_connection((LOOPBACK[family], port)).close()
            fates.append({"family": int(family), "cport": 0, "sport": port, "fate": "refused"})
    return {"pid": os.getpid(), "fates": fates}


def connect(port: int) -> dict[str, object]:
    """Listen on 127.0.0.1:PORT, connect to it, accept and close; or report
    the connect's errno."""
    with socket.socket() as ls:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # an earlier run's TIME_WAIT
        ls.bind(("127.0.0.1", port))
        ls.listen()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
                server, _ = ls.accept()
                server.close()
                return {"pid": os.getpid(), "cport": c.getsockname()[1], "errno": 0}
        except OSError as exc:
            return {"pid": os.getpid(), "cport": 0, "errno": exc.errno or errno.EIO}


if __name__ == "__main__":
    what, arg = sys.argv[1], int(sys.argv[2])
    result = churn(arg) if what == "churn" else connect(arg)
    print(json.dumps(result), flush=True)
