"""Build tcpevent: the BPF object, libtcpEvent.so, and the cffi extension.

Three steps, in this order, inside ``build_ext``:

1. clang compiles ``csrc/bpf/tcp.bpf.c`` into a CO-RE BPF object;
2. the object is embedded into ``libtcpEvent.so`` (one file to ship: existing
   C, C# and ctypes clients load it directly);
3. the cffi extension ``tcpevent._native`` (API mode) links that same library
   through an ``$ORIGIN`` rpath instead of compiling a second copy of it.

The library lands in ``tcpevent/lib/`` next to the extension, for a wheel and
for an editable install alike. ``TCPEVENT_SANITIZE=address,undefined`` builds
it with sanitizers (``make test-asan``).

libbpf is not the system's: a pinned release, built as a static PIC archive
and linked in, whose headers the BPF program is compiled against
(``csrc/vendor/libbpf.py``). An sdist carries that release's tarball and the
two compiled BPF objects (``csrc/vendor/sdist.py``), so that it builds
offline and with no clang: BPF bytecode is the same wherever it is built.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from cffi import FFI
from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, str(Path(__file__).resolve().parent / "csrc" / "vendor"))
import libbpf as vendored_libbpf
import sdist as vendored_sdist

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
#: The programs compiled with -target bpf, and their own headers.
BPF_DIR = CSRC / "bpf"
#: Exactly the public API: every header here is installed with the package
#: (tcpevent/include/), and none elsewhere is.
INCLUDE_DIR = CSRC / "include"
#: The original ABI: its calls and the version script of its library.
LEGACY_DIR = CSRC / "legacy"
LIB_NAME = "libtcpEvent.so"
#: Where an sdist carries the compiled BPF objects (never in a checkout).
PREBUILT_BPF = BPF_DIR / "prebuilt"

#: What cffi sees of the C API: the structs, enums and integer constants
#: of the headers, and the prototypes of the functions the package calls,
#: all taken from the headers themselves (:func:`header_cdef`), so that
#: nothing is declared twice.
FUNCTIONS = [
    "tcpevent_options_init",
    "tcpevent_open",
    "tcpevent_dequeue",
    "tcpevent_dequeue_batch",
    "tcpevent_fd",
    "tcpevent_status",
    "tcpevent_stats",
    "tcpevent_warnings",
    "tcpevent_close",
    "tcpevent_free",
    "tcpevent_last_error",
    "tcpevent_reason_name",
    "tcpevent_conn_query_init",
    "tcpevent_connections",
    "tcpevent_connections_free",
]

#: The headers cffi's declarations come from, in dependency order. The
#: record header's struct is the BPF program's (kernel types): only its
#: constants and enums are taken.
CDEF_HEADERS = ["tcpevent_record.h", "tcpevent.h", "tcpevent_conn.h"]
#: The original ABI's header: its packed struct tcp_event_t and the types of
#: the six calls (``tcpevent_*_fn``), which ``tcpevent.abi`` gives ctypes.
#: A cdef of its own: cffi packs every struct of a ``packed=True`` cdef.
LEGACY_CDEF_HEADER = "tcpevent_legacy.h"

#: Constants of the kernel's UAPI headers the package reads (as cffi's
#: ``lib.NAME``), with the values the compiler finds in those headers: the
#: sock_diag attributes whose bits ``tcpevent_conn.attrs`` carries.
KERNEL_CONSTANTS = {
    "linux/inet_diag.h": [
        "INET_DIAG_CONG",
        "INET_DIAG_TOS",
        "INET_DIAG_TCLASS",
        "INET_DIAG_SKV6ONLY",
        "INET_DIAG_MARK",
        "INET_DIAG_CGROUP_ID",
    ],
}


def header_cdef(header: Path) -> str:
    """The enums, structs, integer constants and :data:`FUNCTIONS` of a C
    header, as cdef text.

    Structs and enums are copied whole (array sizes named by a constant
    become ``[...]``: the compiler fills them in); every object-like
    ``#define TCPEVENT_*`` that is not a string becomes ``#define NAME ...``;
    a function's prototype, and a ``typedef ... tcpevent_*_fn(...)``
    function type, is copied as it is.
    """
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    text = re.sub(r"\\\n", " ", text)  # join continued lines
    if "__bpf__" in text:  # the BPF-only part of tcpevent_record.h
        text = re.sub(r"^#ifdef __bpf__$.*?^#endif$", "", text, flags=re.S | re.M)
    out = []
    for m in re.finditer(r"^typedef [^;{}#]*\btcpevent_\w+_fn\([^;]*\);", text, flags=re.M):
        out.append(m.group(0))  # the legacy calls' function types
    kinds = "enum" if header.name == "tcpevent_record.h" else "struct|enum"
    for m in re.finditer(rf"^(?:{kinds}) \w+ \{{.*?^\}};", text, flags=re.S | re.M):
        out.append(re.sub(r"\[TCPEVENT_\w+\]", "[...]", m.group(0)))
    for m in re.finditer(r"^#define (TCPEVENT_\w+)[ \t]+(\S.*)$", text, flags=re.M):
        if not m.group(2).startswith('"') and not m.group(1).endswith("_H"):
            out.append(f"#define {m.group(1)} ...")
    if re.search(r"^struct tcpevent;$", text, flags=re.M):
        out.append("struct tcpevent;")  # the opaque handle
    for name in FUNCTIONS:
        m = re.search(rf"^[^;{{}}#]*\b{name}\([^;]*\);", text, flags=re.M)
        if m:
            out.append(m.group(0).strip())
    return "\n".join(out) + "\n"


def _run(cmd: list[str]) -> None:
    print(" ".join(cmd))
    subprocess.run(cmd, check=True)


def _find_clang() -> str:
    for name in (os.environ.get("BPF_CLANG", ""), "clang", "clang-19", "clang-14"):
        if name and shutil.which(name):
            return name
    raise RuntimeError("clang is needed to compile the BPF program (apt-get install clang)")


def _multiarch_include() -> list[str]:
    """asm/types.h lives in a per-architecture directory on Debian."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    path = Path("/usr/include") / arch
    return [f"-I{path}"] if arch and path.is_dir() else []


