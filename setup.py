"""Build tcpevent: the BPF object, libtcpEvent.so, and the cffi extension.

Three steps, in this order, inside ``build_ext``:

1. clang compiles ``csrc/tcpevent.bpf.c`` into a CO-RE BPF object;
2. the object is embedded into ``libtcpEvent.so`` (one file to ship: existing
   C, C# and ctypes clients load it directly);
3. the cffi extension ``tcpevent._native`` (API mode) links that same library
   through an ``$ORIGIN`` rpath instead of compiling a second copy of it.

The library lands in ``tcpevent/lib/`` next to the extension, for a wheel and
for an editable install alike. ``TCPEVENT_SANITIZE=address,undefined`` builds
it with sanitizers (``make test-asan``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

from cffi import FFI
from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
CSRC = ROOT / "csrc"
LIB_NAME = "libtcpEvent.so"
HEADERS = ["tcpevent.h", "tcp_event.h", "common.h", "tcpevent_record.h", "sockdiag.h"]

CDEF = """
#define TCPEVENT_TASK_LEN ...
#define TCPEVENT_ADDR_LEN ...
#define TCPEVENT_DEFAULT_QUEUE_SIZE ...
#define TCPEVENT_DEFAULT_RING_SIZE ...
#define TCPEVENT_DEFAULT_MAX_SOCKETS ...

struct tcpevent_event {
    uint64_t time_ns;
    uint64_t lifetime_ns;
    uint64_t rx_bytes;
    uint64_t tx_bytes;
    uint32_t pid;
    uint32_t uid;
    uint32_t segs_out;
    uint32_t segs_in;
    uint32_t rtt_us;
    uint32_t retrans;
    uint16_t family;
    uint16_t sport;
    uint16_t dport;
    uint8_t kind;
    uint8_t state;
    char task[16];
    char saddr[46];
    char daddr[46];
    ...;
};

struct tcpevent_options {
    size_t size;
    const char *program;
    uint32_t queue_size;
    uint32_t ring_size;
    uint32_t max_sockets;
    uint32_t snapshot_interval_ms;
    uint16_t family;
    uint16_t n_ports;
    const uint16_t *ports;
    uint32_t n_pids;
    const uint32_t *pids;
    uint32_t flags;
    ...;
};

#define TCPEVENT_OPT_NO_ACCEPT_HOOKS ...

struct tcpevent_stats {
    uint64_t received;
    uint64_t dropped_kernel;
    uint64_t dropped_queue;
    uint64_t queued;
    uint64_t delivered;
    uint64_t malformed;
    uint64_t untracked;
    uint64_t filtered;
    uint64_t snapshots;
    uint64_t snapshot_errors;
    uint64_t missed;
    ...;
};

struct tcpevent;

void tcpevent_options_init(struct tcpevent_options *opts);
int tcpevent_open(const struct tcpevent_options *opts, struct tcpevent **out);
int tcpevent_dequeue(struct tcpevent *t, struct tcpevent_event *ev, int timeout_ms);
int tcpevent_dequeue_batch(struct tcpevent *t, struct tcpevent_event *evs,
                           unsigned int max, int timeout_ms);
int tcpevent_fd(struct tcpevent *t);
int tcpevent_status(struct tcpevent *t);
int tcpevent_stats(struct tcpevent *t, struct tcpevent_stats *stats);
const char *tcpevent_warnings(struct tcpevent *t);
void tcpevent_close(struct tcpevent *t);
void tcpevent_free(struct tcpevent *t);
const char *tcpevent_last_error(void);

void tcpevent_conn_query_init(struct tcpevent_conn_query *q);
int tcpevent_connections(const struct tcpevent_conn_query *q,
                         struct tcpevent_conn **out, size_t *count);
void tcpevent_connections_free(struct tcpevent_conn *conns, size_t count);
"""

#: Declared for cffi straight from the C header, so they cannot drift.
CONNECTION_STRUCTS = ["tcpevent_tcp_info", "tcpevent_skmem", "tcpevent_conn", "tcpevent_conn_query"]


def header_structs(header: Path, names: list[str]) -> str:
    """The definitions of these structs in a C header, as cdef text."""
    text = re.sub(r"/\*.*?\*/", "", header.read_text(), flags=re.S)
    out = []
    for name in names:
        m = re.search(r"^struct " + name + r" \{.*?^\};", text, flags=re.S | re.M)
        if not m:
            raise RuntimeError(f"struct {name} not found in {header}")
        out.append(re.sub(r"\[TCPEVENT_\w+\]", "[...]", m.group(0)))
    return "\n".join(out)


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
    _run(
        [
            *(_find_clang(), "-g", "-O2", "-target", "bpf", "-Wall", "-Werror"),
            *_multiarch_include(),
            *defines,
            *(f"-I{CSRC}", "-c", str(CSRC / "tcpevent.bpf.c"), "-o", str(out)),
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
    return sorted(p for p in CSRC.glob("*.c") if not p.name.endswith(".bpf.c"))


def build_library(tmp: Path, out: Path) -> None:
    # The default build reads kernel memory with bpf_rdonly_cast() (6.2+);
    # the portable one with bpf_probe_read_kernel(). See kernel_read.h.
    fast, portable = tmp / "tcpevent.bpf.o", tmp / "tcpevent-portable.bpf.o"
    embedded = tmp / "builtin_object.c"
    compile_bpf_object(fast)
    compile_bpf_object(portable, "-DTCPEVENT_PORTABLE")
    embed_objects({"te_builtin_object": fast, "te_portable_object": portable}, embedded)
    cc = os.environ.get("CC", "cc").split()
    flags = ["-O2", "-g", "-Wall", "-Wextra", "-fPIC", "-D_GNU_SOURCE", "-pthread"]
    sanitize = os.environ.get("TCPEVENT_SANITIZE")
    if sanitize:
        flags += [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-O1"]
    out.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            *cc,
            *flags,
            *("-shared", f"-I{CSRC}", "-o", str(out)),
            *(str(p) for p in native_sources()),
            str(embedded),
            f"-Wl,--version-script={CSRC / 'libtcpEvent.map'}",
            "-Wl,-z,defs",
            *("-lbpf", "-lelf", "-lz"),
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
        include_dir.mkdir(parents=True, exist_ok=True)
        for header in HEADERS:
            if (CSRC / header).exists():
                shutil.copy2(CSRC / header, include_dir / header)
        for ext in self.extensions:
            ext.library_dirs.append(str(lib_dir))
        super().run()


def make_ffi() -> FFI:
    ffi = FFI()
    ffi.cdef(header_structs(CSRC / "sockdiag.h", CONNECTION_STRUCTS) + CDEF)
    ffi.set_source(
        "tcpevent._native",
        '#include "tcpevent.h"\n#include "sockdiag.h"\n',
        include_dirs=[str(CSRC)],
        libraries=["tcpEvent"],
        extra_link_args=["-Wl,-rpath,$ORIGIN/lib"],
    )
    return ffi


setup(
    ext_modules=[make_ffi().distutils_extension()],
    cmdclass={"build_ext": BuildNative},
)
