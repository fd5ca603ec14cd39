#!/usr/bin/env python3
"""The real-kernel tests on other kernels than the host's (``make test-kernels``).

Each kernel of KERNELS (Debian packages with BTF) boots in a virtual machine
with virtme-ng: the host's own filesystem as its root (read-only 9p, with
writable overlays; the checkout is overlaid too, so the guest may compile
the tests' helpers without touching the host's tree), both CPUs, and
enough memory. Inside, as root with TCPEVENT_REQUIRE_BPF=1,
tests/kernels/guest.py reports which build of the BPF program the library
loads there and runs the per-kernel subset of the suite against the tree
already built on the host: the same libtcpEvent.so, whose default build
needs Linux 6.2 and whose portable build the library falls back to before.

    python3 tests/kernels/run.py install          # qemu's kernels (apt-get)
    python3 tests/kernels/run.py [--kernel 6.1] [--jobs N] [pytest args...]

Where the CPU is emulated, each VM runs on one host thread (below), so as
many VMs run at once as the host has CPUs (--jobs); their output lines
begin with their kernel's name.

Results land in build/kernels/<release>/ (the pytest log and its JUnit XML).
One line per kernel, then a total; the exit code is non-zero if any kernel
failed (a test failed, or the VM did not boot or finish).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "build" / "kernels"
sys.path.insert(0, str(ROOT / "csrc" / "vendor"))
import debian_apt  # noqa: E402

#: The per-kernel subset. Left out for time (an emulated CPU is an order of
#: magnitude slower): the soak and overload tests, the hostile custom
#: objects, packaging and the pure-format tests. Not yet:
#: test_connections.py and test_sockdiag_c.py assert 6.18's whole struct
#: tcp_info (6.1's is shorter: its newer fields are absent, and reported
#: so), test_snapshots.py gives a child interpreter 3 s to start and load
#: (more on an emulated CPU).
#:
#: Run on every kernel: what a kernel changes most. The seed client, the
#: ctypes client, the ABI, the privileges, custom objects against each
#: build the kernel loads, each socket's cgroup and network namespace, the
#: UDP tracer (its API, its counts against the kernel's own, its C client)
#: and the retransmit, reset and drop events against the kernel's counters
#: (each kernel's differences read from its BTF).
ON_EVERY_KERNEL = [
    "tests/test_monitor_example.py",
    "tests/test_ctypes_client.py",
    "tests/test_api_validation.py",
    "tests/test_abi_layout.py",
    "tests/test_privileges.py",
    "tests/test_custom_program.py",
    "tests/test_containers.py",
    "tests/test_udp_api.py",
    "tests/test_udp_truth.py",
    "tests/test_udp_monitor_example.py",
    "tests/test_health.py",
]
#: The rest is split between 6.1 (and 5.10) and 6.12, for CI's hour (each
#: half ran on both kernels until 2026-12-07; the 6.1 VM alone then took 26
#: minutes): the accounting (every close counted, once), the accept() hooks, attribution,
#: the owner in every server model (the census's origins on the portable
#: build) and the legacy calls on 6.1...
ON_6_1_ONLY = [
    "tests/test_api_async.py",
    "tests/test_api_process.py",
    "tests/test_capture_smoke.py",
    "tests/test_churn.py",
    "tests/test_unseen_close.py",
    "tests/test_accept_hooks.py",
    "tests/test_attribution.py",
    "tests/test_owner_models.py",
    "tests/test_legacy_calls.py",
]
#: ...the Python API's events and draining, the lifecycle (handshake,
#: accept queue, errors), setupBPF() and the CLI (its events and its live
#: connections) on 6.12.
ON_6_12_ONLY = [
    "tests/test_dequeue_drain.py",
    "tests/test_api_events.py",
    "tests/test_lifecycle.py",
    "tests/test_setupbpf.py",
    "tests/test_cli.py",
    "tests/test_cli_connections.py",
]
#: All of it: what a kernel runs without its own list.
SUBSET = ON_EVERY_KERNEL + ON_6_1_ONLY + ON_6_12_ONLY


@dataclass(frozen=True)
class Kernel:
    name: str
    package: str  # regex of the package names, newest chosen at run time
    vmlinuz: str  # glob of the installed image under /boot
    #: Debian suite of the package where it is not one this machine's apt
    #: sources have: fetched through a private apt configuration
    #: (debian_apt.py) into build/kernels/apt-<suite>/, then installed with
    #: the system's apt (which resolves its few dependencies).
    suite: str | None = None
    #: The tests to run there, if not all of SUBSET (for time).
    tests: tuple[str, ...] = ()


KERNELS = [
    # Debian 11's kernel: the portable build, without the sweep (5.13), the
    # kernel's count of skipped programs (5.12) and drop events (5.17). The
    # same list as 6.1, and the census of docs/reliability.md with a held
    # reset told at its release where no sweep tells it. It runs first,
    # beside 6.1; 6.12 then takes the place of the first to end.
    Kernel(
        "5.10",
        r"^linux-image-5\.10\.0-[0-9]+-amd64-unsigned$",
        "vmlinuz-5.10.0-*-amd64",
        suite="bullseye",
        tests=(
            *ON_EVERY_KERNEL,
            *ON_6_1_ONLY,
            "tests/test_unseen_birth.py::test_unseen_births_are_counted_at_release",
            "tests/test_unseen_birth.py::"
            "test_a_passive_close_told_before_its_release_is_not_counted",
        ),
    ),
    # Debian 12's default kernel: before 6.2, the portable build.
    Kernel(
        "6.1",
        r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$",
        "vmlinuz-6.1.0-*-amd64",
        tests=tuple(ON_EVERY_KERNEL + ON_6_1_ONLY),
    ),
    # Debian 12's backported LTS kernel: the default build.
    Kernel(
        "6.12",
        r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$",
        "vmlinuz-6.12.*+deb12-amd64",
        tests=tuple(ON_EVERY_KERNEL + ON_6_12_ONLY),
    ),
]

#: Left out inside the VM, each for a reason of the VM, not of the tracer
#: (test id -> why). Speeds are not asserted by any test (make bench
#: measures them), so an emulated CPU's slowness excludes nothing.
EXCLUDED: dict[str, str] = {}

MEMORY = "4G"
CPUS = 2
#: A VM that has not finished by then failed (generous: each kernel's list
#: takes 10 to 25 minutes on an emulated CPU with another VM beside it;
#: other work may share the host).
VM_TIMEOUT = 45 * 60
#: The guest's first line comes half a minute to two minutes after the boot
#: starts (5.10 loads more modules; two VMs boot at once).
BOOT_TIMEOUT = 6 * 60
#: A line of the guest kernel's console: "[   12.345678] ...".
KERNEL_LOG = re.compile(r"^\s*\[\s*\d+\.\d+\] ")


def apt_names(pattern: str, options: list[str]) -> list[str]:
    """Package names matching ``pattern``, oldest to newest."""
    out = subprocess.run(
        ["apt-cache", *options, "search", "--names-only", pattern],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = [line.split(" - ", 1)[0] for line in out.splitlines() if line.strip()]
    return sorted(names, key=version_key)


def version_key(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]


def install() -> int:
    """Install the newest package of each kernel that is not installed yet."""
    # INITRD=No: no initramfs of their own (virtme-ng makes its own).
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "INITRD": "No"}
    apt = ["apt-get", "-o", "DPkg::Lock::Timeout=600"]
    subprocess.run([*apt, "update", "-qq"], check=True, env=env)
    wanted = []
    for kernel in KERNELS:
        options = []
        if kernel.suite:
            private = RESULTS / f"apt-{kernel.suite}"
            options = debian_apt.options(private, "deb", kernel.suite)
            subprocess.run(["apt-get", *options, "update"], check=True)
        names = apt_names(kernel.package, options)
        if not names:
            print(f"no package matches {kernel.package} for Linux {kernel.name}", file=sys.stderr)
            return 1
        status = subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", names[-1]], capture_output=True, text=True
        ).stdout
        if "ok installed" in status:
            continue
        if kernel.suite:
            subprocess.run(["apt-get", *options, "download", names[-1]], check=True, cwd=private)
            (deb,) = private.glob(f"{names[-1]}_*.deb")
            wanted.append(str(deb))
        else:
            wanted.append(names[-1])
    if wanted:
        print("installing:", " ".join(wanted), flush=True)
        subprocess.run(
            [*apt, "install", "-y", "-qq", "--no-install-recommends", *wanted],
            check=True,
            env=env,
        )
    return 0


def installed_image(kernel: Kernel) -> Path | None:
    """The newest installed image of ``kernel`` whose modules are there too."""
    images = [
        p
        for p in Path("/boot").glob(kernel.vmlinuz)
        if (Path("/lib/modules") / release_of(p)).is_dir()
    ]
    return max(images, key=lambda p: version_key(p.name), default=None)


def release_of(image: Path) -> str:
    return image.name.removeprefix("vmlinuz-")


def accel() -> str:
    """How qemu runs the guest: "kvm", or "tcg" (emulated).

    KVM where /dev/kvm works and is a full hypervisor. A host that is itself
    a guest may offer KVM through PVM (the kvm_pvm module), which boots
    only kernels built as PVM guests, not distribution kernels: there, and
    without /dev/kvm, the CPU is emulated. TCPEVENT_VM_ACCEL overrides.
    """
    forced = os.environ.get("TCPEVENT_VM_ACCEL")
    if forced:
        return forced
    if Path("/sys/module/kvm_pvm").exists() or not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    return "kvm"


@dataclass
class Result:
    kernel: str
    release: str
    build: str = "?"
    udp_build: str = "?"
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    problem: str = ""  # the VM did not boot, or did not finish
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problem and not self.failed and not self.errors and self.passed > 0

    def line(self) -> str:
        status = "ok" if self.ok else "FAILED"
        text = (
            f"Linux {self.release} ({self.build} build, UDP {self.udp_build}): "
            f"{self.passed} passed, "
            f"{self.failed} failed, {self.errors} errors, {self.skipped} skipped "
            f"in {self.seconds:.0f} s: {status}"
        )
        return text + (f" ({self.problem})" if self.problem else "")


def read_junit(path: Path, result: Result) -> None:
    suites = ET.parse(path).getroot()
    for suite in suites.iter("testsuite"):
        tests = int(suite.get("tests", 0))
        result.failed += int(suite.get("failures", 0))
        result.errors += int(suite.get("errors", 0))
        result.skipped += int(suite.get("skipped", 0))
        result.passed += (
            tests
            - int(suite.get("failures", 0))
            - int(suite.get("errors", 0))
            - int(suite.get("skipped", 0))
        )


def vng() -> str:
    """virtme-ng's command, installed beside this interpreter by pip."""
    beside = Path(sys.executable).parent / "vng"
    return str(beside) if beside.exists() else shutil.which("vng") or "vng"


