"""The shipper: events into batches, batches into the spool, the spool into
ClickHouse, in order, each batch removed only once the server took it.

Two threads: the caller's (``add``/``flush``/``ship``: rows are encoded and
batched there, and each full or due batch is written to the spool) and the
sender, which sends the spool's oldest batch until ClickHouse acknowledges
it, retrying with a backoff while the server is down, slow or refusing.
Nothing is ever given up but what the spool cannot hold, and that is
counted (``dropped``) and logged.
"""

from __future__ import annotations

import gzip
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from tcpevent.event import TcpEvent
from tcpevent.ship.clickhouse import ClickHouseClient, ClickHouseError
from tcpevent.ship.identity import HostIdentity
from tcpevent.ship.schema import DEFAULT_TABLE, RowEncoder, create_table_sql, quote_table
from tcpevent.ship.spool import Batch, Spool
from tcpevent.tracer import Tracer

__all__ = [
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_BATCH_SECONDS",
    "ShipStats",
    "Shipper",
]

#: A batch is sent when it has this many rows, or is this old: about one
#: insert a second from a busy host, as ClickHouse likes them (each insert
#: makes a part that merges later: many small ones cost the server).
DEFAULT_BATCH_ROWS = 10_000
DEFAULT_BATCH_SECONDS = 1.0
#: The wait between two attempts at a batch grows from the first to the
#: last, doubling after each failure; back to the first after a success.
RETRY_FIRST = 0.5
RETRY_MAX = 30.0
#: A failure that goes on is logged again this often (a new reason at once).
REPEAT_LOG = 60.0
#: Events taken from the tracer per call, and the longest wait for them
#: (the check for a stop request).
DEQUEUE_BATCH = 4096
POLL_INTERVAL = 0.1
#: gzip level 1: a third of the CPU of the default level for JSON rows of
#: this shape, at a size a little larger.
GZIP_LEVEL = 1


@dataclass(frozen=True)
class ShipStats:
    """The shipper's counters since it started (rows are events)."""

    sent: int
    """Rows ClickHouse acknowledged."""
    spooled: int
    """Rows that had to wait in the spool for ClickHouse: in it when an
    attempt failed, or written to it while ClickHouse was failing."""
    retried: int
    """Failed attempts at sending a batch (each one is tried again)."""
    dropped: int
    """Rows lost because the spool was full (or could not be written)."""
    spool_rows: int
    """Rows in the spool now, waiting or being sent."""
    spool_bytes: int
    spool_batches: int
    up: bool
    """Whether the last attempt at a batch succeeded (True before any)."""
    last_error: str
    """Why the last failed attempt failed; "" if none yet."""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def line(self) -> str:
        """The counters as one log line."""
        return (
            f"sent {self.sent}, spooled {self.spooled}, retried {self.retried}, "
            f"dropped {self.dropped}; spool {self.spool_rows} rows in "
            f"{self.spool_batches} batches, {self.spool_bytes} bytes"
        )


def _stderr(line: str) -> None:
    print(f"tcpevent ship: {line}", file=sys.stderr, flush=True)


