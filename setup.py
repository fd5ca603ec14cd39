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
compiled BPF objects (TCP's and UDP's, two builds each: ``csrc/vendor/sdist.py``),
so that it builds offline and with no clang: BPF bytecode is the same
wherever it is built.
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
#: The UDP flow tracer's library (docs/udp.md): its own program, link and
#: version script, beside libtcpEvent.so.
UDP_LIB_NAME = "libudpEvent.so"
UDP_DIR = CSRC / "udp"
#: The generic parts of csrc/ it shares with the TCP library.
UDP_SHARED = ["clock.c", "env.c", "error.c", "sorted.c"]
UDP_FUNCTIONS = [
    "udpevent_options_init",
    "udpevent_open",
    "udpevent_dequeue",
    "udpevent_dequeue_batch",
    "udpevent_fd",
    "udpevent_status",
    "udpevent_stats",
    "udpevent_close",
    "udpevent_free",
    "udpevent_last_error",
    "udpevent_warnings",
]
UDP_CDEF_HEADERS = ["udpevent_record.h", "udpevent.h"]
UDP_LEGACY_CDEF_HEADER = "udpevent_legacy.h"

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
    "tcpevent_build",
    "tcpevent_close",
    "tcpevent_free",
    "tcpevent_last_error",
    "tcpevent_reason_name",
    "tcpevent_cgroup_path",
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


def header_cdef(header: Path, functions: list[str] = FUNCTIONS, prefix: str = "TCPEVENT") -> str:
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
    lower = prefix.lower()
    for m in re.finditer(rf"^typedef [^;{{}}#]*\b{lower}_\w+_fn\([^;]*\);", text, flags=re.M):
        out.append(m.group(0))  # the legacy calls' function types
    kinds = "enum" if header.name.endswith("_record.h") else "struct|enum"
    for m in re.finditer(rf"^(?:{kinds}) \w+ \{{.*?^\}};", text, flags=re.S | re.M):
        out.append(re.sub(rf"\[(?:TCPEVENT|{prefix})_\w+\]", "[...]", m.group(0)))
    for m in re.finditer(rf"^#define ({prefix}_\w+)[ \t]+(\S.*)$", text, flags=re.M):
        if not m.group(2).startswith('"') and not m.group(1).endswith("_H"):
            out.append(f"#define {m.group(1)} ...")
    handle = f"struct {prefix.lower()};"
    if re.search(rf"^{handle}$", text, flags=re.M):
        out.append(handle)  # the opaque handle
    for name in functions:
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


def compile_bpf_object(out: Path, *defines: str, source: str = "tcp.bpf.c") -> None:
    # The pinned libbpf's bpf_helpers.h & co. come first: never the system's.
    libbpf_include = vendored_libbpf.headers(ROOT)
    _run(
        [
            *(_find_clang(), "-g", "-O2", "-target", "bpf", "-Wall", "-Werror"),
            f"-I{libbpf_include}",
            *_multiarch_include(),
            *defines,
            *(f"-I{BPF_DIR}", f"-I{INCLUDE_DIR}", "-c", str(BPF_DIR / source), "-o", str(out)),
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


#: The BPF objects: by the C array each is embedded as, its source in
#: csrc/bpf/, its file name and its defines. TCP's default build reads
#: kernel memory with bpf_rdonly_cast() (6.2+), the portable one with
#: bpf_probe_read_kernel() (bpf/kernel_read.h); UDP's two, the same way,
#: are libudpEvent.so's.
BPF_BUILDS = {
    "te_builtin_object": ("tcp.bpf.c", "tcp.bpf.o", ()),
    "te_portable_object": ("tcp.bpf.c", "tcp-portable.bpf.o", ("-DTCPEVENT_PORTABLE",)),
    "te_udp_object": ("udp.bpf.c", "udp.bpf.o", ()),
    "te_udp_portable_object": ("udp.bpf.c", "udp-portable.bpf.o", ("-DTCPEVENT_PORTABLE",)),
}
TCP_OBJECTS = ["te_builtin_object", "te_portable_object"]
UDP_OBJECTS = ["te_udp_object", "te_udp_portable_object"]


def bpf_objects(tmp: Path) -> dict[str, Path]:
    """Every BPF object, by the C array it is embedded as. An sdist's
    prebuilt objects are used as they are (no clang needed)."""
    prebuilt = {array: PREBUILT_BPF / f for array, (_, f, _) in BPF_BUILDS.items()}
    if all(path.exists() for path in prebuilt.values()):
        return prebuilt
    for source, name, defines in BPF_BUILDS.values():
        compile_bpf_object(tmp / name, *defines, source=source)
    return {array: tmp / f for array, (_, f, _) in BPF_BUILDS.items()}


def c_flags() -> list[str]:
    """The libraries' compiler flags (TCPEVENT_SANITIZE: with sanitizers)."""
    flags = ["-O2", "-g", "-Wall", "-Wextra", "-Werror", "-fPIC", "-D_GNU_SOURCE", "-pthread"]
    sanitize = os.environ.get("TCPEVENT_SANITIZE")
    if sanitize:
        flags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-O1"]
    return flags


def link_libbpf(cc: list[str]) -> tuple[list[str], list[str]]:
    """The include flags and link arguments of the pinned libbpf: linked in
    whole (static, PIC); libelf and zlib are the system's shared ones
    (Debian's .a are not PIC; a wheel bundles them, and `tcpevent
    --install-lib` copies them beside the library, where the $ORIGIN rpath
    finds them)."""
    libbpf = vendored_libbpf.build(ROOT, cc)
    return [f"-I{libbpf.include_dir}"], [str(libbpf.archive), "-lelf", "-lz", "-Wl,-rpath,$ORIGIN"]


def build_library(tmp: Path, objects: dict[str, Path], out: Path) -> None:
    embedded = tmp / "builtin_object.c"
    embed_objects({array: objects[array] for array in TCP_OBJECTS}, embedded)
    cc = os.environ.get("CC", "cc").split()
    includes, link_libs = link_libbpf(cc)
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            *cc,
            *c_flags(),
            *("-shared", *includes, f"-I{INCLUDE_DIR}", f"-I{CSRC}"),
            *("-o", str(out)),
            *(str(p) for p in native_sources()),
            str(embedded),
            f"-Wl,--version-script={LEGACY_DIR / 'libtcpEvent.map'}",
            "-Wl,-z,defs",
            *link_libs,
        ]
    )


