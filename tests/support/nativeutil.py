"""A minimal tracer on the extended C API (through the cffi module), for the
native-core tests; the Python API proper is tested in test_api_*."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from tcpevent._native import ffi, lib


def _members() -> tuple[list[str], list[str]]:
    """The numeric and the text members of struct tcpevent_event (its header)."""
    numbers, texts = [], []
    for name, field in ffi.typeof("struct tcpevent_event").fields:
        if field.type.kind == "primitive":
            numbers.append(name)
        elif field.type.kind == "array" and field.type.item.cname == "char":
            texts.append(name)
    return numbers, texts


FIELDS, TEXT_FIELDS = _members()


def as_dict(ev: Any) -> dict[str, Any]:
    d = {name: getattr(ev, name) for name in FIELDS}
    for name in TEXT_FIELDS:
        d[name] = ffi.string(getattr(ev, name)).decode(errors="replace")
    return d


class NativeTracer:
    def __init__(
        self,
        ports: Iterable[int] = (),
        pids: Iterable[int] = (),
        program: str | None = None,
        **sizes: int,
    ) -> None:
        opts = ffi.new("struct tcpevent_options *")
        lib.tcpevent_options_init(opts)
        self._keep = [ffi.new("uint16_t[]", list(ports)), ffi.new("uint32_t[]", list(pids))]
        opts.ports, opts.n_ports = self._keep[0], len(self._keep[0])
        opts.pids, opts.n_pids = self._keep[1], len(self._keep[1])
        if program:
            self._keep.append(ffi.new("char[]", program.encode()))
            opts.program = self._keep[-1]
        for name, value in sizes.items():
            setattr(opts, name, value)
        out = ffi.new("struct tcpevent **")
        err = lib.tcpevent_open(opts, out)
        if err:
            raise OSError(-err, ffi.string(lib.tcpevent_last_error()).decode())
        self.handle = out[0]
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> NativeTracer:
        return self

    def __exit__(self, *exc: object) -> None:
        lib.tcpevent_free(self.handle)

    def stats(self) -> dict[str, int]:
        st = ffi.new("struct tcpevent_stats *")
        assert lib.tcpevent_stats(self.handle, st) == 0
        return {name: getattr(st, name) for name in dir(st)}

    def warnings(self) -> str:
        return ffi.string(lib.tcpevent_warnings(self.handle)).decode()

    def collect(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Dequeue into self.events until done(self.events) or the timeout."""
        buf = ffi.new("struct tcpevent_event[256]")
        deadline = time.monotonic() + timeout
        while not done(self.events) and time.monotonic() < deadline:
            n = lib.tcpevent_dequeue_batch(self.handle, buf, 256, 50)
            assert n >= 0, ffi.string(lib.tcpevent_last_error())
            self.events.extend(as_dict(buf[i]) for i in range(n))
        return self.events
