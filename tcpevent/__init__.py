"""tcpevent: an eBPF TCP connection tracer.

Events of the host's TCP connections, by default one per connection that
closes (connect, accept and snapshot events on request): who owned it (pid,
uid, command), both endpoints, bytes and segments each way, and when::

    import tcpevent

    with tcpevent.Tracer(ports=[443]) as tracer:
        for ev in tracer:
            print(ev.pid, ev.task, ev.saddr, ev.sport, ev.daddr, ev.dport,
                  ev.rx_bytes, ev.tx_bytes)

See :class:`Tracer` for the options, threads and asyncio, :class:`TcpEvent`
for the fields, :class:`UdpTracer` for UDP flows (docs/udp.md),
:func:`connections` for the live connections with their
full ``tcp_info`` (no BPF needed), and :mod:`tcpevent.abi` for the original
C ABI via ctypes.
"""

from __future__ import annotations

from tcpevent._core import DEFAULT_MAX_SOCKETS, DEFAULT_QUEUE_SIZE, DEFAULT_RING_SIZE
from tcpevent.connections import (
    STATES_ALL,
    STATES_CONNECTED,
    Connection,
    SocketMemory,
    TcpInfo,
    connections,
)
from tcpevent.errors import (
    InvalidProgramError,
    ProgramError,
    ProgramNotFoundError,
    TracerClosedError,
    TracerError,
    TracerPermissionError,
)
from tcpevent.event import EventKind, TcpEvent, TcpState
from tcpevent.stats import TracerStats
from tcpevent.tracer import Tracer
from tcpevent.udp_flow import UdpFlow, UdpStats
from tcpevent.udp_tracer import UdpTracer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_MAX_SOCKETS",
    "DEFAULT_QUEUE_SIZE",
    "DEFAULT_RING_SIZE",
    "STATES_ALL",
    "STATES_CONNECTED",
    "Connection",
    "EventKind",
    "InvalidProgramError",
    "ProgramError",
    "ProgramNotFoundError",
    "SocketMemory",
    "TcpEvent",
    "TcpInfo",
    "TcpState",
    "Tracer",
    "TracerClosedError",
    "TracerError",
    "TracerPermissionError",
    "TracerStats",
    "UdpFlow",
    "UdpStats",
    "UdpTracer",
    "__version__",
    "connections",
]
