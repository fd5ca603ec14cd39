"""podman without an image registry: a root filesystem of ``busybox-static``
(its binary and applet links), for ``podman run --rootfs``."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BUSYBOX = "/bin/busybox"  # Debian's busybox-static
#: What the container tests run in their busybox root.
APPLETS = ("sh", "nc", "cat", "echo", "sleep", "usleep")


@contextmanager
def busybox_rootfs(root: Path, applets: tuple[str, ...] = APPLETS) -> Iterator[Path]:
    """A busybox root filesystem at ``root`` with these applets linked,
    removed again on the way out."""
    try:
        for d in ("bin", "dev", "proc", "sys", "tmp", "etc"):
            (root / d).mkdir(parents=True)
        shutil.copy2(BUSYBOX, root / "bin" / "busybox")
        for applet in applets:
            (root / "bin" / applet).symlink_to("busybox")
        yield root
    finally:
        if root.exists():
            shutil.rmtree(root)


def podman(
    *argv: str, check: bool = True, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``podman ARGV...``, its output captured; ``check``: a failure raises
    an AssertionError with podman's own message."""
    done = subprocess.run(["podman", *argv], capture_output=True, text=True, timeout=timeout)
    assert not check or done.returncode == 0, f"podman {' '.join(argv)}: {done.stderr}"
    return done


def remove(name: str) -> None:
    """``podman rm -f`` the container, if there is one."""
    podman("rm", "-f", "-t", "0", name, check=False)