def vng_command(image: Path, outdir: Path) -> list[str]:
    python = Path(sys.executable)
    env = {
        # The guest's PATH is the distribution's: put this interpreter first.
        "PATH": f"{python.parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "PYTHONPATH": str(ROOT),
        "TCPEVENT_REQUIRE_BPF": "1",
        "PYTHONUNBUFFERED": "1",  # the console shows progress as it happens
        # The kernel is the tests' own: they may change its global settings.
        "TCPEVENT_TEST_VM": "1",
    }
    inner = " ".join(
        [
            *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            shlex.quote(str(python)),
            shlex.quote(str(ROOT / "tests" / "kernels" / "guest.py")),
            shlex.quote(str(outdir)),
        ]
    )
    cmd = [
        vng(),
        "--run",
        str(image),
        "--memory",
        MEMORY,
        "--cpus",
        str(CPUS),
        # The checkout is writable in the guest, its writes stay there.
        f"--overlay-rwdir={ROOT}",
        # Where the results reach the host.
        f"--rwdir={outdir}",
        "--cwd",
        str(ROOT),
    ]
    if accel() == "tcg":
        # One host thread for all vCPUs: qemu's multi-threaded TCG can leave
        # a stale int3 behind when the guest patches a static key (a syscall
        # tracepoint attached or detached while both vCPUs make system
        # calls): an "Oops: int3" in syscall_exit_to_user_mode_prepare, seen
        # on 6.12, and guest hangs on 5.10 and 6.1. Single-threaded, none.
        cmd += ["--disable-kvm", "--qemu-opts=-accel tcg,thread=single"]
    # The kernel's console too: where a guest hangs, it says where.
    cmd.append("--verbose")
    return [*cmd, "--exec", inner]