def compile_bpf_object(out: Path, *defines: str) -> None:
    # The pinned libbpf's bpf_helpers.h & co. come first: never the system's.
    libbpf_include = vendored_libbpf.headers(ROOT)
    _run(
        [
            *(_find_clang(), "-g", "-O2", "-target", "bpf", "-Wall", "-Werror"),
            f"-I{libbpf_include}",
            *_multiarch_include(),
            *defines,
            *(f"-I{BPF_DIR}", f"-I{INCLUDE_DIR}", "-c", str(BPF_DIR / "tcp.bpf.c"), "-o", str(out)),
        ]
    )


def embed_objects(objects: dict[str, Path], out: Path) -> None:
    """Write each object's bytes as a C array (no assembler tricks needed)."""
    text = '#include "builtin_object.h"\n'
    for name, obj in objects.items():
        data = obj.read_bytes()
        rows = (",".join(str(b) for b in data[i : i + 24]) for i in range(0, len(data), 24))
        text += (
            f"const unsigned char {name}[] __attribute__((aligned(8))) = {{\n"
            + ",\n".join(rows)
            + "\n};\n"
            + f"const size_t {name}_size = {len(data)};\n"
        )
    out.write_text(text)


def native_sources() -> list[Path]:
    """The library's core (csrc/*.c) and the original ABI of libtcpEvent.so."""
    return [*sorted(CSRC.glob("*.c")), LEGACY_DIR / "tcp.c"]


def bpf_objects(tmp: Path) -> dict[str, Path]:
    """The two builds of the BPF program, by the C array they are embedded as.

    The default build reads kernel memory with bpf_rdonly_cast() (6.2+);
    the portable one with bpf_probe_read_kernel(). See bpf/kernel_read.h.
    An sdist's prebuilt objects are used as they are (no clang needed).
    """
    names = {"te_builtin_object": "tcp.bpf.o", "te_portable_object": "tcp-portable.bpf.o"}
    if all((PREBUILT_BPF / f).exists() for f in names.values()):
        return {array: PREBUILT_BPF / f for array, f in names.items()}
    compile_bpf_object(tmp / names["te_builtin_object"])
    compile_bpf_object(tmp / names["te_portable_object"], "-DTCPEVENT_PORTABLE")
    return {array: tmp / f for array, f in names.items()}


