"""The ClickHouse table of events: its columns, how it is created, and one
event as one row of ``JSONEachRow``.

The types are those ClickHouse 18.16 (Debian's package) has: no
``DateTime64`` (``time`` is whole seconds, ``time_ns`` the exact time), no
``IPv6`` domain (addresses are their ``inet_ntop`` text), no
``LowCardinality`` (plain ``String`` compresses repeated values well). A
kind, state or errno name a later kernel adds is just another string, never
a row the server refuses.

The engine is ``ReplacingMergeTree``: rows with the same sorting key are
collapsed into one when parts merge, and ``FINAL`` (or ``GROUP BY
event_id``) collapses them at query time. The sorting key ends in
``event_id``, so a batch sent twice counts once (docs/fleet.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tcpevent.event import TcpEvent, family_name
from tcpevent.ship.identity import HostIdentity, _event_id

__all__ = [
    "COLUMNS",
    "DEFAULT_TABLE",
    "Column",
    "RowEncoder",
    "check_table_name",
    "create_table_sql",
    "quote_table",
]

DEFAULT_TABLE = "tcp_events"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    doc: str


#: Every column, in order; ``docs/fleet.md`` shows the same table.
COLUMNS: tuple[Column, ...] = (
    Column("time", "DateTime", "the event's wall-clock time, whole seconds (UTC)"),
    Column("time_ns", "UInt64", "the same, ns since the Unix epoch (TcpEvent.time_ns)"),
    Column("host", "String", "the host's name (gethostname)"),
    Column("host_id", "String", "the host's /etc/machine-id"),
    Column("boot_id", "String", "/proc/sys/kernel/random/boot_id of the boot that traced it"),
    Column("event_id", "UInt64", "unique across hosts and boots, derived from the event"),
    Column("kind", "String", "close, connect, accept (or snapshot)"),
    Column("direction", "String", "outbound, inbound or unknown"),
    Column("pid", "UInt32", "the owning process; 0 if unknown"),
    Column("uid", "UInt32", "its user id"),
    Column("task", "String", "its command name"),
    Column("family", "String", "AF_INET or AF_INET6"),
    Column("saddr", "String", "local address"),
    Column("sport", "UInt16", "local port"),
    Column("daddr", "String", "remote address (the peer)"),
    Column("dport", "UInt16", "remote port"),
    Column("rx_bytes", "UInt64", "bytes received (tcp_sock.bytes_received)"),
    Column("tx_bytes", "UInt64", "bytes sent and acknowledged (tcp_sock.bytes_acked)"),
    Column("segs_out", "UInt32", "data segments sent"),
    Column("segs_in", "UInt32", "data segments received"),
    Column("rtt_us", "UInt32", "smoothed RTT, microseconds; 0 if unknown"),
    Column("retrans", "UInt32", "segments retransmitted"),
    Column("state", "String", "TCP state before the close (SYN_SENT for a failed connect)"),
    Column("error", "String", "the socket's error as its errno name (ECONNREFUSED); '' if none"),
    Column("lifetime_ns", "UInt64", "first sighting of the socket to the event"),
    Column("handshake_ns", "UInt64", "SYN to ESTABLISHED (with connect/accept events)"),
    Column("accept_wait_ns", "UInt64", "accept events: time in the listen queue"),
    Column("cgroup_id", "UInt64", "the cgroup v2 id the socket was made in"),
    Column("cgroup", "String", "that cgroup's path; '' if unknown"),
    Column("container_id", "String", "its container's 64-hex id; '' for none"),
    Column("pod_uid", "String", "its Kubernetes pod's uid; '' for none"),
    Column("netns", "UInt64", "the inode of the socket's network namespace"),
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_table_name(name: str) -> str:
    """``NAME`` or ``DATABASE.NAME``, plain identifiers; ``ValueError`` otherwise."""
    parts = name.split(".")
    if len(parts) > 2 or not all(_NAME.fullmatch(p) for p in parts):
        raise ValueError(
            f"not a table name (NAME or DATABASE.NAME, letters, digits and _): {name!r}"
        )
    return name


def quote_table(name: str) -> str:
    """``name`` as ClickHouse SQL (each part in backquotes)."""
    return ".".join(f"`{p}`" for p in check_table_name(name).split("."))


def create_table_sql(table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` with the schema above.

    Partitioned by day (old days are dropped by partition); sorted by hour,
    then peer address and port, so that "who talked to this peer, when" and
    time-bounded scans read little; ``event_id`` last, the deduplication.
    """
    columns = ",\n".join(f"    `{c.name}` {c.type}" for c in COLUMNS)
    return (
        f"CREATE TABLE IF NOT EXISTS {quote_table(table)}\n(\n{columns}\n)\n"
        "ENGINE = ReplacingMergeTree\n"
        "PARTITION BY toDate(time)\n"
        "ORDER BY (toStartOfHour(time), daddr, dport, event_id)"
    )


