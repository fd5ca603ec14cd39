"""One live TCP socket as sock_diag reports it: :class:`Connection`, with its
:class:`TcpInfo` and :class:`SocketMemory`.

The dataclasses of :func:`tcpevent.connections` (the listing itself, its
arguments and its call into the core are :mod:`tcpevent.connections`; the
conversion from ``struct tcpevent_conn`` is :mod:`tcpevent._conn_convert`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from tcpevent.containers import CgroupNames
from tcpevent.event import Endpoints, TcpState
from tcpevent.family import family_name

__all__ = ["Connection", "SocketMemory", "TcpInfo"]


@dataclass(frozen=True)
class TcpInfo:
    """The kernel's ``struct tcp_info`` of one socket, units in the names.

    Field by field the C struct in its order (``tcpi_state`` is
    :attr:`Connection.state`). A field the running kernel did not send is
    ``None``; the kernel version that brought each is in docs/connections.md.
    Times carry their unit in the name (``_us``, ``_ms``); counts are
    segments unless the name or the field's text says bytes. Immutable,
    hashable, picklable.
    """

    __slots__ = (
        "accecn_fail_mode",
        "accecn_opt_seen",
        "advmss",
        "ato_us",
        "backoff",
        "busy_time_us",
        "bytes_acked",
        "bytes_received",
        "bytes_retrans",
        "bytes_sent",
        "ca_state",
        "data_segs_in",
        "data_segs_out",
        "delivered",
        "delivered_ce",
        "delivered_ce_bytes",
        "delivered_e0_bytes",
        "delivered_e1_bytes",
        "delivery_rate",
        "delivery_rate_app_limited",
        "dsack_dups",
        "fackets",
        "fastopen_client_fail",
        "last_ack_recv_ms",
        "last_ack_sent_ms",
        "last_data_recv_ms",
        "last_data_sent_ms",
        "lost",
        "max_pacing_rate",
        "min_rtt_us",
        "notsent_bytes",
        "options",
        "pacing_rate",
        "pmtu",
        "probes",
        "rcv_mss",
        "rcv_ooopack",
        "rcv_rtt_us",
        "rcv_space",
        "rcv_ssthresh",
        "rcv_wnd",
        "rcv_wscale",
        "received_ce",
        "received_ce_bytes",
        "received_e0_bytes",
        "received_e1_bytes",
        "rehash",
        "reord_seen",
        "reordering",
        "retrans_out",
        "retransmits",
        "rto_us",
        "rtt_us",
        "rttvar_us",
        "rwnd_limited_us",
        "sacked",
        "segs_in",
        "segs_out",
        "snd_cwnd",
        "snd_mss",
        "snd_ssthresh",
        "snd_wnd",
        "snd_wscale",
        "sndbuf_limited_us",
        "total_retrans",
        "total_rto",
        "total_rto_recoveries",
        "total_rto_time_ms",
        "unacked",
    )

    ca_state: int | None
    """Congestion avoidance state: 0 Open, 1 Disorder, 2 CWR, 3 Recovery, 4 Loss."""
    retransmits: int | None
    """Unrecovered RTO timeouts at the current sequence (reset on progress)."""
    probes: int | None
    """Unanswered zero-window probes (or keepalives) in a row."""
    backoff: int | None
    """Exponential backoff of the retransmission timer (RTO doublings)."""
    options: int | None
    """Negotiated options, ``TCPI_OPT_*`` bits: 1 timestamps, 2 SACK, 4 window
    scaling, 8 ECN, 16 ECN seen, 32 SYN data acked, 64 µs timestamps (6.7)."""
    snd_wscale: int | None
    """Window scale (bit shift) of the peer's advertised window."""
    rcv_wscale: int | None
    """Window scale (bit shift) of our advertised window."""
    delivery_rate_app_limited: bool | None
    """True if :attr:`delivery_rate` was limited by the application, not the path."""
    fastopen_client_fail: int | None
    """Why TCP Fast Open failed on the client (0: n/a or not failed; 5.5+, 0 before)."""
    rto_us: int | None
    """Retransmission timeout, µs."""
    ato_us: int | None
    """Delayed-ACK timeout, µs."""
    snd_mss: int | None
    """Current send MSS, bytes."""
    rcv_mss: int | None
    """MSS estimated from the peer's segments, bytes."""
    unacked: int | None
    """Segments sent and not yet acknowledged (``packets_out``)."""
    sacked: int | None
    """Segments selectively acknowledged (SACK scoreboard)."""
    lost: int | None
    """Segments presumed lost."""
    retrans_out: int | None
    """Retransmitted segments not yet acknowledged (``tcpi_retrans``)."""
    fackets: int | None
    """FACK count; FACK was removed in 4.18: always 0 since."""
    last_data_sent_ms: int | None
    """Time since the last data segment was sent, ms."""
    last_ack_sent_ms: int | None
    """Never recorded by Linux: always 0."""
    last_data_recv_ms: int | None
    """Time since the last data segment was received, ms."""
    last_ack_recv_ms: int | None
    """Time since the last ACK was received, ms."""
    pmtu: int | None
    """Path MTU, bytes."""
    rcv_ssthresh: int | None
    """Receive window clamp (slow-start threshold of our window), bytes."""
    rtt_us: int | None
    """Smoothed round-trip time, µs."""
    rttvar_us: int | None
    """Round-trip time variation (mean deviation), µs."""
    snd_ssthresh: int | None
    """Slow-start threshold, segments (2147483647: not set yet)."""
    snd_cwnd: int | None
    """Congestion window, segments."""
    advmss: int | None
    """MSS we advertised, bytes."""
    reordering: int | None
    """Reordering distance the sender tolerates, segments."""
    rcv_rtt_us: int | None
    """Receiver-side RTT estimate, µs (0: none yet)."""
    rcv_space: int | None
    """Receive buffer space the auto-tuning aims at, bytes."""
    total_retrans: int | None
    """Segments retransmitted over the connection's life."""
    pacing_rate: int | None
    """Current pacing rate, bytes/s (2**64-1: unlimited)."""
    max_pacing_rate: int | None
    """``SO_MAX_PACING_RATE``, bytes/s (2**64-1: unlimited)."""
    bytes_acked: int | None
    """Bytes sent and acknowledged by the peer."""
    bytes_received: int | None
    """Bytes received in order."""
    segs_out: int | None
    """Segments sent, including pure ACKs and retransmissions."""
    segs_in: int | None
    """Segments received, including pure ACKs."""
    notsent_bytes: int | None
    """Bytes in the send queue not yet sent."""
    min_rtt_us: int | None
    """Minimum RTT seen (windowed), µs (4294967295: no sample)."""
    data_segs_in: int | None
    """Segments received carrying data."""
    data_segs_out: int | None
    """Segments sent carrying data (retransmissions included)."""
    delivery_rate: int | None
    """Most recent delivery rate sample, bytes/s."""
    busy_time_us: int | None
    """Time with data in flight, µs."""
    rwnd_limited_us: int | None
    """Time limited by the peer's receive window, µs."""
    sndbuf_limited_us: int | None
    """Time limited by the send buffer, µs."""
    delivered: int | None
    """Segments delivered (acknowledged, SACKed included)."""
    delivered_ce: int | None
    """Segments delivered that carried an ECN CE mark."""
    bytes_sent: int | None
    """Bytes sent, retransmissions included."""
    bytes_retrans: int | None
    """Bytes retransmitted."""
    dsack_dups: int | None
    """Duplicate segments reported by D-SACK."""
    reord_seen: int | None
    """Reordering events seen."""
    rcv_ooopack: int | None
    """Out-of-order segments received."""
    snd_wnd: int | None
    """The peer's advertised receive window, bytes (after scaling)."""
    rcv_wnd: int | None
    """Our advertised receive window, bytes (after scaling)."""
    rehash: int | None
    """Path rehash attempts (PLB or timeouts)."""
    total_rto: int | None
    """RTO timeouts over the connection's life (SYN/SYN-ACK and repeats included)."""
    total_rto_recoveries: int | None
    """RTO recoveries, an unfinished one included."""
    total_rto_time_ms: int | None
    """Time spent in RTO recoveries, ms."""
    received_ce: int | None
    """Segments received with a CE mark (Accurate ECN)."""
    delivered_e1_bytes: int | None
    """Bytes delivered with ECT(1) (Accurate ECN feedback)."""
    delivered_e0_bytes: int | None
    """Bytes delivered with ECT(0) (Accurate ECN feedback)."""
    delivered_ce_bytes: int | None
    """Bytes delivered with CE (Accurate ECN feedback)."""
    received_e1_bytes: int | None
    """Bytes received with ECT(1)."""
    received_e0_bytes: int | None
    """Bytes received with ECT(0)."""
    received_ce_bytes: int | None
    """Bytes received with CE."""
    accecn_fail_mode: int | None
    """Accurate ECN failure bits (two u16 up to 6.x, a 4-bit field from 7.0:
    see :data:`ACCECN_LAYOUT`)."""
    accecn_opt_seen: int | None
    """Accurate ECN option seen (which kind of option)."""

    def to_dict(self) -> dict[str, int | bool | None]:
        """Every field by name (absent ones ``None``): JSON-ready."""
        return {name: getattr(self, name) for name in _INFO_FIELDS}

    def __reduce__(self) -> tuple[type[TcpInfo], tuple[Any, ...]]:
        return (type(self), tuple(getattr(self, name) for name in _INFO_FIELDS))


