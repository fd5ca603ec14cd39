"""The legacy calls in a process that dropped its privileges: what a user
without CAP_BPF sees (the error, and a process that lives on)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

#: Loads the library while still root (argv[1]), becomes nobody, runs the
#: lines of ``{attach}`` (which print what they got), then prints the
#: thread's error, cleans up and prints "alive".
UNPRIVILEGED_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from tcpevent import abi

    lib = abi.load_library(sys.argv[1])   # loaded while still root
    os.setgroups([]); os.setgid(65534); os.setuid(65534)
    {attach}
    print("error=%s" % lib.tcpevent_last_error().decode())
    lib.cleanup()
    print("alive")
    """
)


def run_unprivileged(libpath: Path, *attach: str) -> subprocess.CompletedProcess[str]:
    """Run :data:`UNPRIVILEGED_SCRIPT` with the lines ``attach`` (Python
    using ``lib``); its output, as text."""
    script = UNPRIVILEGED_SCRIPT.replace("{attach}", "\n".join(attach))
    return subprocess.run(
        [sys.executable, "-c", script, str(libpath)],
        capture_output=True,
        text=True,
        timeout=60,
    )
