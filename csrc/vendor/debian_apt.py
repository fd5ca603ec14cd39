"""A private apt configuration for one Debian suite this machine does not use.

The build fetches libbpf's source package from one suite (``libbpf.py``);
the wheel tests' roots take the machine's mirror from here
(``tests/wheel/roots.py``). No use may touch the system's apt state: each
gets a directory of its own with its own sources list, lists and cache, no
dpkg status, and no lock of the system's apt. The mirror and its
key ring are this machine's own (its apt sources); only the suite is ours.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path


def debian_archive() -> tuple[str, str]:
    """(mirror URI, key ring) of the Debian archive this machine's apt uses."""
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        with contextlib.suppress(OSError):
            texts.append(path.read_text())
    default_ring = "/usr/share/keyrings/debian-archive-keyring.gpg"
    for text in texts:
        for stanza in re.split(r"\n\s*\n", text):  # deb822 (.sources)
            uris = re.search(r"^URIs:\s*(\S+)", stanza, flags=re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, flags=re.M)
            ring = re.search(r"^Signed-By:\s*(\S+)", stanza, flags=re.M)
            if (
                uris
                and suites
                and ring
                and "debian-archive-keyring" in ring.group(1)
                and not all(s.endswith("-security") for s in suites.group(1).split())
            ):
                return uris.group(1).rstrip("/"), ring.group(1)
        for m in re.finditer(r"^deb(?:-src)?\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)\s", text, flags=re.M):
            if "debian" in m.group(1) and not m.group(2).endswith("-security"):
                return m.group(1).rstrip("/"), default_ring
    raise RuntimeError("no Debian archive in /etc/apt/sources.list{,.d}")


def options(apt: Path, kind: str, suite: str) -> list[str]:
    """apt-get/apt-cache options for a configuration in ``apt`` whose one
    source is ``kind`` ("deb" or "deb-src") of ``suite``'s main."""
    for d in ("lists/partial", "archives/partial", "etc/sources.list.d", "etc/preferences.d"):
        (apt / d).mkdir(parents=True, exist_ok=True)
    mirror, ring = debian_archive()
    (apt / "etc/sources.list").write_text(f"{kind} [signed-by={ring}] {mirror} {suite} main\n")
    return [
        f"-oDir::Etc={apt / 'etc'}",
        f"-oDir::Etc::SourceList={apt / 'etc/sources.list'}",
        f"-oDir::Etc::SourceParts={apt / 'etc/sources.list.d'}",
        f"-oDir::Etc::Parts={apt / 'etc'}",
        f"-oDir::Etc::Preferences={apt / 'etc/preferences'}",
        f"-oDir::Etc::PreferencesParts={apt / 'etc/preferences.d'}",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt}",
        "-oDir::State::Status=/dev/null",
        # The files land in build/, which apt's sandbox user may not reach.
        *(["-oAPT::Sandbox::User=root"] if os.geteuid() == 0 else []),
        # Private lists: no lock of the system's apt is taken or needed.
        "-oDebug::NoLocking=1",
        "-qq",
    ]
