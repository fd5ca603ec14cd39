#!/usr/bin/env python3
"""``make test-wheel``: the one wheel, installed with pip on Debian 11, 12, 13.

For each root of ``roots.TEST_ROOTS`` (Debian 11 with Python 3.9, 12 with
3.11, 13 with 3.13; debootstrap's minbase with Python, venv and gcc: no
clang, no libbpf, no libelf), made once and cached (``roots.py``): a fresh
venv of the root's own Python, ``pip install`` of dist/'s wheel and
prometheus_client, then ``checks.py`` on the host's kernel. Then the same
with the sdist, built by pip in the Debian 11 build root (gcc, libelf-dev,
zlib1g-dev; no libbpf-dev, no clang) with libbpf's fetch forbidden
(TCPEVENT_LIBBPF_OFFLINE=1: the sdist must carry it).

One line per root, then a total; non-zero exit if any root failed.

    python3 tests/wheel/run.py [--root bullseye] [--no-sdist]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roots

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
DIST = ROOT / "dist"
INNER = Path("/tmp/tcpevent-test")


def stage(path: Path, package: Path) -> None:
    """What the checks need, copied into the root's /tmp/tcpevent-test."""
    work = path / str(INNER).lstrip("/")
    shutil.rmtree(work, ignore_errors=True)
    (work / "run").mkdir(parents=True)  # the checks' cwd: no tcpevent/ in it
    (work / "support").mkdir()
    (work / "examples" / "c").mkdir(parents=True)
    (work / "examples" / "python").mkdir()
    shutil.copy2(package, work / package.name)
    shutil.copy2(HERE / "checks.py", work / "checks.py")
    for name in ("liveness.py", "netutil.py", "procutil.py"):
        shutil.copy2(ROOT / "tests" / "support" / name, work / "support" / name)
    shutil.copy2(ROOT / "examples" / "c" / "monitor.c", work / "examples" / "c")
    shutil.copy2(ROOT / "examples" / "python" / "ctypes_client.py", work / "examples" / "python")


def run_root(root: roots.Root, package: Path, mode: str) -> tuple[bool, str]:
    path = roots.ensure(root)
    stage(path, package)
    venv = INNER / "venv"
    env = {"PATH": f"{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    if mode == "sdist":
        env["TCPEVENT_LIBBPF_OFFLINE"] = "1"
    start = time.monotonic()
    with roots.chroot(path):
        roots.run_in(path, ["python3", "-m", "venv", str(venv)])
        # The root's own pip (Debian 11's is 20.3): as a user there has it.
        roots.run_in(
            path,
            [f"{venv}/bin/pip", "install", "-q", str(INNER / package.name), "prometheus_client"],
            env=env,
        )
        done = subprocess.run(
            [
                *("chroot", str(path), "/usr/bin/env", "-i", f"PATH={env['PATH']}"),
                *("HOME=/root", "LANG=C.UTF-8", "/bin/sh", "-c"),
                f"cd {INNER}/run && exec {venv}/bin/python -u {INNER}/checks.py "
                f"{INNER}/examples {INNER}/support {mode}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
    print(done.stdout, flush=True)
    lines = done.stdout.strip().splitlines()
    summary = lines[-1] if lines else "no output"
    ok = done.returncode == 0 and summary.endswith(" 0 failed")
    return ok, f"{root.name} ({root.suite}, {mode}): {summary} in {time.monotonic() - start:.0f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", action="append", help="only these roots (by name)")
    parser.add_argument("--no-sdist", action="store_true", help="the wheel only")
    args = parser.parse_args()
    wheels = sorted(DIST.glob("tcpevent-*-cp39-abi3-manylinux_*.whl"))
    sdists = sorted(DIST.glob("tcpevent-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"dist/ must hold one wheel and one sdist (`make wheel`): {wheels + sdists}")
        return 1
    start = time.monotonic()
    plan = [(r, wheels[0], "wheel") for r in roots.TEST_ROOTS]
    if not args.no_sdist:
        plan.append((roots.BUILD, sdists[0], "sdist"))
    plan = [p for p in plan if not args.root or p[0].name in args.root]
    results = []
    for root, package, mode in plan:
        print(f"== {root.name}: {package.name}", flush=True)
        try:
            results.append(run_root(root, package, mode))
        except (subprocess.SubprocessError, OSError, RuntimeError) as exc:
            results.append((False, f"{root.name} ({mode}): FAILED: {exc}"))
    print()
    for ok, line in results:
        print(("ok   " if ok else "FAIL ") + line)
    good = sum(ok for ok, _ in results)
    print(f"{len(results)} roots in {time.monotonic() - start:.0f} s")
    print(f"test-wheel: {good} passed, {len(results) - good} failed")
    return 0 if good == len(results) and results else 1


if __name__ == "__main__":
    sys.exit(main())
