"""Inside a test VM (tests/kernels/run.py), as root: the kernel's facts, then pytest.

    guest.py OUTDIR

Runs pytest with the arguments listed in OUTDIR/pytest-args.json. Writes
OUTDIR/build.txt and OUTDIR/udp-build.txt (which build of the TCP and
of the UDP BPF program the libraries loaded here: "default" or
"portable", read from the loaded program's own instructions) and
OUTDIR/junit.xml; exits with pytest's code.
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
    """The build of the TCP program the library loads here, as it says."""
    with tcpevent.Tracer(ports=[1]) as tracer:
        return tracer.build


def loaded_udp_build() -> str:
    """The build of the UDP program libudpEvent.so loads here ("refused"
    if none: the UDP tests say why, the TCP ones still run)."""
    try:
        tracer = tcpevent.UdpTracer(ports=[1])
    except OSError as e:
        print(f"guest: the UDP library loads no build: {e}", flush=True)
        return "refused"
    with tracer:
        return bpfutil.loaded_build(os.getpid(), "udpevent_sock_create", "bpf_sk_storage_get")


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
    udp_build = loaded_udp_build()
    print(f"guest: the UDP library loads the {udp_build} build", flush=True)
    (outdir / "udp-build.txt").write_text(udp_build + "\n")
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
