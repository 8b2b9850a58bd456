"""Supervisor: start the pipeline afresh after a failure that may pass (crash-only).

A part of the runner that fails stops every part (epipe/pipeline/runner.py). Nothing was
confirmed past what the consumers applied, so tearing everything down and starting again
loses nothing: the slot and each consumer resume at their positions. The supervisor does
that. On a failure that waiting may cure — the database unreachable or restarted, the bus
down, the index unable to write (a full or read-only disk) — it reports one line, waits
(exponential backoff) and starts a new runner; on any other error it stops and raises it.
A consumer's view that cannot be reached (a metastore down) is such a failure too.
A signal stops the current attempt (which flushes what it read) and the supervisor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import psycopg
import psycopg2

from epipe.bus import BusError
from epipe.errors import DatabaseError, EpipeError, MigrationError
from epipe.index.engine import EngineError
from epipe.sink import Unavailable
from epipe.source import SourceError

# A lost or refused connection: the server stopped, restarted or is unreachable.
CONNECTION_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError)
# SQLSTATE classes that pass: connection exception, insufficient resources, operator
# intervention (a shutdown), system error
PASSING_STATES = ("08", "53", "57", "58")


class Attempt(Protocol):
    """One run of the pipeline (a Runner): until `stop` is set, or raise."""

    def run(self, stop: threading.Event) -> None: ...


@dataclass
class Backoff:
    """Seconds to wait before the next attempt: `first`, doubling up to `longest`; back to
    `first` after an attempt that ran `healthy` seconds."""

    first: float = 0.5
    longest: float = 30.0
    healthy: float = 60.0
    _next: float = 0.0

    def delay(self, ran: float) -> float:
        if ran >= self.healthy or self._next == 0.0:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.longest)
        return delay


def retryable(exc: BaseException) -> bool:
    """Whether waiting may cure `exc` (see the module's docstring)."""
    if isinstance(exc, BusError | EngineError | Unavailable):
        return True
    if isinstance(exc, SourceError) and exc.passing:
        return True
    if isinstance(exc, MigrationError) or not isinstance(exc, Exception):
        return False
    return any(_lost_connection(e) for e in _chain(exc))


def _lost_connection(exc: BaseException) -> bool:
    """A driver's error that says the database went away. The adapters wrap them in their
    own errors (`from None`), the driver's stays in the chain as the context."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, psycopg.Error):
        return (exc.sqlstate or "")[:2] in PASSING_STATES
    if isinstance(exc, psycopg2.Error):  # the replication stream (epipe/source/slot.py)
        # without a SQLSTATE the client gave up on the connection ("no COPY in progress")
        return exc.pgcode is None or exc.pgcode[:2] in PASSING_STATES
    return False


def describe(exc: BaseException) -> str:
    """`exc` in one line: what failed."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, EpipeError):
        return line
    if _lost_connection(exc):
        return f"lost the metadata database: {line}"
    return f"{type(exc).__name__}: {line}"


class Supervisor:
    def __init__(
        self,
        start: Callable[[bool], Attempt],
        *,
        report: Callable[[str], None],
        backoff: Backoff | None = None,
    ) -> None:
        self._start = start  # (first attempt?) -> a new runner, with new connections
        self._report = report
        self._backoff = backoff or Backoff()
        self._stopped = threading.Event()
        self._attempt = threading.Event()
        self.attempts = 0

    def stop(self) -> None:
        """End the current attempt and the supervisor (safe from a signal handler)."""
        self._stopped.set()
        self._attempt.set()

    def run(self) -> None:
        """Attempts until `stop`; raise an error that waiting cannot cure (a database error
        as DatabaseError, never the driver's own)."""
        while not self._stopped.is_set():
            self._attempt = threading.Event()
            if self._stopped.is_set():  # stopped while the event was replaced
                return
            started = time.monotonic()
            self.attempts += 1
            try:
                self._start(self.attempts == 1).run(self._attempt)
                return
            except Exception as exc:
                if self._stopped.is_set() or not retryable(exc):
                    if isinstance(exc, psycopg.Error | psycopg2.Error):
                        raise DatabaseError(describe(exc)) from None
                    raise
                delay = self._backoff.delay(time.monotonic() - started)
                self._report(f"{describe(exc)}; retrying in {delay:g} s")
            self._stopped.wait(delay)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