def build_udp_library(tmp: Path, objects: dict[str, Path], out: Path) -> None:
    """libudpEvent.so: udp.bpf.c embedded, csrc/udp/, the original UDP calls."""
    embedded = tmp / "udp_object.c"
    embed_objects({array: objects[array] for array in UDP_OBJECTS}, embedded)
    embedded.write_text(embedded.read_text().replace("builtin_object.h", "udp_object.h"))
    cc = os.environ.get("CC", "cc").split()
    includes, link_libs = link_libbpf(cc)
    _run(
        [
            *cc,
            *c_flags(),
            *("-shared", *includes, f"-I{INCLUDE_DIR}", f"-I{CSRC}", f"-I{UDP_DIR}"),
            *("-o", str(out)),
            *(str(CSRC / name) for name in UDP_SHARED),
            *(str(p) for p in sorted(UDP_DIR.glob("*.c"))),
            str(LEGACY_DIR / "udp.c"),
            str(embedded),
            f"-Wl,--version-script={LEGACY_DIR / 'libudpEvent.map'}",
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
        objects = bpf_objects(tmp)
        build_library(tmp, objects, lib_dir / LIB_NAME)
        build_udp_library(tmp, objects, lib_dir / UDP_LIB_NAME)
        include_dir = ext_path.parent / "include"
        shutil.rmtree(include_dir, ignore_errors=True)  # no header of an older build
        include_dir.mkdir(parents=True)
        for header in INCLUDE_DIR.rglob("*.h"):  # udp/common.h: the UDP client's
            (include_dir / header.relative_to(INCLUDE_DIR)).parent.mkdir(exist_ok=True)
            shutil.copy2(header, include_dir / header.relative_to(INCLUDE_DIR))
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


def make_udp_ffi() -> FFI:
    """tcpevent._udp_native: the udpevent_* API of libudpEvent.so."""
    ffi = FFI()
    # The original ABI's packed struct udp_event_t and its calls' types, for
    # tcpevent.udp_abi: a cdef of its own (cffi packs all of a packed cdef).
    ffi.cdef(header_cdef(INCLUDE_DIR / UDP_LEGACY_CDEF_HEADER, [], "UDPEVENT"), packed=True)
    ffi.cdef(
        "".join(header_cdef(INCLUDE_DIR / n, UDP_FUNCTIONS, "UDPEVENT") for n in UDP_CDEF_HEADERS)
    )
    ffi.set_source(
        "tcpevent._udp_native",
        '#include "udpevent.h"\n',
        include_dirs=[str(INCLUDE_DIR)],
        libraries=["udpEvent"],
        extra_link_args=["-Wl,-rpath,$ORIGIN/lib"],
        py_limited_api=True,
    )
    return ffi


setup(
    ext_modules=[make_ffi().distutils_extension(), make_udp_ffi().distutils_extension()],
    cmdclass={"build_ext": BuildNative, "sdist": vendored_sdist.command(ROOT, bpf_objects)},
    # The wheel's tag: cp39-abi3 (the extensions use only the limited API).
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
)
