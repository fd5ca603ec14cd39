"""Each side of a connection is attributed to its own process.

Client and server live in two different processes, the server under
another uid; they close in either order, or one aborts with a reset. The
server side of a reset-by-peer connection goes to TCP_CLOSE in softirq
context: only the accept() hook can name its owner then.
"""

from __future__ import annotations

import socket

import pytest
from nativeutil import NativeTracer
from peer import Peer

NOBODY = 65534
CLIENT_SENDS, SERVER_SENDS = 1234, 4321

CASES = {
    "client-closes-first": [("client", "close"), ("server", "wait-fin"), ("server", "close")],
    "server-closes-first": [("server", "close"), ("client", "wait-fin"), ("client", "close")],
    "client-resets": [("client", "reset"), ("server", "close")],
    "server-resets": [("server", "reset"), ("client", "close")],
}


@pytest.mark.bpf
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["ipv4", "ipv6"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_side_has_its_own_owner(family: int, case: str) -> None:
    server = Peer("server", family, "te-server", uid=NOBODY)
    with NativeTracer(ports=[server.listen_port]) as tracer:
        client = Peer("client", family, "te-client", connect_port=server.listen_port)
        c, s = client.accept_info(), server.accept_info()
        client.do(f"send {CLIENT_SENDS}")
        server.do(f"recv {CLIENT_SENDS}")
        server.do(f"send {SERVER_SENDS}")
        client.do(f"recv {SERVER_SENDS}")
        peers = {"client": client, "server": server}
        for who, command in CASES[case]:
            peers[who].do(command)
        events = tracer.collect(lambda evs: len(evs) >= 2)
        client.finish()
        server.finish()

    assert len(events) == 2, events
    by_port = {e["sport"]: e for e in events}
    client_ev, server_ev = by_port[c.port], by_port[s.port]
    assert (client_ev["pid"], client_ev["uid"], client_ev["task"]) == (c.pid, 0, "te-client")
    assert (server_ev["pid"], server_ev["uid"], server_ev["task"]) == (s.pid, NOBODY, "te-server")
    assert client_ev["dport"] == s.port and server_ev["dport"] == c.port
    assert client_ev["saddr"] == c.addr and server_ev["saddr"] == s.addr
    assert CLIENT_SENDS <= client_ev["tx_bytes"] <= CLIENT_SENDS + 2
    assert SERVER_SENDS <= server_ev["tx_bytes"] <= SERVER_SENDS + 2
    assert SERVER_SENDS <= client_ev["rx_bytes"] <= SERVER_SENDS + 2
    assert CLIENT_SENDS <= server_ev["rx_bytes"] <= CLIENT_SENDS + 2
