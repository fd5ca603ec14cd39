"""The sdist: everything a build needs, offline and without clang.

Besides what setuptools finds by itself (the Python package, setup.py,
pyproject.toml, README.md), an sdist carries:

- ``csrc/`` whole (the library's C sources and headers, the BPF program's
  sources, this folder), ``docs/`` and ``examples/``;
- ``csrc/vendor/<libbpf ORIG>``: the pinned libbpf's verified tarball, so
  that building the sdist fetches nothing (``libbpf.py`` looks there first);
- ``csrc/bpf/prebuilt/*.bpf.o``: the BPF objects compiled from exactly
  these sources when the sdist was made. BPF bytecode does not depend on
  the machine that compiles it, and the BPF program needs a newer clang
  than some systems the sdist is built on have (Debian 11's clang 11), so
  an sdist's build embeds these and compiles no BPF code.

Nothing of this is written into the checkout: the extra files go straight
into the release tree.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import libbpf
from setuptools.command.sdist import sdist

#: Folders shipped whole (build products and caches excepted).
TREES = ("csrc", "docs", "examples")
SKIP_SUFFIXES = (".o", ".so", ".pyc", ".tar.gz")


def command(root: Path, bpf_objects: Callable[[Path], dict[str, Path]]) -> type[sdist]:
    """An sdist command for the tree at ``root``; ``bpf_objects(tmp)`` compiles
    the BPF program (setup.py's, so that there is one way to compile it)."""

    class Sdist(sdist):
        # setuptools takes its file list from egg_info's manifest, not from
        # this command: the extra files are copied into the release tree.
        def make_release_tree(self, base_dir: str, files: list[str]) -> None:
            super().make_release_tree(base_dir, files)
            base = Path(base_dir)
            for tree in TREES:
                for path in sorted((root / tree).rglob("*")):
                    rel = path.relative_to(root)
                    if (
                        path.is_file()
                        and not path.name.endswith(SKIP_SUFFIXES)
                        and "__pycache__" not in rel.parts
                        and "prebuilt" not in rel.parts
                    ):
                        (base / rel).parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(path, base / rel)
            shutil.copy2(libbpf.tarball(root), base / "csrc" / "vendor" / libbpf.ORIG)
            prebuilt = base / "csrc" / "bpf" / "prebuilt"
            prebuilt.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                for obj in bpf_objects(Path(tmp)).values():
                    shutil.copy2(obj, prebuilt / obj.name)

    return Sdist
