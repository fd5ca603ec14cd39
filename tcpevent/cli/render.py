"""How the ``tcpevent`` command prints events and connections.

Events, three ways (``--format``):

- ``line`` (default): one aligned line per event under a header, like
  tcplife: local time, owner, both endpoints, KB each way, lifetime (with
  connect and accept events, also the kind of event and what it measured),
  and ``container=<12 hex>`` at the end for a socket made in a container;
- ``seed``: the original C example's block, byte for byte;
- ``json``: one compact JSON object per line (:meth:`TcpEvent.to_dict` with
  ``resolve=True``: also ``cgroup``, ``container_id``, ``pod_uid``).

Connections (``--connections``): a table like ``ss -tip``, or JSON lines.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Sequence
from dataclasses import replace

from tcpevent._core import lib
from tcpevent._enums import HEALTH_KINDS
from tcpevent.connections import Connection
from tcpevent.containers import short_id
from tcpevent.event import ZERO_EVENT, TcpEvent, TcpState

__all__ = [
    "EVENT_FORMATS",
    "EXAMPLE_EVENT",
    "LIFECYCLE_FORMATS",
    "LIFECYCLE_HEADER",
    "LINE_HEADER",
    "format_block",
    "format_connection_json",
    "format_connections_table",
    "format_json",
    "format_lifecycle_line",
    "format_line",
]

_BLOCK = (
    "---\n"
    "PID: {pid}\n"
    "UID: {uid}\n"
    "Bytes received: {rx}\n"
    "Bytes sent: {tx}\n"
    "Segments out: {so}\n"
    "Segments in: {si}\n"
    "Command: {task}\n"
    "Source: {saddr}:{sport}\n"
    "Destination: {daddr}:{dport}\n"
    "Event time: {time}\n"
    "---\n"
)


#: The event of the original documentation's example output (an ssh
#: connection over IPv6; the fields the original has no place for: 0).
EXAMPLE_EVENT: TcpEvent = replace(
    ZERO_EVENT,
    time_ns=1628184562000000000,
    pid=1177932,
    uid=1000,
    rx_bytes=2988,
    tx_bytes=3301,
    segs_out=20,
    segs_in=18,
    family=socket.AF_INET6,
    sport=58532,
    dport=22,
    task="ssh",
    saddr="2001:aaa:fff:eee:ccc:a627:f45f:9c0c",
    daddr="2601:xxx:yyy:zzz:aaa:db60:46cd:971c",
    state=TcpState.ESTABLISHED,
    direction="outbound",
    lifetime_ns=5_417_300_000,
)


def format_block(ev: TcpEvent) -> str:
    """One event in the original example's format (``---`` before and after)."""
    return _BLOCK.format(
        pid=ev.pid,
        uid=ev.uid,
        rx=ev.rx_bytes,
        tx=ev.tx_bytes,
        so=ev.segs_out,
        si=ev.segs_in,
        task=ev.task,
        saddr=ev.saddr,
        sport=ev.sport,
        daddr=ev.daddr,
        dport=ev.dport,
        time=ev.time_ns,
    )


def format_json(ev: TcpEvent) -> str:
    """One event as a compact JSON object and a newline: every field
    (``TcpEvent.to_dict``) and the resolved ``cgroup``, ``container_id``
    and ``pod_uid``."""
    return json.dumps(ev.to_dict(resolve=True), separators=(",", ":")) + "\n"


#: The longest command name (``TCPEVENT_TASK_LEN`` less its NUL) fits its column.
_COMM = int(lib.TCPEVENT_TASK_LEN) - 1
# An IPv4 "address:port" fits its column; an IPv6 one widens its line only.
_LINE = f"{{:<12}} {{:>7}} {{:<{_COMM}}} {{:<21}} {{:<21}} {{:>7}} {{:>7}} {{:>10}}"
_TITLES = ("TIME", "PID", "COMM", "LOCAL", "REMOTE", "TX_KB", "RX_KB", "MS")
#: The header of the ``line`` format.
LINE_HEADER = _LINE.format(*_TITLES) + "\n"
# With connect and accept events: which event, and what it measured.
_LIFECYCLE = (
    f"{{:<12}} {{:<7}} {{:>7}} {{:<{_COMM}}} {{:<21}} {{:<21}} {{:>7}} {{:>7}} {{:>10}} {{}}"
)
#: The header of the ``line`` format with connect and accept events.
LIFECYCLE_HEADER = _LIFECYCLE.format(*_TITLES[:1], "EVENT", *_TITLES[1:], "DETAIL").rstrip() + "\n"