class Shipper:
    """Ships events to a ClickHouse table through a spool.

    ``add()`` events (from any source: a :class:`~tcpevent.Tracer` of the
    caller's, or :meth:`ship`, which runs one's loop), and call
    :meth:`flush_due` now and then (``ship`` does) so that a quiet host's
    rows go out after ``batch_seconds``. ``close()`` writes the open batch,
    waits a while for the spool to empty, and stops; what is left in the
    spool goes out when a shipper next starts on the same directory.
    ``add``/``flush``/``ship`` belong to one thread; ``stats`` to any.
    """

    def __init__(
        self,
        client: ClickHouseClient,
        spool: Spool,
        table: str = DEFAULT_TABLE,
        *,
        identity: HostIdentity | None = None,
        batch_rows: int = DEFAULT_BATCH_ROWS,
        batch_seconds: float = DEFAULT_BATCH_SECONDS,
        create_table: bool = True,
        log: Callable[[str], None] = _stderr,
    ) -> None:
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, not {batch_rows}")
        if not batch_seconds > 0:
            raise ValueError(f"batch_seconds must be positive, not {batch_seconds}")
        self.client = client
        self.spool = spool
        self.table = table
        self._table_sql = quote_table(table)
        self._create_sql = create_table_sql(table) if create_table else None
        self.encoder = RowEncoder(identity or HostIdentity.of_this_host())
        self.batch_rows = batch_rows
        self.batch_seconds = batch_seconds
        self._log = log
        self._lines: list[str] = []
        self._opened = 0.0  # monotonic time of the open batch's first row
        self._lock = threading.Lock()
        self._sent = self._spooled = self._retried = self._dropped = 0
        self._failing = False
        self._last_error = ""
        self._last_drop_log = 0.0
        self._stop = threading.Event()
        self._sender: threading.Thread | None = None

    # ---- the caller's thread ------------------------------------------------------

    def start(self) -> Shipper:
        """Start sending (what the spool already holds first)."""
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_loop, name="tcpevent-ship")
            self._sender.daemon = True
            self._sender.start()
        return self

    def add(self, events: Iterable[TcpEvent]) -> None:
        """Encode events into the open batch, spooling each batch that fills."""
        line = self.encoder.line
        for ev in events:
            if not self._lines:
                self._opened = time.monotonic()
            self._lines.append(line(ev))
            if len(self._lines) >= self.batch_rows:
                self.flush()

    def due_in(self) -> float | None:
        """Seconds until the open batch is due; None when it is empty."""
        if not self._lines:
            return None
        return max(0.0, self._opened + self.batch_seconds - time.monotonic())

    def flush_due(self) -> None:
        """Spool the open batch if it is ``batch_seconds`` old."""
        if self._lines and time.monotonic() - self._opened >= self.batch_seconds:
            self.flush()

    def flush(self) -> None:
        """Spool the open batch now (if it has rows)."""
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        body = gzip.compress("".join(lines).encode(), compresslevel=GZIP_LEVEL, mtime=0)
        with self._lock:
            waited = self._failing
        try:
            kept = self.spool.put(body, len(lines), waited=waited)
            reason = "the spool is full"
        except OSError as exc:
            kept, reason = False, f"the spool cannot be written: {exc.strerror or exc}"
        with self._lock:
            if not kept:
                self._dropped += len(lines)
            elif waited:
                self._spooled += len(lines)
        if not kept:
            now = time.monotonic()
            if now - self._last_drop_log >= REPEAT_LOG or not self._last_drop_log:
                self._last_drop_log = now
                self._log(
                    f"{reason} ({self.spool.bytes} of {self.spool.max_bytes} bytes): "
                    f"dropped a batch of {len(lines)} rows ({self.stats.dropped} dropped in all)"
                )

    def ship(self, tracer: Tracer, stop: Callable[[], bool], log_interval: float = 0) -> None:
        """Take the tracer's events until ``stop()`` is true, then what it
        still had queued; the open batch is spooled before returning.
        ``log_interval`` > 0 logs the counters that often."""
        next_log = time.monotonic() + log_interval
        while not stop():
            due = self.due_in()
            timeout = POLL_INTERVAL if due is None else min(POLL_INTERVAL, due)
            self.add(tracer.dequeue_batch(DEQUEUE_BATCH, timeout=timeout))
            self.flush_due()
            if log_interval > 0 and time.monotonic() >= next_log:
                next_log += log_interval
                self._log(self.stats.line())
        # What was queued when the stop came goes too, no more.
        for _ in range(tracer.stats.queued // DEQUEUE_BATCH + 1):
            events = tracer.dequeue_batch(DEQUEUE_BATCH, timeout=0)
            if not events:
                break
            self.add(events)
        self.flush()

    def close(self, drain_timeout: float = 5.0) -> bool:
        """Spool the open batch, give the sender up to ``drain_timeout``
        seconds to empty the spool, stop it; whether the spool is empty.
        The spool itself stays open (its owner closes it)."""
        self.flush()
        empty = self.spool.wait_empty(drain_timeout) if self._sender else False
        self._stop.set()
        self.spool.wake()
        if self._sender is not None:
            # A request under way ends within the client's timeout; its batch
            # stays in the spool unless acknowledged.
            self._sender.join(self.client.timeout + 5)
            self._sender = None
        return empty

    def __enter__(self) -> Shipper:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- state --------------------------------------------------------------------

    @property
    def stats(self) -> ShipStats:
        spool = self.spool
        with self._lock:
            return ShipStats(
                sent=self._sent,
                spooled=self._spooled,
                retried=self._retried,
                dropped=self._dropped,
                spool_rows=spool.rows,
                spool_bytes=spool.bytes,
                spool_batches=spool.batches,
                up=not self._failing,
                last_error=self._last_error,
            )

    # ---- the sender thread ----------------------------------------------------------

    def _send_loop(self) -> None:
        delay = RETRY_FIRST
        table_ready = self._create_sql is None
        last_log = 0.0
        while not self._stop.is_set():
            batch = self.spool.oldest(timeout=POLL_INTERVAL * 5)
            if batch is None:
                continue
            try:
                if not table_ready:
                    assert self._create_sql is not None
                    self.client.execute(self._create_sql)
                    table_ready = True
                self.client.insert(self._table_sql, batch.body())
            except (ClickHouseError, OSError) as exc:
                # The table is created again before the next attempt: it may
                # be what went missing (dropped, or a new server).
                table_ready = self._create_sql is None
                message = str(exc)
                now = time.monotonic()
                repeat = message == self._last_error and now - last_log < REPEAT_LOG
                self._failed(batch, message)
                if not repeat:
                    last_log = now
                    self._log(
                        f"{message}; {self.spool.rows} rows kept in the spool, "
                        f"retrying (every {delay:g} s, then up to {RETRY_MAX:g} s)"
                    )
                self._stop.wait(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            self.spool.remove(batch)
            delay = RETRY_FIRST
            with self._lock:
                self._sent += batch.rows
                recovered, self._failing = self._failing, False
            if recovered:
                self._log(
                    f"ClickHouse at {self.client.where} takes batches again; "
                    f"{self.spool.rows} rows left in the spool"
                )

    def _failed(self, batch: Batch, message: str) -> None:
        # Every batch in the spool now waits for ClickHouse: this one, and
        # those queued behind it (each counted once).
        waiting = self.spool.pending()
        with self._lock:
            self._retried += 1
            self._failing = True
            self._last_error = message
            for b in waiting if batch in waiting else [batch, *waiting]:
                if not b.waited:
                    b.waited = True
                    self._spooled += b.rows
