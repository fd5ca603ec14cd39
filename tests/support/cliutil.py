"""The ``tcpevent`` command run by a test, as a user would."""

from __future__ import annotations

import subprocess
import sys

import bpfutil
from liveness import ATTACH_TIMEOUT
from netutil import wait_until


def start(*args: str) -> subprocess.Popen[str]:
    """``python -m tcpevent ARGS``, returned once its tracer is attached."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpevent", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ok = wait_until(
        lambda: proc.poll() is not None or bpfutil.attached(proc.pid), timeout=ATTACH_TIMEOUT
    )
    if not ok or proc.poll() is not None:
        proc.kill()
        raise AssertionError(f"tcpevent {' '.join(args)} did not attach: {proc.communicate()}")
    return proc
