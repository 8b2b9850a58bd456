"""PostgresSource: the source port over PostgreSQL's change log.

One replication slot (`slot.ReplicationSlot`) streams pgoutput; each message is decoded and
translated into domain events (pure: `pgoutput`, `translate`); rows that existed before the
slot come in through the same stream by watermarked chunks (`backfill`), read while the
stream is idle. The position moves at each commit read, and, while idle outside a
transaction, to the server's position from a keepalive (so the slot and the consumers move
on when only uncaptured tables change).
"""

from __future__ import annotations

import logging
import time

from epipe.events import Event
from epipe.pipeline.store import PipelineStore
from epipe.source import Batch
from epipe.source import pgoutput as pg
from epipe.source.backfill import WATERMARK, Backfill
from epipe.source.slot import ReplicationSlot
from epipe.source.translate import CAPTURED, Translator

_ROW_CHANGES = frozenset(b"IUD")

log = logging.getLogger(__name__)


class PostgresSource:
    def __init__(
        self,
        dsn: str,
        store: PipelineStore,
        *,
        slot: str = "epipe",
        publication: str = "epipe",
        backfill: bool = False,
        backfill_chunk: int | None = None,
        heartbeat_interval: float = 1.0,
        tables: tuple[str, ...] = CAPTURED,
    ) -> None:
        self.slot = ReplicationSlot(dsn, slot=slot, publication=publication, tables=tables)
        self.translator = Translator(tables)
        self._store = store
        self._force_backfill = backfill
        self._chunk_rows = dict.fromkeys(tables, backfill_chunk) if backfill_chunk else None
        self._backfill: Backfill | None = None
        self._heartbeat_interval = heartbeat_interval
        self._last_keepalive = 0.0
        self._in_transaction = False
        self._position = 0

    def open(self) -> int:
        slot = self.slot
        setup = slot.inspect()
        self._backfill = Backfill(
            self._store, slot.emit_message, slot.control, slot.slot, chunk_rows=self._chunk_rows
        )
        if setup.publication_gap and not setup.new_slot:
            log.warning(
                "publication %r was missing or incomplete: the changes written meanwhile "
                "were skipped; resynchronising every consumer by a backfill",
                slot.publication,
            )
        if setup.new_slot or setup.publication_gap or self._force_backfill:
            # recorded before the repair: a crash in between finds the gap again
            self._backfill.start(slot.tables)
        slot.repair()
        slot.start()
        self._position = slot.confirmed
        return self._position

    def read(self, max_events: int, timeout: float) -> Batch:
        events: list[Event] = []
        records = 0
        read, handle = self.slot.read, self._handle
        while len(events) < max_events:
            payload = read()
            if payload is None:
                break
            records += 1
            events.extend(handle(payload))
        else:
            return Batch(events, self._position, records)
        if not events:
            self._idle(timeout)
        return Batch(events, self._position, records)

    def _handle(self, payload: bytes) -> list[Event]:
        backfill = self._backfill
        assert backfill is not None, "open() first"
        if payload[0] in _ROW_CHANGES:  # the hot path: straight from bytes to events
            events = self.translator.feed_raw(payload)
            if events and backfill.chunk is not None:
                backfill.observe(events)
            return events
        message = pg.decode(payload)
        kind = type(message)
        if kind is pg.Message and message.prefix == WATERMARK:  # type: ignore[union-attr]
            events = backfill.on_message(message, self.translator)  # type: ignore[arg-type]
        else:
            events = self.translator.feed(message)
        if events:
            backfill.observe(events)
        if kind is pg.Begin:
            self._in_transaction = True
        elif kind is pg.Commit:
            self._in_transaction = False
            self._position = message.end_lsn  # type: ignore[union-attr]
            backfill.on_commit(self._position)
        return events

    def _idle(self, timeout: float) -> None:
        """Nothing to read: learn the server's position now and then, read a backfill chunk
        if one is due, else wait for the stream."""
        slot = self.slot
        if not self._in_transaction:
            now = time.monotonic()
            if now - self._last_keepalive >= self._heartbeat_interval:
                self._last_keepalive = now
                # the reply to the keepalive asked for last time: everything before it is read
                self._position = max(self._position, slot.wal_end)
                slot.keepalive(reply=True)
                self._check_publication()
            backfill = self._backfill
            if backfill is not None and backfill.pending:
                backfill.read_chunk()
                if not backfill.pending:
                    return
                timeout = min(timeout, 0.01)  # transactions in flight hold the chunk's read
        slot.wait(timeout)

    def _check_publication(self) -> None:
        """A publication dropped (or narrowed) under a running stream makes pgoutput skip the
        changes without a word: repair it, and resynchronise by a backfill."""
        slot, backfill = self.slot, self._backfill
        if slot.publication_intact() or backfill is None:
            return
        log.warning(
            "publication %r was dropped or altered while streaming: the changes written "
            "meanwhile were skipped; resynchronising every consumer by a backfill",
            slot.publication,
        )
        backfill.start(slot.tables)
        slot.repair()

    def confirm(self, position: int) -> None:
        if position <= self.slot.confirmed:
            self.slot.keepalive()
            return
        self.slot.confirm(position)
        if self._backfill is not None:
            self._backfill.on_confirmed(position)

    def keepalive(self) -> None:
        self.slot.keepalive()

    def close(self) -> None:
        self.slot.close()
        self._store.close()  # handed over by the composition root: the source owns it
