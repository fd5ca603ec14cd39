"""`make run` installs what tracing needs and nothing of the tests'.

The Makefile is asked itself: its variables from its own database
(`make -p`), what each target would run from a dry run (`make -n`)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def make(*args: str) -> str:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def variable(name: str) -> list[str]:
    """A variable's words, from make's own database (-p prints it; -q asks
    whether a goal is up to date, which runs no recipe)."""
    database = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "-p", "-q", "clean"],
        capture_output=True,
        text=True,
    ).stdout
    m = re.search(rf"^{name} := (.*)$", database, flags=re.M)
    assert m, f"{name} is not defined"
    return m.group(1).split()


def words(text: str) -> set[str]:
    return set(re.findall(r"[\w.+-]+", text))


def test_make_run_installs_no_test_only_package() -> None:
    run, test = words(make("-n", "run")), words(make("-n", "test"))
    test_only = (
        variable("APT_TEST_PACKAGES")
        + variable("APT_TEST_LEAN_PACKAGES")
        + variable("APT_TEST_SERVER_PACKAGES")
    )
    assert {"podman", "mono-runtime", "prometheus", "nftables", "runc"} <= set(test_only)
    assert set(test_only) & run == set(), "make run would install test-only packages"
    assert set(variable("APT_RUN_PACKAGES")) <= run
    assert set(test_only) <= test, "make test must install every test package"
    pip_test = [p.strip('"') for p in variable("PIP_TEST_PACKAGES")]
    assert "pytest" in pip_test and not set(pip_test) & run
