"""Tailer: a source -> the bus, confirming the source only past what the bus accepted.

Commit order: publish, flush (the bus durably accepted everything published), then confirm
the source's position. A flush that fails or never completes leaves the position where it
was, so a restart delivers those events again: at least once, never lost. Memory is bounded
by `max_unflushed` events, whatever the size of a transaction: past it the tailer flushes
without confirming; the position moves only at the end of a transaction.

Only that bound (and stopping) makes the tailer wait for the bus. Otherwise it asks, at most
every `flush_interval` and whenever the source is idle, whether the bus has taken it all
yet (a flush with no wait), and reads on if not: an embedded consumer behind on a backlog
then never holds the tailer, whose reading overlaps its applying (waiting for each flush
made the two take turns, and the consumer's batches small).

When the source is idle the tailer publishes a heartbeat carrying the source's position,
so consumers' positions (and the source) move on even when only uncaptured tables change.
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
from epipe.source import Batch, Source


@dataclass
class TailerStats:
    records: int = 0
    events: int = 0
    heartbeats: int = 0
    flushes: int = 0


class Tailer:
    def __init__(
        self,
        source: Source,
        bus: Bus,
        *,
        store: PipelineStore | None = None,
        publish_batch: int = 2_000,
        max_unflushed: int = 20_000,
        flush_interval: float = 0.05,
        flush_timeout: float = 120.0,
        idle_wait: float = 0.05,
    ) -> None:
        self.source = source
        self.bus = bus
        self.store = store  # where the counters go, for /metrics
        self.stats = TailerStats()
        self._publish_batch = publish_batch
        self._max_unflushed = max_unflushed
        self._flush_interval = flush_interval
        self._flush_timeout = flush_timeout
        self._idle_wait = idle_wait
        self._unflushed = 0  # published, not yet flushed
        self._position = 0  # the source's position as of the last batch
        self._confirmed = 0
        self._announced = 0  # the last heartbeat's position
        self._last_flush = time.monotonic()
        self._last_report = time.monotonic()
        self._reported = TailerStats()

    def open(self) -> None:
        """Open the source; it resumes at its last confirmed position."""
        self._position = self._confirmed = self._announced = self.source.open()

    @property
    def confirmed(self) -> int:
        """The last position confirmed to the source."""
        return self._confirmed

    def run(self, stop: threading.Event) -> None:
        """Tail until `stop` is set; then flush and confirm what was read."""
        while not stop.is_set():
            self.handle(self.source.read(self._publish_batch, self._idle_wait))
        self._flush_and_confirm()

    def handle(self, batch: Batch) -> None:
        """One batch from the source."""
        self.stats.records += batch.records
        self._position = max(self._position, batch.position)
        if not batch.events:
            self.idle()
            return
        self.bus.publish(batch.events)
        self.stats.events += len(batch.events)
        self._unflushed += len(batch.events)
        if self._unflushed >= self._max_unflushed:
            self._flush_and_confirm()
        elif (
            self._position > self._confirmed
            and time.monotonic() - self._last_flush >= self._flush_interval
        ):
            self._confirm_if_flushed()

    def idle(self) -> None:
        """Nothing new: confirm what was read once it is durable, and announce the
        position."""
        if self._unflushed or self._position > self._confirmed:
            self._confirm_if_flushed()
        if self._position > self._announced:
            self._heartbeat(self._position)

    # -- plumbing ----------------------------------------------------------------------------

    def _flush(self) -> None:
        deadline = time.monotonic() + self._flush_timeout
        while not self.bus.flush(timeout=1.0):
            self.source.keepalive()  # the stream must not time out meanwhile
            if time.monotonic() > deadline:
                raise BusError(f"the bus did not accept events within {self._flush_timeout} s")
        self._flushed()

    def _flush_and_confirm(self) -> None:
        self._flush()
        self._confirm_read()

    def _confirm_if_flushed(self) -> None:
        """Confirm what was read if the bus has made it all durable already; never wait."""
        if not self.bus.flush(timeout=0):
            self._last_flush = time.monotonic()  # asked: the next question after the interval
            return
        self._flushed()
        self._confirm_read()

    def _flushed(self) -> None:
        self._unflushed = 0
        self._last_flush = time.monotonic()
        self.stats.flushes += 1

    def _confirm_read(self) -> None:
        self._confirm(self._position)
        self._report()

    def _confirm(self, position: int) -> None:
        """After a flush: everything read is durable (the source may let go of it)."""
        self.source.confirm(position)
        self._confirmed = max(self._confirmed, position)

    def _report(self) -> None:
        """Add the counts since the last report to the stage counters, at most once a second."""
        now = time.monotonic()
        if self.store is None or now - self._last_report < 1.0:
            return
        stats, last = self.stats, self._reported
        self.store.add_counts("source", stats.records - last.records, stats.events - last.events)
        self._reported = TailerStats(**vars(stats))
        self._last_report = now

    def _heartbeat(self, position: int) -> None:
        """Everything before `position` is published: say so, then confirm it."""
        now = datetime.now(UTC).isoformat()
        self.bus.publish([Event(ev.HEARTBEAT, position, 0, 0, now, None, {})])
        self._unflushed += 1
        self._announced = position
        self.stats.heartbeats += 1
        self._confirm_if_flushed()
