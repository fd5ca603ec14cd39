"""The library formats addresses itself (for speed); it must agree with
inet_ntop() byte for byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_address_text_matches_inet_ntop(build_c, csrc: Path) -> None:
    exe = build_c(
        HERE / "support" / "c" / "test_format.c",
        "test_format",
        str(csrc / "convert.c"),
        str(csrc / "clock.c"),
    )
    out = subprocess.run([exe, "2000000"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "OK", out.stdout[-2000:]
