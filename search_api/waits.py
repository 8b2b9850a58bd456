"""Read-your-writes waits without a thread each: one feed of consumer positions per process.

A search with `after=<token>&wait_ms=N` awaits `PositionFeed.wait_applied`: a coroutine on
the event loop, no worker thread. While anyone waits, one task reads the positions of the
consumers serving search every `POLL_SECONDS` (one small query, in a thread of its own) and
wakes every waiter; with nobody waiting it stops. Waits are capped per caller and in total;
beyond a cap the answer is 429 with Retry-After, at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query
from starlette.requests import Request

from epipe.lsn import lsn_to_str
from epipe.pipeline.status import Lag
from epipe.pipeline.store import ConsumerPosition
from search_api.problems import Problem

MAX_WAIT_MS = 30_000  # the largest `wait_ms` a request may ask for (a larger one is a 400)
POLL_SECONDS = 0.01  # how often the feed reads the positions while anyone waits
RETRY_AFTER_SECONDS = 1

# The read-your-writes parameters of every read that can wait for a token.
After = Annotated[
    str | None,
    Query(
        description="read your writes: answer only once the consumers behind this answer "
        "have applied this token",
        examples=["0/1B5FCD0"],
        max_length=32,
    ),
]
WaitMs = Annotated[
    int,
    Query(ge=0, le=MAX_WAIT_MS, description="how long to wait for `after`, in milliseconds"),
]
log = logging.getLogger("search_api")


@dataclass(frozen=True)
class Reading:
    """One read of the positions: when it started (monotonic), and what it found."""

    started: float
    positions: list[ConsumerPosition] | None  # None: the read failed


class PositionFeed:
    """The applied positions of the consumers serving search, shared by every waiter."""

    def __init__(
        self,
        read: Callable[[], list[ConsumerPosition]],
        *,
        max_waits: int,
        max_waits_per_caller: int,
        poll_seconds: float = POLL_SECONDS,
        view: str = "index",
    ) -> None:
        self._read = read  # blocking: runs in a thread
        self.view = view  # what the consumers keep, for the 409's words
        self.max_waits = max_waits
        self.max_waits_per_caller = max_waits_per_caller
        self._poll_seconds = poll_seconds
        self._waiting: Counter[Any] = Counter()  # per caller
        self._total = 0
        self._latest: Reading | None = None
        self._wakers: set[asyncio.Future[None]] = set()  # waiters, woken after each reading
        self._task: asyncio.Task[None] | None = None
        self.reads = 0  # positions read so far (for tests and curiosity)

    @property
    def waiting(self) -> int:
        return self._total

    async def wait_applied(self, who: Any, token: int, wait_ms: int) -> None:
        """Return once every consumer serving search has applied `token`; 409 with the lag of
        those behind when `wait_ms` runs out (or at once when no such consumer exists); 429
        when `who` or the process already holds as many waits as allowed."""
        if self.waiting >= self.max_waits or self._waiting[who] >= self.max_waits_per_caller:
            raise Problem(
                429,
                f"too many read-your-writes waits at once (at most {self.max_waits_per_caller} "
                f"per caller and {self.max_waits} in all); retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        self._waiting[who] += 1
        self._total += 1
        try:
            await self._wait(token, min(max(wait_ms, 0), MAX_WAIT_MS) / 1000)
        finally:
            self._total -= 1
            self._waiting[who] -= 1
            if not self._waiting[who]:
                del self._waiting[who]

    async def _wait(self, token: int, seconds: float) -> None:
        arrived = time.monotonic()
        deadline = arrived + seconds
        while True:
            reading = self._latest
            fresh = reading is not None and reading.started >= arrived
            if reading is not None and reading.positions is not None:
                serving = reading.positions
                behind = [p for p in serving if p.applied_lsn < token]
                if serving and not behind:
                    return  # positions only move forward: an old reading proves it too
                if fresh and (not serving or time.monotonic() >= deadline):
                    raise _too_late(self.view, token, serving)
            elif fresh:
                raise Problem(503, "the metadata database does not answer")
            self._start_polling()
            # Sleep until the next reading, or until the time is up (then one more reading,
            # made after this wait began, decides). A future of its own, not wait_for: a
            # cancellation (the client went away) is never lost.
            waker = asyncio.get_running_loop().create_future()
            self._wakers.add(waker)
            remaining = deadline - time.monotonic()
            timer = (
                asyncio.get_running_loop().call_later(remaining, _wake, waker)
                if remaining > 0
                else None
            )
            try:
                await waker
            finally:
                self._wakers.discard(waker)
                if timer is not None:
                    timer.cancel()

    def _start_polling(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="positions")

    async def _poll(self) -> None:
        """Read the positions while anyone waits, waking all waiters after each read."""
        while self.waiting:
            started = time.monotonic()
            try:
                positions: list[ConsumerPosition] | None = await asyncio.to_thread(self._read)
            except Exception as exc:  # the waiters answer 503; the next read may succeed
                log.error("cannot read the consumers' positions: %s", exc)
                positions = None
            self.reads += 1
            self._latest = Reading(started, positions)
            wakers, self._wakers = self._wakers, set()
            for waker in wakers:
                _wake(waker)
            await asyncio.sleep(max(0.0, started + self._poll_seconds - time.monotonic()))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _wake(waker: asyncio.Future[None]) -> None:
    if not waker.done():
        waker.set_result(None)


def _too_late(view: str, token: int, serving: list[ConsumerPosition]) -> Problem:
    if not serving:
        return Problem(409, f"no {view} consumer is running", token=lsn_to_str(token), lag=[])
    lag = [
        Lag(p.name, p.applied_lsn, token - p.applied_lsn, p.lag_seconds).as_json()
        for p in serving
        if p.applied_lsn < token
    ]
    return Problem(
        409,
        f"the {view} has not applied {lsn_to_str(token)} yet",
        token=lsn_to_str(token),
        lag=lag,
    )


async def unless_gone(request: Request, waiting: Awaitable[None]) -> None:
    """Await `waiting` unless the client closes the connection first: then stop waiting
    (freeing the caller's wait) and answer 499, which nobody reads."""
    wait = asyncio.ensure_future(waiting)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({wait, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (wait, gone):
            task.cancel()
    if wait.done() and not wait.cancelled():
        wait.result()  # raises its 409, 429 or 503
        return
    await asyncio.gather(wait, return_exceptions=True)
    raise Problem(499, "the client closed the connection")


async def _disconnected(request: Request) -> None:
    """Return once the client has gone (the request's body has been read by now)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
