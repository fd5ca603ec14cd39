"""Shared fixtures.

Tests that need the kernel (loading BPF) run as root. They skip only when
the process is not root AND ``TCPEVENT_REQUIRE_BPF`` is unset; ``make test``
sets it, so in CI a missing privilege is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tcpevent import abi

if TYPE_CHECKING:
    from clickhouse import ClickHouse

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "bpf: needs root (to load BPF programs, make namespaces)")
    # Tests interrupt their children with SIGINT as Ctrl-C would. A suite
    # started in the background of a non-interactive shell (`make test &`
    # in a script) inherits SIGINT ignored, and so would every child: a
    # Python child then never raises KeyboardInterrupt, a C child never
    # stops. A handler, unlike "ignored", is reset to the default at exec.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.geteuid() == 0:
        return
    required = bool(os.environ.get("TCPEVENT_REQUIRE_BPF"))
    for item in items:
        if "bpf" in item.keywords:
            if required:
                item.add_marker(
                    pytest.mark.xfail(
                        reason="TCPEVENT_REQUIRE_BPF is set but tests are not root",
                        run=False,
                        strict=True,
                    )
                )
            else:
                item.add_marker(pytest.mark.skip(reason="needs root to load BPF"))


@pytest.fixture(scope="session")
def libpath() -> Path:
    path = abi.library_path()
    assert path.exists(), f"{path} is missing: run `make build`"
    return path


@pytest.fixture(scope="session")
def csrc() -> Path:
    return ROOT / "csrc"


def c_includes(csrc: Path) -> list[str]:
    """A C program of the repo sees the public headers and the library's
    internal ones."""
    return [f"-I{csrc / 'include'}", f"-I{csrc}"]


@pytest.fixture(scope="session")
def cc() -> str:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    assert compiler, "a C compiler is needed"
    return compiler


@pytest.fixture(scope="session")
def build_c(tmp_path_factory: pytest.TempPathFactory, cc: str, csrc: Path):
    """Compile a C program of the repo into a temporary directory."""
    outdir = tmp_path_factory.mktemp("cbin")

    def build(source: Path, name: str, *flags: str) -> Path:
        out = outdir / name
        subprocess.run(
            [
                *(cc, "-O2", "-g", "-Wall", "-Werror", *c_includes(csrc)),
                *("-o", str(out), str(source), *flags),
            ],
            check=True,
        )
        return out

    return build


@pytest.fixture(scope="session")
def compile_bpf(tmp_path_factory: pytest.TempPathFactory, csrc: Path):
    """Compile a BPF C source (with csrc/bpf/ and csrc/include/ on the
    include path) to an object."""
    outdir = tmp_path_factory.mktemp("bpfobj")
    clang = shutil.which("clang") or shutil.which("clang-14")
    assert clang, "clang is needed"
    arch = sysconfig.get_config_var("MULTIARCH")

    def build(source: Path, *defines: str) -> Path:
        out = outdir / (source.name.removesuffix(".c") + "".join(defines) + ".o")
        subprocess.run(
            [
                *(
                    clang,
                    "-g",
                    "-O2",
                    "-target",
                    "bpf",
                    f"-I{csrc / 'bpf'}",
                    f"-I{csrc / 'include'}",
                ),
                f"-I/usr/include/{arch}",
                *defines,
                *("-c", str(source), "-o", str(out)),
            ],
            check=True,
        )
        return out

    return build


@pytest.fixture(scope="session")
def churn(build_c) -> Path:
    """benchmarks/churn.c, the loopback connection-churn generator."""
    path: Path = build_c(ROOT / "benchmarks" / "churn.c", "churn", "-Wextra", "-pthread")
    return path


@pytest.fixture(scope="session")
def legacy_driver(build_c) -> Path:
    """tests/support/c/legacy_driver.c: the original calls, one scenario per run."""
    path: Path = build_c(
        ROOT / "tests" / "support" / "c" / "legacy_driver.c", "legacy_driver", "-ldl", "-pthread"
    )
    return path


@pytest.fixture(scope="session")
def reliability_driver(build_c) -> Path:
    """tests/support/c/reliability_driver.c: the legacy calls under stress."""
    path: Path = build_c(
        ROOT / "tests" / "support" / "c" / "reliability_driver.c", "reliability_driver", "-ldl"
    )
    return path


@pytest.fixture(scope="module")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """A ClickHouse server of the test module's own (tests/support/clickhouse.py)."""
    from clickhouse import ClickHouse, available

    assert available(), "Debian's clickhouse-server is needed: make test installs it"
    server = ClickHouse(tmp_path_factory.mktemp("clickhouse"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def rootfs(tmp_path: Path) -> Iterator[Path]:
    """A busybox root filesystem for ``podman run --rootfs`` (tests/support/podmanutil.py)."""
    from podmanutil import busybox_rootfs

    with busybox_rootfs(tmp_path / "rootfs") as root:
        yield root