def _clock(time_ns: int) -> str:
    """Local wall-clock time of day with milliseconds: ``"14:03:07.512"``."""
    seconds, ns = divmod(time_ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ns // 1_000_000:03d}"


def _columns(ev: TcpEvent) -> tuple[object, ...]:
    return (
        ev.pid or "-",
        ev.task or "-",
        ev.local,
        ev.peer,
        ev.tx_bytes // 1024,
        ev.rx_bytes // 1024,
        f"{ev.lifetime_ns / 1e6:.2f}",
    )


def _container(ev: TcpEvent) -> str:
    """`` container=<12 hex>`` for a socket made in a container, else ``""``."""
    found = ev.container_id
    return "" if found is None else f" container={short_id(found)}"


def format_line(ev: TcpEvent) -> str:
    """One event as a line under :data:`LINE_HEADER`: time, pid, command,
    local and remote ``addr:port`` (IPv6 in brackets), KB sent and received
    (whole KiB, as tcplife), lifetime in ms; ``-`` for an unknown owner.
    A socket made in a container ends its line with ``container=`` and the
    container's short id (12 hex digits, as ``docker ps`` shows it)."""
    return _LINE.format(_clock(ev.time_ns), *_columns(ev)) + _container(ev) + "\n"


def _health(ev: TcpEvent) -> list[str]:
    """What a retransmit, reset or drop event says; for a close with those
    events on, what the connection went through (nothing if nothing)."""
    if ev.kind == "retransmit":
        skipped = f", {ev.skipped} skipped before" if ev.skipped else ""
        return [f"{ev.cause} retransmit, {ev.segs} seg{'s' if ev.segs != 1 else ''}{skipped}"]
    if ev.kind == "reset":
        why = f" ({ev.reason_name})" if ev.reason_name else ""
        where = f" in {ev.state.name}" if ev.state is not TcpState.UNKNOWN else ", no socket"
        return [f"reset {ev.cause}{why}{where}"]
    if ev.kind == "drop":
        return [f"dropped: {ev.reason_name or ev.reason}"]
    causes = (
        ("timeout", ev.retrans_timeout),
        ("loss", ev.retrans_loss),
        ("fast", ev.retrans_fast),
        ("probe", ev.retrans_probe),
        ("syn", ev.retrans_syn),
    )
    parts = []
    if ev.retrans_segs:
        by = " ".join(f"{name} {n}" for name, n in causes if n)
        parts.append(f"retrans {ev.retrans_segs} segs ({by})")
    for what, n in (("resets sent", ev.resets_sent), ("resets received", ev.resets_received)):
        if n:
            parts.append(f"{what} {n}")
    if ev.drops:
        parts.append(f"drops {ev.drops}")
    return parts


def _detail(ev: TcpEvent) -> str:
    """What a lifecycle event measured: the handshake, the accept queue
    wait, or why the connection ended; what a retransmit, reset or drop
    event says (the kernel's reason by name)."""
    parts = []
    if ev.kind in HEALTH_KINDS:
        return ", ".join(_health(ev))
    if ev.kind == "close":
        parts.append(ev.error_name or ("not established" if ev.failed else "-"))
        parts.extend(_health(ev))
    if ev.handshake_ns:
        parts.append(f"handshake {ev.handshake_ns / 1e6:.3f} ms")
    if ev.kind == "accept":
        parts.append(f"queued {ev.accept_wait_ns / 1e6:.3f} ms")
    return ", ".join(parts) or "-"


def format_lifecycle_line(ev: TcpEvent) -> str:
    """One event as a line under :data:`LIFECYCLE_HEADER`: the ``line``
    columns with the kind of event after the time, and a last column of what
    it measured (``handshake 0.043 ms``, ``queued 300.151 ms``) or why the
    connection ended (``ECONNREFUSED``; ``-`` for an orderly close), and
    ``container=<12 hex>`` as in :func:`format_line`."""
    line = _LIFECYCLE.format(_clock(ev.time_ns), ev.kind, *_columns(ev), _detail(ev))
    return line + _container(ev) + "\n"


#: ``--format`` name -> (header, formatter), for close events only...
EVENT_FORMATS = {
    "line": (LINE_HEADER, format_line),
    "seed": ("", format_block),
    "json": ("", format_json),
}
#: ... and with connect and accept events too (the seed's block cannot say
#: which kind an event is).
LIFECYCLE_FORMATS = {
    "line": (LIFECYCLE_HEADER, format_lifecycle_line),
    "json": ("", format_json),
}


# ---- the connections table ------------------------------------------------------

#: (title, right-aligned?) of each column.
_COLUMNS = (
    ("State", False),
    ("Local", False),
    ("Peer", False),
    ("Process", False),
    ("RTT/var ms", True),
    ("Cwnd", True),
    ("Sent", True),
    ("Acked", True),
    ("Received", True),
    ("Retrans", True),
    ("Cong", False),
)
_NONE = "-"


def _size(n: int | None) -> str:
    """Bytes for a person: exact below 10000, else 1024-based with one decimal."""
    if n is None:
        return _NONE
    if n < 10000:
        return str(n)
    value = float(n)
    for unit in "KMGTP":
        value /= 1024
        if value < 1000 or unit == "P":
            break
    return f"{value:.1f}{unit}"


def _row(c: Connection) -> tuple[str, ...]:
    i = c.info
    process = f"{c.pid}/{c.task}" if c.pid else _NONE
    if i is None:
        rtt = cwnd = sent = acked = received = retrans = _NONE
    else:
        rtt = (
            _NONE
            if i.rtt_us is None or i.rttvar_us is None
            else f"{i.rtt_us / 1000:.3f}/{i.rttvar_us / 1000:.3f}"
        )
        cwnd = _NONE if i.snd_cwnd is None else str(i.snd_cwnd)
        sent, acked, received = _size(i.bytes_sent), _size(i.bytes_acked), _size(i.bytes_received)
        retrans = (
            _NONE
            if i.retrans_out is None or i.total_retrans is None
            else f"{i.retrans_out}/{i.total_retrans}"
        )
    return (
        c.state.ss_name,
        c.local,
        c.peer,
        process,
        rtt,
        cwnd,
        sent,
        acked,
        received,
        retrans,
        c.cong or _NONE,
    )


def format_connections_table(conns: Sequence[Connection]) -> str:
    """The connections as a table for a person: a header line, one line each.

    Columns: state (``ss``'s names), local and peer ``addr:port`` (IPv6 in
    brackets), ``pid/command`` of the owner, smoothed RTT/variation in ms,
    congestion window (segments), bytes sent (retransmissions included),
    acknowledged and received (exact below 10000, else K/M/G, 1024-based),
    retransmitted segments unacknowledged/total, congestion control. ``-``
    where the kernel sent nothing.
    """
    rows = [tuple(title for title, _ in _COLUMNS), *(_row(c) for c in conns)]
    widths = [max(len(row[k]) for row in rows) for k in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, (_, right) in zip(row, widths, _COLUMNS)
        ]
        lines.append("  ".join(cells).rstrip() + "\n")
    return "".join(lines)


def format_connection_json(c: Connection) -> str:
    """One connection as a compact JSON object and a newline: every field
    (``Connection.to_dict``) and the resolved ``cgroup``, ``container_id``
    and ``pod_uid``."""
    return json.dumps(c.to_dict(resolve=True), separators=(",", ":")) + "\n"
