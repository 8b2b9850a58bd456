"""Sinks: where a consumer applies events (a search index, the Hive metastore, a file).

A sink batches with `add` and makes the batch durable with `flush`; the consumer commits
its bus position only after `flush` returned. An event the sink can never apply goes to the
dead letters: `add` raises `Rejected` for it, or `flush` returns it with the reason (when
only the engine can tell). `flush` raising `Unavailable` makes the consumer wait and retry;
any other error stops the consumer, which then commits nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from epipe.errors import EpipeError
from epipe.events import Event


class Rejected(EpipeError):
    """This event cannot be applied, now or later: dead-letter it and go on."""


class Unavailable(EpipeError):
    """The view cannot be reached now (its server is down or restarting): the consumer keeps
    the batch, says why in `epipe status`, and calls `flush` again after a pause."""


# What cannot be applied, and why: an event, or None for a change the sink found itself
# (a view reconciled with the namespace, not told by one event).
Rejection = tuple[Event | None, str]


class Sink(Protocol):
    def add(self, event: Event) -> None: ...

    def flush(self) -> list[Rejection]: ...

    def close(self) -> None: ...


Progress = Callable[[int, int], None]  # (done, total)


@runtime_checkable
class Rebuildable(Protocol):
    """A sink whose whole view can be rebuilt from the database on request (`epipe
    reindex` while the pipeline runs); the consumer serves such requests between batches."""

    def rebuild(self, progress: Progress) -> str:
        """Rebuild the view; a one-line summary of what was done."""


@runtime_checkable
class Positioned(Protocol):
    """A sink whose view records the position it holds (so that a view lost, replaced or
    restored from an older copy is found at the next start)."""

    def applied(self, lsn: int) -> None:
        """Everything up to `lsn` is applied and flushed (called after each batch)."""
