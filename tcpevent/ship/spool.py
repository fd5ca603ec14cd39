"""The on-disk spool: a bounded, durable FIFO of batches between the
shipper's collecting thread and its sending thread.

Every batch is written here before it is sent (write-ahead) and removed
only once ClickHouse has acknowledged it, so a shipper killed at any moment
loses nothing it had put in a batch: a restarted one finds the batches in
this directory and sends them first, oldest first.

Format: one file per batch, ``<sequence>-<rows>.jsonl.gz``, the sequence
20 decimal digits (files sort in sending order), the body exactly as it is
sent (``JSONEachRow`` lines, gzip), so a batch sent again is byte for byte
the same batch. A file is written as ``.tmp``, fsync'd, renamed, and the
directory fsync'd: a crash leaves either the whole batch or a ``.tmp`` that
the next start removes (a batch never acknowledged, never half-sent).

The bound is on the bytes of the batch files: a batch that would pass it
is refused (``put`` returns False) and the caller counts its rows as
dropped; the oldest data is kept, as the tracer's queue does. One process
at a time: the directory is locked (``flock``) while a Spool holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Batch", "Spool", "SpoolError", "parse_size"]

_FILE = re.compile(r"(\d{20})-(\d+)\.jsonl\.gz")
_LOCK = ".lock"
_SIZE_SUFFIX = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class SpoolError(OSError):
    """The spool directory cannot be used (not writable, held by another shipper)."""


def parse_size(text: str) -> int:
    """``1073741824``, ``512M``, ``1G``, ``64K`` (binary units, optional
    ``B``/``iB``); ``ValueError`` otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not m:
        raise ValueError(f"not a size (such as 1G, 512M, 100000): {text!r}")
    value = int(m[1]) * _SIZE_SUFFIX[m[2].upper()]
    if value <= 0:
        raise ValueError(f"a size must be positive: {text!r}")
    return value


@dataclass
class Batch:
    """One spooled batch: its file, its place and its rows."""

    path: Path
    sequence: int
    rows: int
    size: int
    #: Counted once as spooled: it waited for ClickHouse (docs/fleet.md).
    waited: bool = False

    def body(self) -> bytes:
        return self.path.read_bytes()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A directory of batches, at most ``max_bytes`` of them."""

    def __init__(self, directory: str | os.PathLike[str], max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError(f"the spool's size must be positive, not {max_bytes}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(
                exc.errno, f"cannot use the spool {self.directory}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise SpoolError(
                f"the spool {self.directory} is in use by another shipper (one spool per shipper)"
            ) from None
        self._cond = threading.Condition()
        self._batches: list[Batch] = []
        self._bytes = 0
        self._closed = False
        for path in sorted(self.directory.iterdir()):
            m = _FILE.fullmatch(path.name)
            if m:
                size = path.stat().st_size
                self._batches.append(Batch(path, int(m[1]), int(m[2]), size, waited=True))
                self._bytes += size
            elif path.name.endswith(".tmp"):
                path.unlink()  # a batch whose write a crash cut short: never sent
        self._next = self._batches[-1].sequence + 1 if self._batches else 1

    # ---- the collecting side -----------------------------------------------------

    def put(self, body: bytes, rows: int, waited: bool = False) -> bool:
        """Append a batch durably; False (nothing written) if it does not fit."""
        with self._cond:
            if self._closed:
                raise ValueError("the spool is closed")
            if self._bytes + len(body) > self.max_bytes:
                return False
            sequence = self._next
            self._next += 1
        path = self.directory / f"{sequence:020d}-{rows}.jsonl.gz"
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        _fsync_dir(self.directory)
        with self._cond:
            self._batches.append(Batch(path, sequence, rows, len(body), waited))
            self._batches.sort(key=lambda b: b.sequence)
            self._bytes += len(body)
            self._cond.notify_all()
        return True

    # ---- the sending side ---------------------------------------------------------

    def oldest(self, timeout: float | None = None) -> Batch | None:
        """The oldest batch (left in place), waiting up to ``timeout`` for one."""
        with self._cond:
            self._cond.wait_for(lambda: self._batches or self._closed, timeout)
            return self._batches[0] if self._batches else None

    def remove(self, batch: Batch) -> None:
        """Forget a batch ClickHouse acknowledged."""
        with contextlib.suppress(FileNotFoundError):
            batch.path.unlink()
        _fsync_dir(self.directory)
        with self._cond:
            if batch in self._batches:
                self._batches.remove(batch)
                self._bytes -= batch.size
            self._cond.notify_all()

    def pending(self) -> list[Batch]:
        """The batches now in the spool, oldest first (a snapshot)."""
        with self._cond:
            return list(self._batches)

    def wait_empty(self, timeout: float | None) -> bool:
        """Wait until every batch is gone; whether they are."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._batches, timeout)

    def wake(self) -> None:
        """Wake a thread waiting in ``oldest()`` (to see a stop request)."""
        with self._cond:
            self._cond.notify_all()

    # ---- state -----------------------------------------------------------------

    @property
    def rows(self) -> int:
        with self._cond:
            return sum(b.rows for b in self._batches)

    @property
    def bytes(self) -> int:
        with self._cond:
            return self._bytes

    @property
    def batches(self) -> int:
        with self._cond:
            return len(self._batches)

    def close(self) -> None:
        """Release the directory (the batches stay for the next shipper)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        os.close(self._lock_fd)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
