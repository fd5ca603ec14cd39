"""Custom BPF objects that are wrong, hostile or corrupt: each gives a clear
error (or sane events), nothing stays attached, and the host never crashes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import bpfutil
import pytest
from nativeutil import NativeTracer
from netutil import connection

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def open_error(path: Path) -> str:
    """Opening must fail, leave nothing behind, and say why."""
    before = bpfutil.held_by(os.getpid())
    with pytest.raises(OSError) as excinfo:
        NativeTracer(program=str(path))
    assert bpfutil.held_by(os.getpid()) == before
    message = str(excinfo.value)
    assert message.replace("\n", " ").replace("\t", " ").isprintable()
    return message


@pytest.mark.bpf
def test_object_without_ring_buffer(compile_bpf) -> None:
    message = open_error(compile_bpf(HERE / "support" / "bpf" / "no_ringbuf.bpf.c"))
    assert 'no BPF_MAP_TYPE_RINGBUF map named "events"' in message


@pytest.mark.bpf
def test_object_rejected_by_the_verifier(compile_bpf) -> None:
    message = open_error(compile_bpf(HERE / "support" / "bpf" / "rejected.bpf.c"))
    assert "refused" in message or "failed" in message
    assert "map_value_or_null" in message  # the verifier's own words


@pytest.mark.bpf
def test_object_built_for_another_record_layout(compile_bpf) -> None:
    message = open_error(compile_bpf(HERE / "support" / "bpf" / "other_layout.bpf.c"))
    assert "120 bytes" in message and "reads 232" in message
    assert "112" in message and "144" in message  # the earlier layouts


@pytest.mark.bpf
def test_object_with_a_huge_map_is_refused_before_load(compile_bpf) -> None:
    """Refused before the kernel tries to allocate it (it would exhaust the
    host's memory: the corrupted-objects test once did, through a bit
    flipped in pid_filter's max_entries)."""
    message = open_error(compile_bpf(HERE / "support" / "bpf" / "huge_map.bpf.c"))
    assert 'map "pid_filter" asks for 1073741824 entries' in message
    assert "over the 1024 MiB allowed" in message


@pytest.mark.bpf
def test_hostile_records_never_become_garbage(compile_bpf) -> None:
    program = compile_bpf(HERE / "support" / "bpf" / "hostile_records.bpf.c")
    with NativeTracer(program=str(program)) as tracer:
        conn = connection(client_sends=5, server_sends=5)
        pair = {conn.client.port, conn.server.port}

        def ours(evs: list[dict]) -> list[dict]:
            return [e for e in evs if {e["sport"], e["dport"]} == pair]

        # Two sockets close, each emitting 2 good and 3 bad records.
        events = ours(tracer.collect(lambda evs: len(ours(evs)) >= 4, timeout=5))
        stats = tracer.stats()
        warning = tracer.warnings()
    assert "64 bytes" in warning and "232" in warning
    assert "144" in warning and "112" in warning
    assert len(events) == 4, events
    for e in events:
        assert e["family"] in (2, 10)
    v4 = [e for e in events if e["family"] == 2]
    v6 = [e for e in events if e["family"] == 10]
    assert {e["task"] for e in v4} == {"A" * 15}  # cut to 15, terminated
    assert {e["saddr"] for e in v4} == {"65.65.65.65"}
    assert {e["saddr"] for e in v6} == {"fefe:fefe:fefe:fefe:fefe:fefe:fefe:fefe"}
    assert {e["task"] for e in v6} == {"\ufffd" * 15}  # 15 bytes 0xfe, terminated
    assert stats["malformed"] >= 6  # family 7, the 64-byte ones and kind 0x41
    assert stats["received"] == (
        stats["delivered"] + stats["queued"] + stats["malformed"] + stats["filtered"]
    )


MUTATE_SCRIPT = textwrap.dedent(
    """
    import json, os, random, sys
    sys.path.insert(0, sys.argv[1])
    import bpfutil
    from nativeutil import NativeTracer

    src = open(sys.argv[2], "rb").read()
    rng = random.Random(int(sys.argv[3]))
    results = []
    for i in range(int(sys.argv[4])):
        data = bytearray(src)
        kind = rng.choice(["truncate", "flip", "scribble", "zero"])
        if kind == "truncate":
            data = data[: rng.randrange(len(data))]
        elif kind == "flip":
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == "scribble":
            for _ in range(20):
                data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            at = rng.randrange(len(data))
            data[at : at + 64] = bytes(len(data[at : at + 64]))
        path = os.path.join(sys.argv[5], f"m{i}.o")
        with open(path, "wb") as f:
            f.write(data)
        before = bpfutil.held_by(os.getpid())
        try:
            with NativeTracer(program=path):
                outcome = "loaded"
        except OSError as e:
            outcome = str(e)
        leaked = bpfutil.held_by(os.getpid()) != before
        results.append({"kind": kind, "outcome": outcome, "leaked": leaked})
    print(json.dumps(results))
    """
)


@pytest.mark.bpf
def test_hundreds_of_corrupted_objects(compile_bpf, tmp_path) -> None:
    valid = compile_bpf(ROOT / "csrc" / "bpf" / "tcp.bpf.c")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            MUTATE_SCRIPT,
            str(HERE / "support"),
            str(valid),
            "7",
            "300",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # the host never crashed
    results = json.loads(proc.stdout)
    assert len(results) == 300
    assert not [r for r in results if r["leaked"]]
    failures = [r for r in results if r["outcome"] != "loaded"]
    assert len(failures) > 150  # most mutations break the object
    for r in failures:
        assert (
            r["outcome"].replace("\n", " ").replace("\t", " ").isprintable()
            and len(r["outcome"]) > 20
        ), r
