"""Live TCP connections with their full ``tcp_info``: :func:`connections`.

Close events say what a connection did once it is gone; this says what the
live ones are doing now (RTT, retransmissions, congestion window, bytes so
far), as ``ss -tip`` does::

    for c in tcpevent.connections(ports=[443]):
        print(c.pid, c.task, c.local, c.peer, c.info.rtt_us, c.info.bytes_acked)

It asks the kernel through netlink sock_diag (``tcpevent_connections()`` of
the core), which needs no privilege and no BPF; finding each socket's owner
reads ``/proc/<pid>/fd`` (see docs/connections.md for what that may see).

The core's array of ``struct tcpevent_conn`` becomes the dataclasses of
:mod:`tcpevent.connection` in :mod:`tcpevent._conn_convert`, with the layout
taken from the C header. A ``tcp_info`` field the kernel did not send is
``None``, never garbage.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Union

from tcpevent import _core
from tcpevent._conn_convert import ACCECN_LAYOUT, connections_from_cdata, tcp_info_from_cdata
from tcpevent._options import MAX_PID, MAX_PORT, FamilyArg, _id_list, parse_family
from tcpevent.connection import Connection, SocketMemory, TcpInfo
from tcpevent.errors import error_from_code
from tcpevent.event import TcpState
from tcpevent.netns import netns_path

__all__ = [
    "ACCECN_LAYOUT",
    "STATES_ALL",
    "STATES_CONNECTED",
    "Connection",
    "SocketMemory",
    "StatesArg",
    "TcpInfo",
    "connections",
    "connections_from_cdata",
    "parse_states",
    "tcp_info_from_cdata",
]

ffi = _core.ffi

#: What ``states=`` accepts: one state or an iterable of them, each a
#: :class:`TcpState`, its value, or its name (any case; ``ss``'s spellings
#: such as ``"FIN-WAIT-1"``, ``"ESTAB"`` too); ``"all"`` for every state;
#: ``None`` for :data:`STATES_CONNECTED`.
StatesArg = Union[None, int, str, TcpState, Iterable[Union[int, str, TcpState]]]

#: The states of real connections (the default): sockets with an inode, an
#: owner and a ``tcp_info``. Leaves out ``LISTEN``, ``CLOSE``, ``TIME_WAIT``
#: and ``SYN_RECV``/``NEW_SYN_RECV`` (the last ones are kernel mini-sockets):
#: the bits of the C default, ``TCPEVENT_STATES_CONNECTED`` (tcpevent_conn.h).
STATES_CONNECTED: frozenset[TcpState] = frozenset(
    s for s in TcpState if s and _core.lib.TCPEVENT_STATES_CONNECTED >> s & 1
)
#: Every state the kernel has (``states="all"``).
STATES_ALL: frozenset[TcpState] = frozenset(s for s in TcpState if s is not TcpState.UNKNOWN)

#: The mask of ``states="all"``: every bit, as the core means it.
_MASK_ALL: int = int(_core.lib.TCPEVENT_STATES_ALL)


# ---- the query -----------------------------------------------------------------------


def _state_of(item: object) -> TcpState:
    if isinstance(item, bool):
        raise TypeError("a state must be a TcpState, its value or its name, not bool")
    if isinstance(item, str):
        try:
            state = TcpState.parse(item)
        except ValueError as exc:
            raise ValueError(f"{exc} or 'all'") from None
    elif isinstance(item, int):
        if not 1 <= item <= 31:
            raise ValueError(f"a TCP state value must be between 1 and 31, not {item}")
        state = TcpState(item)
    else:
        raise TypeError(
            f"a state must be a TcpState, its value or its name, not {type(item).__name__}"
        )
    if state is TcpState.UNKNOWN:
        raise ValueError("TcpState.UNKNOWN is not a state the kernel lists")
    return state


def parse_states(states: StatesArg) -> int:
    """The ``TCPEVENT_STATE_BIT`` mask for ``states=`` (0: the C default,
    :data:`STATES_CONNECTED`)."""
    if states is None:
        return 0
    if isinstance(states, str) and states.strip().lower() == "all":
        return _MASK_ALL
    items: Iterable[object]
    if isinstance(states, (str, int)):
        items = (states,)
    elif isinstance(states, Iterable):
        items = states
    else:
        raise TypeError(
            "states must be a TcpState, its value or name, an iterable of them, 'all' "
            f"or None, not {type(states).__name__}"
        )
    mask = 0
    for item in items:
        if isinstance(item, str) and item.strip().lower() == "all":
            return _MASK_ALL
        mask |= 1 << int(_state_of(item))
    if not mask:
        raise ValueError("states is empty: pass None for connected sockets, or 'all'")
    return mask


def connections(
    family: FamilyArg = None,
    states: StatesArg = None,
    pid: int | Iterable[int] | None = None,
    with_process: bool = True,
    ports: int | Iterable[int] | None = None,
    with_cmdline: bool = False,
    netns: int | str | os.PathLike[str] | None = None,
) -> list[Connection]:
    """The host's TCP sockets now, with their ``tcp_info``, in kernel order.

    - ``family``: None (both), ``socket.AF_INET``/``"ipv4"``, ``socket.AF_INET6``/``"ipv6"``;
    - ``states``: a :class:`TcpState` (or value, or name such as
      ``"established"``), an iterable of them, or ``"all"``; None:
      :data:`STATES_CONNECTED` (no listening sockets, no ``TIME_WAIT``);
    - ``pid``: only sockets held open by this process (or these, an
      iterable); implies finding owners;
    - ``with_process``: find each socket's owner (``pid``, ``task``) by
      scanning ``/proc/<pid>/fd``; False skips that work (``pid`` 0);
    - ``ports``: only sockets whose local or remote port is one of these;
    - ``with_cmdline``: also read the owner's command line;
    - ``netns``: the sockets of another network namespace (an ``ip netns``
      name, a path such as ``/proc/PID/ns/net``, or its inode number)
      instead of ours; entering it needs ``CAP_SYS_ADMIN``. An unknown one
      is a ``ValueError``.

    Needs no privilege; owners are found only in processes whose
    ``/proc/<pid>/fd`` we may read (same user, or ``CAP_SYS_PTRACE`` with
    ``CAP_DAC_READ_SEARCH``, as root has): others give ``pid`` 0. Raises
    ``ValueError``/``TypeError`` for bad arguments, a
    :class:`~tcpevent.TracerError` (:class:`~tcpevent.TracerPermissionError`
    for ``EPERM``/``EACCES``) when the kernel refuses.
    """
    fam = parse_family(family)
    mask = parse_states(states)
    pids = _id_list("pid", pid, 1, MAX_PID, "pid")
    port_list = _id_list("ports", ports, 1, MAX_PORT, "port")
    if not isinstance(with_process, bool) or not isinstance(with_cmdline, bool):
        raise TypeError("with_process and with_cmdline must be bools")

    q = ffi.new("struct tcpevent_conn_query *")
    lib = _core.lib
    lib.tcpevent_conn_query_init(q)
    q.family = fam
    q.states = mask
    keep: list[Any] = []
    _core.set_array(q, "ports", port_list, keep)
    _core.set_array(q, "pids", pids, keep)
    q.with_process = 1 if (with_process or with_cmdline) else 0
    q.with_cmdline = 1 if with_cmdline else 0
    if netns is not None:
        keep.append(ffi.new("char[]", os.fsencode(netns_path(netns))))
        q.netns = keep[-1]

    out = ffi.new("struct tcpevent_conn **")
    count = ffi.new("size_t *")
    rc = lib.tcpevent_connections(q, out, count)
    if rc < 0:
        raise error_from_code(rc, _core.last_error())
    try:
        return connections_from_cdata(out[0], int(count[0]), with_cmdline)
    finally:
        lib.tcpevent_connections_free(out[0], count[0])
