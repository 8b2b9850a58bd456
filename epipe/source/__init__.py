"""The source port: a change stream that yields batches of domain events and takes
confirmations. The tailer (epipe/pipeline/tail.py) is its consumer.

Two adapters, chosen by EPIPE_SOURCE in the composition root:
- `PostgresSource` (`postgres`): PostgreSQL's change log through a logical replication slot
  (`slot`), pgoutput decoded (`pgoutput`) and translated to events (`translate`), both pure,
  with rows that predate the slot brought in by `backfill`;
- `DebeziumSource` (`debezium`): Debezium's embedded engine streaming the same slot, its
  change events translated to the same domain events (`envelope`, pure).
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

from epipe.errors import EpipeError
from epipe.events import Event


class SourceError(EpipeError):
    """The change log cannot be read (no slot, lost connection, wrong configuration)."""

    def __init__(self, message: str, *, passing: bool = False) -> None:
        super().__init__(message)
        self.passing = passing  # waiting may cure it: the database went away


class Batch(NamedTuple):
    """Events read since the last batch, in commit order, and the source's position: every
    change committed before `position` is in this batch or an earlier one. Events of a
    transaction still being read may follow `position` (a large transaction arrives in
    several batches); it only moves past a transaction once all of it has been read."""

    events: list[Event]
    position: int
    records: int = 0  # records read from the change log for these events (for the metrics)


class Source(Protocol):
    """A change stream. `open` first; then `read` until done; `confirm` positions whose
    events are durably handed on, so a restart resumes after them and never before the
    last confirmed position."""

    def open(self) -> int:
        """Prepare what the stream needs and start it at the last confirmed position,
        which it returns."""

    def read(self, max_events: int, timeout: float) -> Batch:
        """The next events (at most about `max_events`; none when idle after waiting up to
        `timeout` seconds) with the position they reach."""

    def confirm(self, position: int) -> None:
        """Everything read so far is durably handed on, and so every change before
        `position`. Called after each flush, also with a position already confirmed."""

    def keepalive(self) -> None:
        """The reader is alive but busy (a long flush must not let the stream time out)."""

    def close(self) -> None: ...
