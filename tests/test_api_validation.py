"""The Python API without the kernel: arguments, errors, TcpEvent, stats."""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import json
import pickle
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import tcpevent
from tcpevent import _core, abi, errors, tracer
from tcpevent._convert import STORED_FIELDS, events_from_buffer
from tcpevent._core import ffi

# ---- argument validation: raised before anything is loaded -------------------


@pytest.fixture
def no_open(mocker: Any) -> Any:
    """Fail the test if validation lets a bad argument reach tcpevent_open()."""
    fake = mocker.MagicMock(wraps=_core.lib)
    fake.tcpevent_open.side_effect = AssertionError("tcpevent_open() must not be called")
    mocker.patch.object(tracer, "lib", fake)
    return fake


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"pids": "123"}, TypeError, "pids must be an iterable"),
        ({"pids": [1.5]}, TypeError, "must be an int"),
        ({"pids": [True]}, TypeError, "not bool"),
        ({"pids": [0]}, ValueError, "between 1 and 4294967295"),
        ({"pids": [-3]}, ValueError, "between 1"),
        ({"pids": [2**32]}, ValueError, "between 1 and 4294967295"),
        ({"pids": []}, ValueError, "empty"),
        ({"pids": range(1, 1026)}, ValueError, "at most 1024"),
        ({"ports": [0]}, ValueError, "between 1 and 65535"),
        ({"ports": [65536]}, ValueError, "between 1 and 65535"),
        ({"ports": range(1, 1026)}, ValueError, "at most 1024"),
        ({"ports": object()}, TypeError, "ports must be an iterable"),
        ({"family": 3}, ValueError, "family must be"),
        ({"family": "ipx"}, ValueError, "family must be"),
        ({"family": 2.0}, TypeError, "family must be an int"),
        ({"queue_size": 0}, ValueError, "queue_size must be between 1 and 16777216"),
        ({"queue_size": 2**24 + 1}, ValueError, "queue_size"),
        ({"queue_size": "10"}, TypeError, "queue_size must be an int"),
        ({"ring_size": 5000}, ValueError, "power of two"),
        ({"ring_size": 2048}, ValueError, "power of two"),
        ({"ring_size": 2**31}, ValueError, "power of two"),
        ({"max_sockets": 0}, ValueError, "max_sockets"),
        ({"snapshot_interval": 0}, ValueError, "snapshot_interval must be > 0"),
        ({"snapshot_interval": -1.0}, ValueError, "snapshot_interval"),
        ({"snapshot_interval": float("nan")}, ValueError, "snapshot_interval"),
        ({"snapshot_interval": "1"}, TypeError, "snapshot_interval"),
        ({"program": ""}, ValueError, "program is empty"),
        ({"program": 42}, TypeError, "program must be a path"),
    ],
)
def test_bad_arguments(no_open: Any, kwargs: dict[str, Any], exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        tcpevent.Tracer(**kwargs)
    no_open.tcpevent_open.assert_not_called()


def test_missing_program_is_file_not_found(no_open: Any, tmp_path: Path) -> None:
    missing = tmp_path / "nope.bpf.o"
    with pytest.raises(tcpevent.ProgramNotFoundError) as info:
        tcpevent.Tracer(program=missing)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, tcpevent.TracerError)
    assert info.value.errno == errno.ENOENT
    assert info.value.filename == str(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(tcpevent.InvalidProgramError, match="not a regular file") as info2:
        tcpevent.Tracer(program=tmp_path)
    assert isinstance(info2.value, ValueError)


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        (None, 0),
        (0, 0),
        (socket.AF_INET, 2),
        (2, 2),
        ("ipv4", 2),
        ("AF_INET", 2),
        (socket.AF_INET6, 10),
        (10, 10),
        ("IPv6", 10),
        ("inet6", 10),
    ],
)
def test_family_spellings(family: Any, expected: int) -> None:
    from tcpevent._options import parse_family

    assert parse_family(family) == expected


