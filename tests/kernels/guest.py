"""Inside a test VM (tests/kernels/run.py), as root: the kernel's facts, then pytest.

    guest.py OUTDIR

Runs pytest with the arguments listed in OUTDIR/pytest-args.json. Writes
OUTDIR/build.txt (which build of the BPF program the library loaded
here: "default" or "portable", read from the loaded program's own
instructions) and OUTDIR/junit.xml; exits with pytest's code.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "support"))

import bpfutil  # noqa: E402

import tcpevent  # noqa: E402


def loaded_build() -> str:
    """The portable build reads the kernel with bpf_probe_read_kernel(); the
    default one with bpf_rdonly_cast(), which the verifier turns into no
    call at all, and plain loads (csrc/bpf/kernel_read.h)."""
    with tcpevent.Tracer(ports=[1]):
        held = bpfutil.held_by(os.getpid())["prog_id"]
        (main,) = (i for i in held if bpfutil.name_of("prog", i) == "tcpevent_state")
        text = subprocess.run(
            ["bpftool", "prog", "dump", "xlated", "id", str(main)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    if "call bpf_ringbuf_reserve" not in text:
        raise RuntimeError(f"program {main} is not the built-in one:\n{text}")
    return "portable" if "call bpf_probe_read_kernel" in text else "default"


def main() -> int:
    outdir = Path(sys.argv[1])
    print(f"guest: Linux {platform.release()}, {os.cpu_count()} CPUs", flush=True)
    print(f"guest: BTF {'present' if Path('/sys/kernel/btf/vmlinux').exists() else 'MISSING'}")
    # Debian's kernels add kernel.perf_event_paranoid=3 (their default), at
    # which only CAP_SYS_ADMIN may open a perf event, so the accept() hooks
    # (classic tracepoints) need it where upstream needs CAP_PERFMON. The
    # library says so when it happens (docs/kernels.md); the privilege
    # tests pin upstream's capability sets, so the guest uses upstream's
    # default, 2.
    Path("/proc/sys/kernel/perf_event_paranoid").write_text("2\n")
    build = loaded_build()
    print(f"guest: the library loads the {build} build", flush=True)
    (outdir / "build.txt").write_text(build + "\n")
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-ra",
        "-p",
        "no:cacheprovider",
        f"--junitxml={outdir / 'junit.xml'}",
        *json.loads((outdir / "pytest-args.json").read_text()),
    ]
    return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