def build_library(tmp: Path, out: Path) -> None:
    embedded = tmp / "builtin_object.c"
    embed_objects(bpf_objects(tmp), embedded)
    cc = os.environ.get("CC", "cc").split()
    libbpf = vendored_libbpf.build(ROOT, cc)
    # libbpf is linked in whole (static, PIC); libelf and zlib are the
    # system's shared ones (Debian's .a are not PIC; a wheel bundles them,
    # and `tcpevent --install-lib` copies them beside the library, where
    # the $ORIGIN rpath finds them).
    link_libs = [str(libbpf.archive), "-lelf", "-lz", "-Wl,-rpath,$ORIGIN"]
    flags = ["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-D_GNU_SOURCE", "-pthread"]
    sanitize = os.environ.get("TCPEVENT_SANITIZE")
    if sanitize:
        flags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-O1"]
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            *cc,
            *flags,
            *("-shared", f"-I{libbpf.include_dir}", f"-I{INCLUDE_DIR}", f"-I{CSRC}"),
            *("-o", str(out)),
            *(str(p) for p in native_sources()),
            str(embedded),
            f"-Wl,--version-script={LEGACY_DIR / 'libtcpEvent.map'}",
            "-Wl,-z,defs",
            *link_libs,
        ]
    )


class BuildNative(build_ext):
    """Build libtcpEvent.so before the cffi extension that links it."""

    def run(self) -> None:
        ext_path = Path(self.get_ext_fullpath("tcpevent._native"))
        lib_dir = ext_path.parent / "lib"
        tmp = Path(self.build_temp) / "tcpevent-native"
        tmp.mkdir(parents=True, exist_ok=True)
        build_library(tmp, lib_dir / LIB_NAME)
        include_dir = ext_path.parent / "include"
        shutil.rmtree(include_dir, ignore_errors=True)  # no header of an older build
        include_dir.mkdir(parents=True)
        for header in INCLUDE_DIR.glob("*.h"):
            shutil.copy2(header, include_dir / header.name)
        for ext in self.extensions:
            ext.library_dirs.append(str(lib_dir))
        super().run()


def make_ffi() -> FFI:
    ffi = FFI()
    cdef = "".join(header_cdef(INCLUDE_DIR / name) for name in CDEF_HEADERS)
    missing = [name for name in FUNCTIONS if f" {name}(" not in cdef and f"*{name}(" not in cdef]
    if missing:
        raise RuntimeError(f"no prototype of {missing} in {CDEF_HEADERS}")
    ffi.cdef(header_cdef(INCLUDE_DIR / LEGACY_CDEF_HEADER), packed=True)
    ffi.cdef(cdef)
    ffi.cdef(
        "".join(f"#define {name} ...\n" for names in KERNEL_CONSTANTS.values() for name in names)
    )
    ffi.set_source(
        "tcpevent._native",
        "".join(f"#include <{name}>\n" for name in KERNEL_CONSTANTS)
        + "".join(f'#include "{name}"\n' for name in [LEGACY_CDEF_HEADER, *CDEF_HEADERS]),
        include_dirs=[str(INCLUDE_DIR)],
        libraries=["tcpEvent"],
        extra_link_args=["-Wl,-rpath,$ORIGIN/lib"],
        # The limited API: one extension for every Python >= 3.9 (abi3).
        py_limited_api=True,
    )
    return ffi


setup(
    ext_modules=[make_ffi().distutils_extension()],
    cmdclass={"build_ext": BuildNative, "sdist": vendored_sdist.command(ROOT, bpf_objects)},
    # The wheel's tag: cp39-abi3 (the extension uses only the limited API).
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