def test_valid_options_reach_the_core(mocker: Any) -> None:
    """Every validated option lands in struct tcpevent_options."""
    seen: dict[str, Any] = {}

    def fake_open(opts: Any, out: Any) -> int:
        seen.update(
            pids=sorted(opts.pids[i] for i in range(opts.n_pids)),
            ports=sorted(opts.ports[i] for i in range(opts.n_ports)),
            family=opts.family,
            queue_size=opts.queue_size,
            ring_size=opts.ring_size,
            max_sockets=opts.max_sockets,
            snapshot_interval_ms=opts.snapshot_interval_ms,
            program=opts.program,
        )
        _core.lib.tcpevent_last_error()  # harmless
        return -errno.EPERM

    fake = mocker.MagicMock(wraps=_core.lib)
    fake.tcpevent_open.side_effect = fake_open
    mocker.patch.object(tracer, "lib", fake)
    mocker.patch.object(tracer, "last_error", return_value="denied")
    with pytest.raises(tcpevent.TracerPermissionError):
        tcpevent.Tracer(
            pids=[5, 3, 5],
            ports=80,
            family="ipv6",
            queue_size=10,
            ring_size=1 << 16,
            max_sockets=100,
            snapshot_interval=0.25,
        )
    assert seen == {
        "pids": [3, 5],
        "ports": [80],
        "family": 10,
        "queue_size": 10,
        "ring_size": 1 << 16,
        "max_sockets": 100,
        "snapshot_interval_ms": 250,
        "program": ffi.NULL,
    }


# ---- errors ---------------------------------------------------------------------

EPERM_TEXT = (
    "permission denied: missing capability CAP_BPF and CAP_PERFMON (loading a tracing BPF "
    "program needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN); run it as root (sudo), or "
    "grant the capabilities: sudo setcap cap_bpf,cap_perfmon,cap_dac_read_search+ep <program>"
)


@pytest.mark.parametrize("code", [errno.EPERM, errno.EACCES])
def test_permission_error_mocked(mocker: Any, code: int) -> None:
    fake = mocker.MagicMock(wraps=_core.lib)
    fake.tcpevent_open.return_value = -code
    mocker.patch.object(tracer, "lib", fake)
    mocker.patch.object(tracer, "last_error", return_value=EPERM_TEXT)
    with pytest.raises(tcpevent.TracerPermissionError) as info:
        tcpevent.Tracer()
    err = info.value
    assert isinstance(err, PermissionError)
    assert isinstance(err, OSError)
    assert err.errno == code
    assert str(err) == EPERM_TEXT
    assert "CAP_BPF" in str(err) and "CAP_PERFMON" in str(err) and "sudo" in str(err)
    fake.tcpevent_open.assert_called_once()


def test_error_mapping() -> None:
    e = errors.error_from_code(-errno.ENOMEM, "")
    assert type(e) is tcpevent.TracerError
    assert e.errno == errno.ENOMEM
    assert "ENOMEM" in str(e) and "memory" in str(e).lower()  # never a bare number
    assert e.errno_name == "ENOMEM"
    assert isinstance(errors.error_from_code(-errno.ESHUTDOWN, "x"), tcpevent.TracerClosedError)
    bad = errors.error_from_code(-errno.EINVAL, "not BPF", program="/etc/hostname")
    assert isinstance(bad, tcpevent.InvalidProgramError) and isinstance(bad, ValueError)
    assert bad.filename == "/etc/hostname"
    assert isinstance(errors.error_from_code(-4003, "libbpf", program="/x"), tcpevent.ProgramError)
    gone = errors.error_from_code(-errno.ENOENT, "gone", program="/nonexistent/x.o")
    assert isinstance(gone, tcpevent.ProgramNotFoundError)
    assert isinstance(gone, FileNotFoundError)
    # Exceptions survive pickling (multiprocessing, logging handlers).
    again = pickle.loads(pickle.dumps(tcpevent.TracerPermissionError(1, EPERM_TEXT)))
    assert type(again) is tcpevent.TracerPermissionError and str(again) == EPERM_TEXT


# ---- TcpEvent ---------------------------------------------------------------------


def make_event(**changes: Any) -> tcpevent.TcpEvent:
    fields: dict[str, Any] = {
        "time_ns": 1628184562123456789,
        "pid": 1177932,
        "uid": 1000,
        "rx_bytes": 2988,
        "tx_bytes": 3301,
        "segs_out": 20,
        "segs_in": 18,
        "family": socket.AF_INET6,
        "sport": 58532,
        "dport": 22,
        "task": "ssh",
        "saddr": "2001:db8::1",
        "daddr": "2001:db8::2",
        "lifetime_ns": 5_000_000,
        "rtt_us": 120,
        "retrans": 1,
        "state": tcpevent.TcpState.FIN_WAIT1,
        "kind": "close",
        "direction": "outbound",
        "error": 0,
        "handshake_ns": 41_000,
        "accept_wait_ns": 0,
        "cgroup_id": 4242,
        "netns": 4026531840,
        "origin_pid": 1177900,
        "origin_uid": 1000,
        "origin_task": "bash",
        **dict.fromkeys(
            (
                "first_retrans_ns",
                "last_retrans_ns",
                "retrans_segs",
                "retrans_timeout",
                "retrans_loss",
                "retrans_fast",
                "retrans_probe",
                "retrans_syn",
                "resets_sent",
                "resets_received",
                "drops",
                "skipped",
                "reason",
                "segs",
            ),
            0,
        ),
        "cause": "none",
    }
    fields.update(changes)
    return tcpevent.TcpEvent(**fields)


