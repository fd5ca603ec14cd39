#!/usr/bin/env python3
"""The checks ``make test-wheel`` runs inside each Debian root, on the host's
kernel, with the root's own Python and the tcpevent pip installed in a venv:

    checks.py EXAMPLES SUPPORT wheel|sdist   (as root, in a directory with no tcpevent/)

EXAMPLES holds the repository's examples/ (monitor.c, ctypes_client.py),
SUPPORT the tests' liveness.py, netutil.py and procutil.py (stdlib only). Each check
makes known loopback traffic and compares what was reported with it,
exactly; the last line is ``N passed, N failed`` and the exit status is
non-zero if any check failed. Runs on Python 3.9 and later.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.request
from collections.abc import Callable
from pathlib import Path

EXAMPLES = Path(sys.argv[1])
sys.path.insert(0, sys.argv[2])
#: "wheel": libelf and zlib come from the wheel (tcpevent.libs/); "sdist":
#: built here, against this root's libelf1 and zlib1g.
MODE = sys.argv[3]

import netutil  # noqa: E402
from procutil import check_pair as _check_pair  # noqa: E402
from procutil import parse_blocks, start, wait_until_tracing  # noqa: E402

import tcpevent  # noqa: E402
from tcpevent import abi  # noqa: E402

VENV_BIN = Path(sys.executable).parent
SEED_KEYS = {k: k for k in ("pid", "uid", "task", "saddr", "sport", "daddr", "dport")}
SEED_KEYS.update(rx="rx", tx="tx", segs_out="segs_out", segs_in="segs_in", time="time")
CTYPES_KEYS = {
    **{"pid": "pid", "uid": "UserId", "task": "task", "saddr": "SADDR", "sport": "SPT"},
    **{"daddr": "DADDR", "dport": "DPT", "rx": "rx_b", "tx": "tx_b", "time": "EventTime"},
    **{"segs_out": "tcpi_segs_out", "segs_in": "tcpi_segs_in"},
}
CHECKS: list[Callable[[], None]] = []


def check_pair(
    events: list[dict[str, object]], conn: netutil.Connection, keys: dict[str, str]
) -> None:
    """procutil.check_pair, saying what it compared when it fails. The event
    time must lie between making the connection and now (within the
    clock's 1 s): a client flooded by the host's other traffic may print it
    late."""
    try:
        _check_pair(events, conn, keys, closed=(conn.made_ns, time.time_ns()))
    except AssertionError as exc:
        ends = {(conn.client.port, conn.server.port), (conn.server.port, conn.client.port)}
        ours = [e for e in events if (e[keys["sport"]], e[keys["dport"]]) in ends]
        raise AssertionError(f"{exc!r}: {conn} now={time.time_ns()} events={ours}") from None


def check(fn: Callable[[], None]) -> Callable[[], None]:
    CHECKS.append(fn)
    return fn


def library() -> Path:
    return Path(abi.library_path())


@check
def library_is_the_wheels_and_self_contained() -> None:
    lib = library()
    assert str(lib).startswith(sys.prefix), (lib, sys.prefix)  # the venv's, not a checkout's
    ldd = subprocess.run(["ldd", str(lib)], check=True, capture_output=True, text=True).stdout
    assert "not found" not in ldd, ldd
    assert "libbpf" not in ldd, ldd
    # Whatever it loads besides glibc comes from the wheel (tcpevent.libs/);
    # a library built from the sdist links this system's libelf and zlib.
    system = (
        r"lib(c|m|pthread|dl|rt)\.so\."
        if MODE == "wheel"
        else r"lib(c|m|pthread|dl|rt|elf|z)\.so\."
    )
    for line in ldd.splitlines():
        m = re.match(r"\s*(\S+) => (\S+)", line)
        if m and not re.match(system, m.group(1)):
            assert "/site-packages/tcpevent" in m.group(2), line
    print(f"  {lib}\n" + "".join(f"  {line}\n" for line in ldd.splitlines()), end="")


@check
def c_client() -> None:
    """The seed's monitor.c, built with this root's gcc, against the wheel's library."""
    exe = Path("/tmp/tcpevent-monitor")
    subprocess.run(
        [
            # common.h: the wheel's own copy of the public headers.
            *("gcc", "-O2", f"-I{library().parent.parent / 'include'}"),
            *(f'-DSOFILE="{library()}"', "-Wno-format"),
            *(str(EXAMPLES / "c" / "monitor.c"), "-o", str(exe), "-ldl"),
        ],
        check=True,
    )

    def seen(text: str, port: int) -> bool:
        return any(b["sport"] == port for b in parse_blocks(text))

    proc, out = start(["stdbuf", "-oL", str(exe)])
    try:
        wait_until_tracing(out, seen)
        conns = [
            netutil.connection(socket.AF_INET, client_sends=1000, server_sends=2500),
            netutil.connection(socket.AF_INET6, client_sends=4321, server_sends=77),
        ]
        assert out.wait_for(
            lambda t: all(seen(t, c.client.port) and seen(t, c.server.port) for c in conns)
        ), out.text()
        for conn in conns:
            check_pair(parse_blocks(out.text()), conn, SEED_KEYS)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    stderr = proc.stderr.read() if proc.stderr else ""
    assert stderr.count("not compiled") == 1, stderr
    assert "Interrupted by signal 2" in out.text()


@check
def ctypes_client() -> None:
    def events(text: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def seen(text: str, port: int) -> bool:
        return any(e["SPT"] == port for e in events(text))

    example = EXAMPLES / "python" / "ctypes_client.py"
    proc, out = start([sys.executable, str(example), str(library())])
    try:
        wait_until_tracing(out, seen)
        conns = [
            netutil.connection(socket.AF_INET, client_sends=10, server_sends=20000),
            netutil.connection(socket.AF_INET6, client_sends=65536, server_sends=1),
        ]
        assert out.wait_for(
            lambda t: all(seen(t, c.client.port) and seen(t, c.server.port) for c in conns)
        ), out.text()
        for conn in conns:
            check_pair(events(out.text()), conn, CTYPES_KEYS)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0


@check
def install_lib_for_old_clients() -> None:
    """`tcpevent --install-lib`: where old clients look, self-contained; the
    ctypes example with its default path traces from there, exactly."""
    libdir = Path("/opt/RealTimeKql/lib")
    shutil.rmtree(libdir, ignore_errors=True)
    done = subprocess.run(
        [str(VENV_BIN / "tcpevent"), "--install-lib"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == str(libdir / "libtcpEvent.so"), done
    ldd = subprocess.run(
        ["ldd", str(libdir / "libtcpEvent.so")], check=True, capture_output=True, text=True
    ).stdout
    assert "not found" not in ldd and "libbpf" not in ldd, ldd
    if MODE == "wheel":  # libelf and zlib: the copies beside it, nothing of the venv
        for name in ("libelf", "libz"):
            (line,) = [x for x in ldd.splitlines() if x.strip().startswith(name)]
            assert f"=> {libdir}/" in line, line
    assert "site-packages" not in ldd, ldd

    def events(text: str) -> list[dict[str, object]]:
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def seen(text: str, port: int) -> bool:
        return any(e["SPT"] == port for e in events(text))

    # Another interpreter than the venv's: nothing of the package is used.
    proc, out = start(["/usr/bin/python3", str(EXAMPLES / "python" / "ctypes_client.py")])
    try:
        wait_until_tracing(out, seen)
        conn = netutil.connection(socket.AF_INET6, client_sends=700, server_sends=800)
        assert out.wait_for(lambda t: seen(t, conn.client.port) and seen(t, conn.server.port))
        check_pair(events(out.text()), conn, CTYPES_KEYS)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    shutil.rmtree(libdir)


@check
def python_tracer() -> None:
    """tcpevent.Tracer: exactly one close event per end, with what was sent."""
    with tcpevent.Tracer(pids=[os.getpid()]) as tracer:
        conns = [
            netutil.connection(socket.AF_INET, client_sends=123, server_sends=4567),
            netutil.connection(socket.AF_INET6, client_sends=89, server_sends=10),
        ]
        got: list[tcpevent.TcpEvent] = []
        deadline = time.monotonic() + 10
        while len(got) < 4 and time.monotonic() < deadline:
            got += tracer.dequeue_batch(4 - len(got), timeout=0.1)
        time.sleep(0.2)
        got += tracer.dequeue_batch(16, timeout=0.1)  # nothing more may come
    assert len(got) == 4, got
    events = [
        {
            **{"pid": e.pid, "uid": e.uid, "task": e.task, "saddr": e.saddr, "sport": e.sport},
            **{"daddr": e.daddr, "dport": e.dport, "rx": e.rx_bytes, "tx": e.tx_bytes},
            **{"segs_out": e.segs_out, "segs_in": e.segs_in, "time": e.time_ns},
        }
        for e in got
    ]
    for conn in conns:
        check_pair(events, conn, SEED_KEYS)
    assert {e.kind for e in got} == {"close"}


def json_events(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@check
def cli_json() -> None:
    def seen(text: str, port: int) -> bool:
        return any(e["sport"] == port for e in json_events(text))

    proc, out = start([str(VENV_BIN / "tcpevent"), "--json", "--pid", str(os.getpid())])
    try:
        wait_until_tracing(out, seen)
        conns = [
            netutil.connection(socket.AF_INET, 111, 222),
            netutil.connection(socket.AF_INET6, 333, 444),
        ]
        assert out.wait_for(
            lambda t: all(seen(t, c.client.port) and seen(t, c.server.port) for c in conns)
        ), out.text()
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
    keyed = [
        {**e, "rx": e["rx_bytes"], "tx": e["tx_bytes"], "time": e["time_ns"]}
        for e in json_events(out.text())
    ]
    for conn in conns:
        check_pair(keyed, conn, SEED_KEYS)
    assert {e["kind"] for e in keyed} == {"close"}


@check
def cli_connections() -> None:
    """A connection held open: both its ends, ours, with the bytes sent so far."""
    with netutil.listener(socket.AF_INET) as ls:
        client = socket.create_connection(ls.getsockname()[:2])
        server, _ = ls.accept()
    port = server.getsockname()[1]
    other = client.getsockname()[1]
    try:
        client.sendall(b"x" * 1000)
        netutil.recv_exact(server, 1000)
        proc = subprocess.run(
            [str(VENV_BIN / "tcpevent"), "--connections", "--json", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        client.close()
        server.close()
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    rows = json_events(proc.stdout)
    assert {(r["sport"], r["dport"]) for r in rows} == {(port, other), (other, port)}, rows
    for r in rows:
        assert r["pid"] == os.getpid() and r["state"] == "ESTABLISHED", r


@check
def exporter_metrics() -> None:
    proc = subprocess.Popen(
        [str(VENV_BIN / "tcpevent"), "exporter", "--listen", "127.0.0.1:0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        url = None
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            m = re.search(r"serving (http://\S+/metrics)", "".join(lines))
            url = m.group(1) if m else None
            time.sleep(0.05)
        assert url, "".join(lines)
        n = 3
        with netutil.listener(socket.AF_INET) as ls:
            port = ls.getsockname()[1]
            for _ in range(n):
                client = socket.create_connection(ls.getsockname()[:2])
                server, _ = ls.accept()
                client.sendall(b"c" * 100)
                netutil.recv_exact(server, 100)
                client.close()
                server.recv(1)
                server.close()
        # Both ends of each connection count under the listener's port.
        closed = -1.0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body = urllib.request.urlopen(url, timeout=10).read().decode()
            assert "tcpevent_build_info" in body
            sample = rf'^tcpevent_connections_closed_total\{{[^}}]*service_port="{port}"[^}}]*\}}'
            closed = sum(float(m[1]) for m in re.finditer(sample + r" (\S+)$", body, flags=re.M))
            if closed >= 2 * n:
                break
            time.sleep(0.2)
        assert closed == 2 * n, (closed, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(15)
        reader.join(5)
    assert code == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)


def main() -> int:
    assert os.geteuid() == 0, "as root"
    assert shutil.which("clang") is None, "this root must have no clang"
    libbpf = [str(p) for d in ("/usr/lib", "/lib") for p in Path(d).rglob("libbpf.so*")]
    assert not libbpf, f"this root must have no libbpf: {libbpf}"
    print(
        f"tcpevent {tcpevent.__version__} on Python {sys.version.split()[0]}, {os.uname().release}"
    )
    passed = failed = 0
    for fn in CHECKS:
        # Two tries: the seed's clients see every connection of the host, and
        # another process's connection storm can bury ours for a while. A
        # broken wheel fails both; a retry is said, never hidden.
        for attempt in (1, 2):
            start_t = time.monotonic()
            try:
                fn()
            except Exception:
                text = traceback.format_exc()
                if len(text) > 4000:  # a flooded client's output
                    text = text[:2000] + "\n[...]\n" + text[-2000:]
                print(f"{'FAILED' if attempt == 2 else 'failed, once more:'} {fn.__name__}")
                print(text)
                if attempt == 2:
                    failed += 1
            else:
                passed += 1
                again = " on the second try" if attempt == 2 else ""
                print(f"ok {fn.__name__} ({time.monotonic() - start_t:.1f} s){again}")
                break
        sys.stdout.flush()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
