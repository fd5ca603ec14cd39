"""``tcpevent --udp``: a line per UDP flow report, or one JSON object each with ``--json``.

The line, like tcplife's: local time, owner, both endpoints, datagrams and
bytes each way in the report's interval, receive drops, the interval in
seconds, and ``END`` for a flow's final report (its socket was released);
``container=<12 hex>`` for a socket made in a container.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tcpevent.cli.common import (
    EXIT_OK,
    RunBudget,
    Stop,
    UsageError,
    construct_tracer,
    container_cgroups,
    signals_stop,
)
from tcpevent.containers import short_id
from tcpevent.errors import TracerClosedError
from tcpevent.udp_flow import UdpFlow
from tcpevent.udp_tracer import UdpTracer

__all__ = ["UDP_HEADER", "format_udp_json", "format_udp_line", "open_udp_tracer", "run_udp"]

_LINE = "{:<12} {:>7} {:<15} {:<21} {:<21} {:>7} {:>7} {:>9} {:>9} {:>5} {:>6} {}"
_TITLES = (
    "TIME",
    "PID",
    "COMM",
    "LOCAL",
    "REMOTE",
    "TX_DG",
    "RX_DG",
    "TX_B",
    "RX_B",
    "DROPS",
    "SECS",
    "END",
)
POLL_INTERVAL = 0.1
BATCH = 256
#: The header of ``tcpevent --udp``.
UDP_HEADER = _LINE.format(*_TITLES).rstrip() + "\n"


def _clock(time_ns: int) -> str:
    seconds, ns = divmod(time_ns, 1_000_000_000)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ns // 1_000_000:03d}"


def format_udp_line(f: UdpFlow) -> str:
    """One flow report as a line under :data:`UDP_HEADER`."""
    end = "end" if f.final else ("idle" if f.retired else "-")
    line = _LINE.format(
        _clock(f.time_ns),
        f.pid or "-",
        f.task or "-",
        f.local,
        f.peer,
        f.tx_datagrams,
        f.rx_datagrams,
        f.tx_bytes,
        f.rx_bytes,
        f.rx_drops,
        f"{f.interval:.2f}",
        end,
    )
    found = f.container_id
    return line + ("" if found is None else f" container={short_id(found)}") + "\n"


def format_udp_json(f: UdpFlow) -> str:
    """One flow report as a compact JSON object (:meth:`UdpFlow.to_dict`, resolved)."""
    return json.dumps(f.to_dict(resolve=True), separators=(",", ":")) + "\n"


def open_udp_tracer(args: argparse.Namespace) -> UdpTracer:
    """A UdpTracer with the command's filters; a bad one is a UsageError."""
    cgroups = args.cgroup
    if args.container:
        cgroups = container_cgroups(args.container)
    if args.cgroup_subtree:
        raise UsageError("--cgroup-subtree does not apply to --udp (exact cgroups only)")
    return construct_tracer(
        lambda: UdpTracer(
            pids=args.pid,
            ports=args.port,
            family=args.family,
            queue_size=args.queue_size,
            flush_interval=getattr(args, "flush_interval", None) or 10.0,
            cgroups=cgroups,
            netns=args.netns,
        )
    )


def run_udp(args: argparse.Namespace) -> int:
    """Print flow reports until a signal, ``--count`` or ``--duration``;
    on the way out the tracer's last reports (what every flow moved) too."""
    out = sys.stdout
    json_lines = args.format == "json"
    render = format_udp_json if json_lines else format_udp_line
    header = "" if json_lines else UDP_HEADER
    stop = Stop()
    with signals_stop(stop), open_udp_tracer(args) as tracer:
        budget = RunBudget(args.count, args.duration)
        while budget:
            timeout = budget.timeout(POLL_INTERVAL)
            if stop or timeout <= 0:
                tracer.close()  # its last reports follow; then the loop ends
            try:
                flows = tracer.dequeue_batch(budget.want(BATCH), max(0.0, timeout))
            except TracerClosedError:  # closed, and every report printed
                break
            if flows and header:
                out.write(header)
                header = ""
            out.write("".join(render(f) for f in flows))
            out.flush()
            budget.took(len(flows))
        stats = tracer.stats()
    if stats.dropped_queue or stats.untracked:
        print(
            f"tcpevent: {stats.dropped_queue} flow reports lost (queue full), "
            f"{stats.untracked} datagrams of flows not tracked (flow table full)",
            file=sys.stderr,
        )
    return EXIT_OK