def test_event_is_frozen_slotted_and_typed() -> None:
    ev = make_event()
    assert dataclasses.is_dataclass(ev)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.pid = 1  # type: ignore[misc]
    assert not hasattr(ev, "__dict__")
    names = [f.name for f in dataclasses.fields(tcpevent.TcpEvent)]
    assert names[:13] == [
        "time_ns",
        "pid",
        "uid",
        "rx_bytes",
        "tx_bytes",
        "segs_out",
        "segs_in",
        "family",
        "sport",
        "dport",
        "task",
        "saddr",
        "daddr",
    ]
    # The core's fields, and the one the tracer stores (its cgroup's path), last.
    assert set(names) == set(_core.EVENT_FIELDS) | set(STORED_FIELDS)
    assert names[-1] == "cgroup_path" and STORED_FIELDS == ("cgroup_path",)
    assert make_event().cgroup_path is None  # built without it
    assert all(f.type for f in dataclasses.fields(tcpevent.TcpEvent))
    assert hash(ev) == hash(make_event())
    assert pickle.loads(pickle.dumps(ev)) == ev


def test_event_time_and_dict() -> None:
    ev = make_event()
    assert ev.time == datetime(2021, 8, 5, 17, 29, 22, 123456, tzinfo=timezone.utc)
    assert ev.time.tzinfo is timezone.utc
    d = ev.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["family"] == "AF_INET6"
    assert d["kind"] == "close" and type(d["kind"]) is str
    assert d["state"] == "FIN_WAIT1"
    assert list(d) == [f.name for f in dataclasses.fields(ev)]
    assert make_event(family=socket.AF_INET).to_dict()["family"] == "AF_INET"
    assert ev.source == "2001:db8::1:58532" and ev.destination == "2001:db8::2:22"


def test_tcp_state() -> None:
    assert tcpevent.TcpState(7) is tcpevent.TcpState.CLOSE
    assert tcpevent.TcpState(0) is tcpevent.TcpState.UNKNOWN
    odd = tcpevent.TcpState(200)  # a state a future kernel may add
    assert odd == 200 and odd.name == "STATE_200"
    with pytest.raises(ValueError):
        tcpevent.TcpState(256)


def test_abi_round_trip() -> None:
    raw = abi.TcpEventT(
        EventTime=1628184562000000000,
        pid=1177932,
        UserId=1000,
        rx_b=2988,
        tx_b=3301,
        tcpi_segs_out=20,
        tcpi_segs_in=18,
        family=10,
        SPT=58532,
        DPT=22,
        task=b"ssh\xff-x",  # not UTF-8: still lossless
        SADDR=b"2001:aaa:fff:eee:ccc:a627:f45f:9c0c",
        DADDR=b"2601::1",
    )
    ev = tcpevent.TcpEvent.from_abi(raw)
    assert ev.pid == 1177932 and ev.uid == 1000 and ev.rx_bytes == 2988 and ev.tx_bytes == 3301
    assert ev.segs_out == 20 and ev.segs_in == 18 and ev.sport == 58532 and ev.dport == 22
    assert ev.family is socket.AF_INET6
    assert ev.saddr == "2001:aaa:fff:eee:ccc:a627:f45f:9c0c"
    assert ev.state is tcpevent.TcpState.UNKNOWN and ev.kind == "close"
    back = ev.to_abi()
    assert isinstance(back, abi.TcpEventT)
    assert bytes(back) == bytes(raw)
    assert ctypes.sizeof(back) == abi.EVENT_SIZE
    assert tcpevent.TcpEvent.from_abi(bytes(raw)) == ev