@dataclass(frozen=True)
class SocketMemory:
    """Socket memory (``ss -m``'s ``skmem``, ``SK_MEMINFO_*``), bytes.

    ``None``: not sent by the kernel (``backlog`` came in 3.11, ``drops`` in 4.x).
    """

    __slots__ = (
        "backlog",
        "drops",
        "fwd_alloc",
        "optmem",
        "rcvbuf",
        "rmem_alloc",
        "sndbuf",
        "wmem_alloc",
        "wmem_queued",
    )

    rmem_alloc: int | None
    """Bytes held by received data (``r``)."""
    rcvbuf: int | None
    """Receive buffer size (``rb``, ``SO_RCVBUF``)."""
    wmem_alloc: int | None
    """Bytes of sent data in the qdisc/driver (``t``)."""
    sndbuf: int | None
    """Send buffer size (``tb``, ``SO_SNDBUF``)."""
    fwd_alloc: int | None
    """Memory reserved ahead (``f``)."""
    wmem_queued: int | None
    """Bytes in the send queue, sent or not (``w``)."""
    optmem: int | None
    """Option memory, e.g. socket filters (``o``)."""
    backlog: int | None
    """Bytes in the backlog queue (``bl``)."""
    drops: int | None
    """Packets dropped before reaching the socket (``d``), a count."""

    def to_dict(self) -> dict[str, int | None]:
        """Every field by name."""
        return {name: getattr(self, name) for name in _SKMEM_FIELDS}

    def __reduce__(self) -> tuple[type[SocketMemory], tuple[Any, ...]]:
        return (type(self), tuple(getattr(self, name) for name in _SKMEM_FIELDS))