def _text(value: str) -> str:
    # A command name that is not UTF-8 holds surrogate escapes: they go out
    # as backslash escapes (\xff), text ClickHouse stores as it is.
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class RowEncoder:
    """Events as ``JSONEachRow`` lines for one host and boot."""

    def __init__(self, identity: HostIdentity) -> None:
        self.identity = identity
        self._prefix = identity.prefix()
        # What every row of this host and boot has, as JSON once.
        self._host = (
            f'"host":{_quote(identity.host)},"host_id":{_quote(identity.host_id)},'
            f'"boot_id":{_quote(identity.boot_id)}'
        )
        self._quoted: dict[str, str] = {}
        self._cgroups: dict[int, str] = {}

    def row(self, ev: TcpEvent) -> dict[str, Any]:
        """The event as the table's columns."""
        names: Mapping[str, str | None] = ev.cgroup_names() if ev.cgroup_id else {}
        ident = self.identity
        return {
            "time": ev.time_ns // 1_000_000_000,
            "time_ns": ev.time_ns,
            "host": ident.host,
            "host_id": ident.host_id,
            "boot_id": ident.boot_id,
            "event_id": _event_id(ev, self._prefix),
            "kind": ev.kind,
            "direction": ev.direction,
            "pid": ev.pid,
            "uid": ev.uid,
            "task": _text(ev.task),
            "family": family_name(ev.family),
            "saddr": ev.saddr,
            "sport": ev.sport,
            "daddr": ev.daddr,
            "dport": ev.dport,
            "rx_bytes": ev.rx_bytes,
            "tx_bytes": ev.tx_bytes,
            "segs_out": ev.segs_out,
            "segs_in": ev.segs_in,
            "rtt_us": ev.rtt_us,
            "retrans": ev.retrans,
            "state": ev.state.name,
            "error": ev.error_name or "",
            "lifetime_ns": ev.lifetime_ns,
            "handshake_ns": ev.handshake_ns,
            "accept_wait_ns": ev.accept_wait_ns,
            "cgroup_id": ev.cgroup_id,
            "cgroup": _text(names.get("cgroup") or ""),
            "container_id": names.get("container_id") or "",
            "pod_uid": names.get("pod_uid") or "",
            "netns": ev.netns,
        }

    def line(self, ev: TcpEvent) -> str:
        """One ``JSONEachRow`` line, with its newline: ``json.dumps(row(ev))``
        (the same object), written directly. It runs once per event: the
        strings, which repeat (commands, addresses, kinds, states), are
        quoted once and remembered, the cgroup's names once per cgroup."""
        q = self._quoted
        task, saddr, daddr = ev.task, ev.saddr, ev.daddr
        kind, direction, state = ev.kind, ev.direction, ev.state.name
        error = ev.error_name or ""
        for text in (task, saddr, daddr, kind, direction, state, error):
            if text not in q:
                self._remember(text)
        cgroup = self._cgroups.get(ev.cgroup_id)
        if cgroup is None:
            cgroup = self._cgroup(ev)
        return (
            f'{{"time":{ev.time_ns // 1_000_000_000},"time_ns":{ev.time_ns},{self._host},'
            f'"event_id":{_event_id(ev, self._prefix)},"kind":{q[kind]},'
            f'"direction":{q[direction]},"pid":{ev.pid},"uid":{ev.uid},"task":{q[task]},'
            f'"family":"{family_name(ev.family)}","saddr":{q[saddr]},"sport":{ev.sport},'
            f'"daddr":{q[daddr]},"dport":{ev.dport},"rx_bytes":{ev.rx_bytes},'
            f'"tx_bytes":{ev.tx_bytes},"segs_out":{ev.segs_out},"segs_in":{ev.segs_in},'
            f'"rtt_us":{ev.rtt_us},"retrans":{ev.retrans},"state":{q[state]},'
            f'"error":{q[error]},"lifetime_ns":{ev.lifetime_ns},'
            f'"handshake_ns":{ev.handshake_ns},"accept_wait_ns":{ev.accept_wait_ns},'
            f'"cgroup_id":{ev.cgroup_id},{cgroup},"netns":{ev.netns}}}\n'
        )

    def _remember(self, text: str) -> None:
        if len(self._quoted) >= _QUOTED_MAX:
            self._quoted.clear()  # bounded: a host with endless distinct peers
        self._quoted[text] = _quote(_text(text))

    def _cgroup(self, ev: TcpEvent) -> str:
        names: Mapping[str, str | None] = ev.cgroup_names() if ev.cgroup_id else {}
        fragment = (
            f'"cgroup":{_quote(_text(names.get("cgroup") or ""))},'
            f'"container_id":{_quote(names.get("container_id") or "")},'
            f'"pod_uid":{_quote(names.get("pod_uid") or "")}'
        )
        if len(self._cgroups) >= _QUOTED_MAX:
            self._cgroups.clear()
        self._cgroups[ev.cgroup_id] = fragment
        return fragment


#: Strings and cgroups remembered at most (then forgotten all at once).
_QUOTED_MAX = 50_000


def _quote(text: str) -> str:
    return json.dumps(text)