_stdout = threading.Lock()


def say(line: str) -> None:
    """One whole line to stdout (VMs running at once share it)."""
    with _stdout:
        sys.stdout.write(line)
        sys.stdout.flush()


def default_jobs() -> int:
    """VMs at once: one per host CPU where each runs on one host thread
    (emulated), else as many as their vCPUs fit."""
    per_vm = 1 if accel() == "tcg" else CPUS
    return max(1, (os.cpu_count() or 1) // per_vm)


def run_kernel(kernel: Kernel, pytest_args: list[str]) -> Result:
    image = installed_image(kernel)
    if image is None:
        result = Result(kernel.name, kernel.name)
        result.problem = f"no /boot/{kernel.vmlinuz} installed: run `{sys.argv[0]} install`"
        return result
    release = release_of(image)
    result = Result(kernel.name, release)
    outdir = RESULTS / release
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    args = pytest_args or list(kernel.tests) or SUBSET
    deselect = [] if pytest_args else [f"--deselect={t}" for t in EXCLUDED]
    # The guest's command travels on the kernel's command line, which is
    # short (2 KiB): pytest's arguments go through the shared directory.
    (outdir / "pytest-args.json").write_text(json.dumps([*args, *deselect]))
    cmd = vng_command(image, outdir)
    say(f"== Linux {release}: booting ({accel()})\n")
    start = time.monotonic()
    log = outdir / "console.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=os.setpgrp,  # vng and its qemu: one group to end
        )
        assert proc.stdout is not None
        # A guest that hangs prints nothing more: the timers end it.
        timer = threading.Timer(VM_TIMEOUT, os.killpg, (proc.pid, signal.SIGKILL))
        booting = threading.Timer(BOOT_TIMEOUT, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        booting.start()
        booted = False
        try:
            for raw in proc.stdout:
                line = raw.decode(errors="replace")
                if line.startswith("guest: "):
                    booting.cancel()
                    booted = True
                f.write(line)
                if not KERNEL_LOG.match(line):  # those: console.log only
                    say(f"[{kernel.name}] {line}")
            rc: int | None = proc.wait()
        finally:
            timer.cancel()
            booting.cancel()
            if proc.poll() is None:  # interrupted: the VM goes too
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    result.seconds = time.monotonic() - start
    if not booted:
        result.problem = f"the guest never came up (at most {BOOT_TIMEOUT} s; see {log})"
        rc = None
    elif result.seconds >= VM_TIMEOUT:
        rc = None
        result.problem = f"the VM did not finish within {VM_TIMEOUT} s"
    build = outdir / "build.txt"
    if build.exists():
        result.build = build.read_text().strip()
    udp_build = outdir / "udp-build.txt"
    if udp_build.exists():
        result.udp_build = udp_build.read_text().strip()
    junit = outdir / "junit.xml"
    if junit.exists():
        read_junit(junit, result)
    elif not result.problem:
        result.problem = f"no test ran (vng exited {rc}; see {log})"
    if rc not in (0, None) and result.ok:
        result.problem = f"the guest exited {rc}"
    return result


def main() -> int:
    if sys.argv[1:] == ["install"]:
        return install()
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Other arguments go to pytest."
    )
    parser.add_argument(
        "--kernel", action="append", choices=[k.name for k in KERNELS], help="only these"
    )
    parser.add_argument(
        "--jobs", type=int, default=default_jobs(), help="VMs at once (default: %(default)s)"
    )
    args, pytest_args = parser.parse_known_args()
    if not list((ROOT / "tcpevent").glob("_native*.so")):
        print("the tree is not built: `make build` (or setup.py build_ext --inplace) first")
        return 1
    for tool in (vng(), "qemu-system-x86_64", "busybox"):
        if not shutil.which(tool):
            print(f"{tool} is missing: `make test-kernels` installs it", file=sys.stderr)
            return 1
    chosen = [k for k in KERNELS if not args.kernel or k.name in args.kernel]
    # In KERNELS' order: the next starts when one ends.
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(lambda k: run_kernel(k, pytest_args), chosen))
    print()
    for r in results:
        print(r.line())
    passed = sum(r.passed for r in results)
    failed = sum(r.failed + r.errors for r in results)
    skipped = sum(r.skipped for r in results)
    print(f"kernels: {passed} passed, {failed} failed, {skipped} skipped")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