@dataclass(frozen=True)
class Connection(Endpoints, CgroupNames):
    """One live TCP socket, as sock_diag reports it now. Immutable.

    ``pid``/``task`` are 0 and ``""`` when the owner is unknown (not asked
    with ``with_process=False``, a process we may not inspect, or a kernel
    mini-socket); ``cmdline`` is ``None`` unless asked for.
    """

    __slots__ = (
        "cgroup_id",
        "cmdline",
        "cong",
        "cookie",
        "daddr",
        "dport",
        "family",
        "ifindex",
        "info",
        "inode",
        "mark",
        "pid",
        "recv_q",
        "saddr",
        "send_q",
        "shutdown",
        "skmem",
        "sport",
        "state",
        "task",
        "tclass",
        "timer",
        "timer_expires_ms",
        "timer_retrans",
        "tos",
        "uid",
        "v6only",
    )

    family: socket.AddressFamily
    """``socket.AF_INET`` or ``socket.AF_INET6``."""
    saddr: str
    """Local address (``inet_ntop`` text; ``"::ffff:a.b.c.d"`` for IPv4-mapped)."""
    sport: int
    """Local port."""
    daddr: str
    """Remote address."""
    dport: int
    """Remote port."""
    state: TcpState
    """Current TCP state."""
    uid: int
    """User id of the socket (its creator's)."""
    inode: int
    """Socket inode (``socket:[inode]`` in ``/proc/<pid>/fd``); 0 for mini-sockets."""
    pid: int
    """Owning process (lowest pid holding the socket); 0 if unknown."""
    task: str
    """Its command name (``/proc/<pid>/comm``); ``""`` if unknown."""
    cmdline: str | None
    """Its arguments joined by spaces (``with_cmdline=True`` and an owner), else None."""
    cong: str | None
    """Congestion control algorithm (``"cubic"``, ``"bbr"``...), None if not sent."""
    shutdown: int | None
    """``shutdown()`` seen: bit 1 receive side, bit 2 send side; None if not sent."""
    recv_q: int
    """Bytes received and not read yet (``LISTEN``: accept queue length)."""
    send_q: int
    """Bytes sent and not acknowledged yet (``LISTEN``: backlog limit)."""
    timer: str | None
    """Pending timer: ``"retransmit"``, ``"keepalive"``, ``"time_wait"``,
    ``"zero_window_probe"`` (``"timer_<n>"`` for another), None if none."""
    timer_expires_ms: int
    """When the timer fires, ms from now."""
    timer_retrans: int
    """Retransmissions or probes made by that timer."""
    ifindex: int
    """Bound network interface (``SO_BINDTODEVICE``), 0 if none."""
    tos: int | None
    """IPv4 TOS / DSCP+ECN byte; None if not sent."""
    tclass: int | None
    """IPv6 traffic class; None if not sent (IPv4 sockets)."""
    v6only: bool | None
    """``IPV6_V6ONLY`` of an IPv6 socket in ``LISTEN`` or ``CLOSE`` (the kernel
    sends it for those only); None otherwise."""
    mark: int | None
    """``SO_MARK``; the kernel sends it only to ``CAP_NET_ADMIN``: None otherwise."""
    cgroup_id: int | None
    """cgroup v2 id of the socket; None if not sent."""
    cookie: int
    """Socket cookie, the same as BPF's ``bpf_get_socket_cookie()``."""
    skmem: SocketMemory | None
    """Socket memory, None if not sent."""
    info: TcpInfo | None
    """The full ``tcp_info``; None if not sent (mini-sockets, ``LISTEN`` on old kernels)."""

    def to_dict(self, resolve: bool = False) -> dict[str, Any]:
        """JSON-ready builtins: ``family`` as ``"AF_INET"``/``"AF_INET6"``,
        ``state`` as its name, ``skmem`` and ``info`` as nested dicts (or None).
        ``resolve=True`` adds :attr:`cgroup`, :attr:`container_id` and
        :attr:`pod_uid`."""
        out: dict[str, Any] = {name: getattr(self, name) for name in _CONN_FIELDS}
        out["family"] = family_name(self.family)
        out["state"] = TcpState(self.state).name
        out["skmem"] = None if self.skmem is None else self.skmem.to_dict()
        out["info"] = None if self.info is None else self.info.to_dict()
        if resolve:
            out.update(self.cgroup_names())
        return out

    def __reduce__(self) -> tuple[type[Connection], tuple[Any, ...]]:
        return (type(self), tuple(getattr(self, name) for name in _CONN_FIELDS))


_INFO_FIELDS: tuple[str, ...] = tuple(TcpInfo.__dataclass_fields__)
_SKMEM_FIELDS: tuple[str, ...] = tuple(SocketMemory.__dataclass_fields__)
_CONN_FIELDS: tuple[str, ...] = tuple(Connection.__dataclass_fields__)
