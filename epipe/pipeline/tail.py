"""Tailer: the change log -> the bus, confirming the slot only past what the bus accepted.

Commit order of every batch: publish, flush (the bus durably accepted it), then confirm
the slot at the end of the last complete transaction. A flush that fails or never completes
leaves the slot where it was, so a restart delivers those events again: at least once,
never lost. Large transactions flow through in batches (memory is bounded by
`max_unflushed` events), and are confirmed when their commit has been flushed.

When the stream is idle the tailer publishes a heartbeat carrying the position up to which
every change has been published (the end of the last transaction, or the server's position
from a keepalive), so consumers' positions and the slot move on even when only uncaptured
tables change.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from epipe import events as ev
from epipe.bus import Bus, BusError
from epipe.events import Event
from epipe.pipeline.store import PipelineStore
from epipe.source import pgoutput as pg
from epipe.source.backfill import WATERMARK, Backfill
from epipe.source.postgres import PostgresSource
from epipe.source.translate import Translator

_ROW_CHANGES = frozenset(b"IUD")


@dataclass
class TailerStats:
    messages: int = 0
    events: int = 0
    transactions: int = 0
    heartbeats: int = 0
    flushes: int = 0


class Tailer:
    def __init__(
        self,
        source: PostgresSource,
        bus: Bus,
        *,
        backfill: Backfill | None = None,
        store: PipelineStore | None = None,
        heartbeat_interval: float = 1.0,
        publish_batch: int = 2_000,
        max_unflushed: int = 20_000,
        flush_interval: float = 0.05,
        flush_timeout: float = 120.0,
    ) -> None:
        self.source = source
        self.bus = bus
        self.backfill = backfill
        self.store = store  # where the counters go, for /metrics
        self.translator = Translator(source.tables)
        self.stats = TailerStats()
        self._heartbeat_interval = heartbeat_interval
        self._publish_batch = publish_batch
        self._max_unflushed = max_unflushed
        self._flush_interval = flush_interval
        self._flush_timeout = flush_timeout
        self._pending: list[Event] = []
        self._unflushed = 0  # published, not yet flushed
        self._in_transaction = False
        self._last_end = source.confirmed  # end of the last transaction read
        self._announced = source.confirmed  # the last heartbeat's position
        self._last_flush = time.monotonic()
        self._last_keepalive = 0.0
        self._last_report = time.monotonic()
        self._reported = TailerStats()

    def run(self, stop: threading.Event) -> None:
        """Stream until `stop` is set; then flush and confirm what was read."""
        source = self.source
        while not stop.is_set():
            payload = source.read()
            if payload is not None:
                self.handle(payload)
            else:
                self.idle()
                source.wait(0.05)
        self._publish()
        if not self._in_transaction:
            self._flush_and_confirm()

    def handle(self, payload: bytes) -> None:
        """One message of the stream."""
        self.stats.messages += 1
        if payload[0] in _ROW_CHANGES:  # the hot path: straight from bytes to events
            kind: type = pg.Insert
            events = self.translator.feed_raw(payload)
        else:
            message = pg.decode(payload)
            kind = type(message)
            if kind is pg.Message and message.prefix == WATERMARK and self.backfill:  # type: ignore[union-attr]
                events = self.backfill.on_message(message, self.translator)  # type: ignore[arg-type]
            else:
                events = self.translator.feed(message)
        if events:
            if self.backfill is not None:
                self.backfill.observe(events)
            self._pending.extend(events)
            if len(self._pending) >= self._publish_batch:
                self._publish()
        if kind is pg.Begin:
            self._in_transaction = True
        elif kind is pg.Commit:
            self._in_transaction = False
            self._last_end = message.end_lsn  # type: ignore[union-attr]
            self.stats.transactions += 1
            if self.backfill is not None:
                self.backfill.on_commit(self._last_end)
            if (
                self._unflushed + len(self._pending) >= self._max_unflushed
                or time.monotonic() - self._last_flush >= self._flush_interval
            ):
                self._publish()
                self._flush_and_confirm()
        elif self._unflushed >= self._max_unflushed:
            self._flush()  # a large transaction: bound memory, confirm at its commit

    def idle(self) -> None:
        """Nothing to read: flush, heartbeat, and maybe read a backfill chunk."""
        self._publish()
        if self._in_transaction:
            if self._unflushed:
                self._flush()
            return
        if self._unflushed or self._last_end > self.source.confirmed:
            self._flush_and_confirm()
        if self._last_end > self._announced:  # events carry commit LSNs; tokens are ends
            self._heartbeat(self._last_end)
        now = time.monotonic()
        if now - self._last_keepalive >= self._heartbeat_interval:
            self._last_keepalive = now
            wal_end = self.source.wal_end  # from the keepalive asked for last time
            if wal_end > self._announced:
                self._heartbeat(wal_end)
            self.source.keepalive(reply=True)
        if self.backfill is not None and self.backfill.pending:
            self.backfill.read_chunk()

    # -- plumbing ----------------------------------------------------------------------------

    def _publish(self) -> None:
        if self._pending:
            self.bus.publish(self._pending)
            self.stats.events += len(self._pending)
            self._unflushed += len(self._pending)
            self._pending = []

    def _flush(self) -> None:
        deadline = time.monotonic() + self._flush_timeout
        while not self.bus.flush(timeout=1.0):
            self.source.keepalive()  # the server must not time the stream out meanwhile
            if time.monotonic() > deadline:
                raise BusError(f"the bus did not accept events within {self._flush_timeout} s")
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.stats.flushes += 1

    def _flush_and_confirm(self) -> None:
        self._flush()
        self._confirm(self._last_end)
        self._report()

    def _report(self) -> None:
        """Add the counts since the last report to the stage counters, at most once a second."""
        now = time.monotonic()
        if self.store is None or now - self._last_report < 1.0:
            return
        stats, last = self.stats, self._reported
        self.store.add_counts("source", stats.messages - last.messages, stats.events - last.events)
        self._reported = TailerStats(**vars(stats))
        self._last_report = now

    def _confirm(self, lsn: int) -> None:
        self.source.confirm(lsn)
        if self.backfill is not None:
            self.backfill.on_confirmed(lsn)

    def _heartbeat(self, lsn: int) -> None:
        """Everything before `lsn` is published: say so, then confirm it."""
        now = datetime.now(UTC).isoformat()
        self.bus.publish([Event(ev.HEARTBEAT, lsn, 0, 0, now, None, {})])
        self._unflushed += 1
        self._flush()
        self._announced = lsn
        self.stats.heartbeats += 1
        self._confirm(lsn)
        self._report()