def test_to_abi_matches_the_core() -> None:
    """Our to_abi() and the core's tcpevent_event_to_abi() agree byte for byte."""
    lib = abi.load_library()
    lib.tcpevent_event_to_abi.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.tcpevent_event_to_abi.restype = None
    src = ffi.new("struct tcpevent_event *")
    src.time_ns, src.pid, src.uid = 123456789012, 42, 7
    src.rx_bytes, src.tx_bytes, src.segs_out, src.segs_in = 1, 2, 3, 4
    src.family, src.sport, src.dport, src.state = 2, 1234, 80, 7
    src.task, src.saddr, src.daddr = b"curl", b"127.0.0.1", b"10.1.2.3"
    out = abi.TcpEventT()
    lib.tcpevent_event_to_abi(int(ffi.cast("uintptr_t", src)), ctypes.addressof(out))
    (ev,) = events_from_buffer(src, 1)
    assert bytes(ev.to_abi()) == bytes(out)


# ---- the conversion of the core's array ----------------------------------------


def test_zero_event_is_the_cores_conversion_of_zeros() -> None:
    """ZERO_EVENT is built from the dataclass (event.py); it must be what
    the core's conversion makes of an all-zero struct tcpevent_event, field by
    field and type by type."""
    from tcpevent.event import ZERO_EVENT

    (converted,) = events_from_buffer(ffi.new("struct tcpevent_event[1]"), 1)
    assert converted == ZERO_EVENT
    for name in tcpevent.TcpEvent.__dataclass_fields__:
        ours, core = getattr(ZERO_EVENT, name), getattr(converted, name)
        assert (type(ours), ours) == (type(core), core), name
    assert ZERO_EVENT.state is tcpevent.TcpState.UNKNOWN
    assert (ZERO_EVENT.kind, ZERO_EVENT.direction) == ("close", "unknown")


def test_layout_matches_the_core() -> None:
    assert ffi.sizeof("struct tcpevent_event") == _core.EVENT_SIZE
    for name in _core.EVENT_FIELDS:
        assert ffi.offsetof("struct tcpevent_event", name) >= 0


def test_conversion_of_a_synthetic_buffer() -> None:
    n = 5
    buf = ffi.new("struct tcpevent_event[]", n)
    for i in range(n):
        e = buf[i]
        e.time_ns, e.lifetime_ns, e.rx_bytes, e.tx_bytes = 10**18 + i, 7, 2**64 - 1, i
        e.pid, e.uid, e.segs_out, e.segs_in = 2**32 - 1, 65534, 3, 4
        e.rtt_us, e.retrans = 99, 2
        e.family = 10 if i % 2 else 2
        e.sport, e.dport = 65535, 1 + i
        e.kind, e.state = i % 2, 1 + i
        e.task = b"x" * 15  # full length, NUL at the end
        e.saddr = b"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"  # 45 chars
        e.daddr = b"::1"
    # Stale bytes after a NUL must not leak into the text.
    ffi.memmove(ffi.addressof(buf[0], "daddr"), b"::1\x00garbage", 11)
    events = events_from_buffer(buf, n)
    assert len(events) == n
    for i, ev in enumerate(events):
        assert ev.time_ns == 10**18 + i and ev.lifetime_ns == 7
        assert ev.rx_bytes == 2**64 - 1 and ev.tx_bytes == i
        assert ev.pid == 2**32 - 1 and ev.uid == 65534
        assert (ev.segs_out, ev.segs_in, ev.rtt_us, ev.retrans) == (3, 4, 99, 2)
        assert ev.family is (socket.AF_INET6 if i % 2 else socket.AF_INET)
        assert (ev.sport, ev.dport) == (65535, 1 + i)
        assert ev.kind == ("snapshot" if i % 2 else "close")
        assert ev.state is tcpevent.TcpState(1 + i)
        assert ev.task == "x" * 15
        assert ev.saddr == "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
        assert ev.daddr == "::1"
        assert ev == dataclasses.replace(ev)  # a normal, comparable dataclass
    assert events_from_buffer(buf, 0) == []


def test_stats_fields_match_the_core() -> None:
    names = {f.name for f in dataclasses.fields(tcpevent.TracerStats)}
    assert names - {"buffered"} == set(_core.STATS_FIELDS)
    st = tcpevent.TracerStats(**dict.fromkeys(names, 1))
    assert st.dropped == 2
    assert st.to_dict()["received"] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        st.received = 3  # type: ignore[misc]


def test_public_names() -> None:
    for name in tcpevent.__all__:
        assert hasattr(tcpevent, name), name
    assert issubclass(tcpevent.TracerPermissionError, PermissionError)
    assert issubclass(tcpevent.TracerError, OSError)
    assert (Path(tcpevent.__file__).parent / "py.typed").exists()
