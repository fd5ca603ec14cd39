"""Exceptions of tcpevent.

Every failure of the native core is a :class:`TracerError`, a subclass of
:class:`OSError` carrying the core's ``errno`` (``err.errno``) and its text
(``str(err)``, also ``err.strerror``), which names the cause and, where there
is one, the remedy. Subclasses also derive from the matching built-in
exception, so generic handlers keep working::

    TracerError(OSError)
    ├── TracerPermissionError(TracerError, PermissionError)  # -EPERM / -EACCES
    ├── TracerClosedError                                     # use after close()
    └── ProgramError                                          # a custom BPF object
        ├── ProgramNotFoundError(ProgramError, FileNotFoundError)
        └── InvalidProgramError(ProgramError, ValueError)

Invalid arguments to :class:`tcpevent.Tracer` are plain :class:`ValueError`
or :class:`TypeError`, raised before anything is loaded.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = [
    "InvalidProgramError",
    "ProgramError",
    "ProgramNotFoundError",
    "TracerClosedError",
    "TracerError",
    "TracerPermissionError",
    "describe_errno",
    "error_from_code",
]


class TracerError(OSError):
    """A failure of the tracer core.

    ``errno`` is the positive error number, ``strerror`` (and ``str(err)``)
    the core's explanation, ``filename`` the program path when one is
    involved.
    """

    def __init__(self, code: int, message: str, filename: str | None = None) -> None:
        if filename is None:
            super().__init__(code, message)
        else:
            super().__init__(code, message, filename)

    def __str__(self) -> str:
        return str(self.strerror)

    @property
    def errno_name(self) -> str:
        """The symbolic errno, e.g. ``"EPERM"`` (``"E<n>"`` if it has none)."""
        code = self.errno or 0
        return _errno.errorcode.get(code, f"E{code}")


class TracerPermissionError(TracerError, PermissionError):
    """The process may not load or attach BPF programs.

    The message names the missing capability (``CAP_BPF``, ``CAP_PERFMON``)
    and the remedy (run as root, or ``setcap``).
    """


class TracerClosedError(TracerError):
    """The tracer was closed: it delivers no more events."""

    def __init__(self, message: str = "the tracer is closed") -> None:
        super().__init__(_errno.ESHUTDOWN, message)


class ProgramError(TracerError):
    """A custom BPF program (``Tracer(program=...)``) could not be used."""


class ProgramNotFoundError(ProgramError, FileNotFoundError):
    """The custom BPF program file does not exist."""


class InvalidProgramError(ProgramError, ValueError):
    """The custom BPF program is not a usable tcpevent BPF object."""


def describe_errno(code: int) -> str:
    """``"EPERM (Operation not permitted)"``-style text for an errno value."""
    name = _errno.errorcode.get(code)
    text = os.strerror(code)
    return f"{name} ({text})" if name else text


# Errors that say the program file itself is wrong rather than the system.
_BAD_PROGRAM = {
    _errno.EINVAL,
    _errno.ENOEXEC,
    _errno.E2BIG,
    _errno.EBADMSG,
    _errno.ENOTSUP,
    _errno.EOPNOTSUPP,
    _errno.EPROTO,
    _errno.ESRCH,
    _errno.EISDIR,
}
_LIBBPF_ERRNO_BASE = 4000  # libbpf's own codes (bad ELF, bad relocation, ...)


def error_from_code(rc: int, message: str = "", *, program: str | None = None) -> TracerError:
    """The exception for a negative return code ``rc`` of the core.

    ``message`` is the core's text (``tcpevent_last_error()``); when it is
    empty the errno's name and description stand in, never a bare number.
    ``program`` is the custom program path of the failed call, if any.
    """
    code = -rc if rc < 0 else rc
    text = message or f"tcpevent: {describe_errno(code)}"
    if code in (_errno.EPERM, _errno.EACCES):
        return TracerPermissionError(code, text)
    if code == _errno.ESHUTDOWN:
        return TracerClosedError(text)
    if program is not None:
        if code in (_errno.ENOENT, _errno.ENOTDIR) and not os.path.exists(program):
            return ProgramNotFoundError(code, text, program)
        if code in _BAD_PROGRAM or code > _LIBBPF_ERRNO_BASE:
            return InvalidProgramError(code, text, program)
        return ProgramError(code, text, program)
    return TracerError(code, text)
