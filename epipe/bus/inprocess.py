"""InProcessBus: the bus of embedded mode, between threads of one process.

Every subscription gets every event, in publish order. `flush` returns True once every
subscription has committed everything published before it: "durably accepted" means
"applied by every embedded consumer", so the source may then confirm the slot. A failed
subscription makes `flush` raise, so the source never confirms past what it did not apply.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

from epipe.bus import BusError, OnInvalid
from epipe.events import Event


class InProcessBus:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._subscriptions: list[InProcessSubscription] = []
        self._published = 0  # events published so far: the offset of the next one

    def subscribe(self, name: str, on_invalid: OnInvalid | None = None) -> InProcessSubscription:
        """A new subscription; it receives events published from now on (as objects: none
        can be invalid)."""
        with self._cond:
            subscription = InProcessSubscription(name, self._cond, self._published)
            self._subscriptions.append(subscription)
            return subscription

    def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._cond:
            for subscription in self._subscriptions:
                subscription.queue.extend(events)
            self._published += len(events)
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._published
            while True:
                for subscription in self._subscriptions:
                    if subscription.error is not None:
                        raise BusError(
                            f"consumer {subscription.name} failed: {subscription.error}"
                        ) from subscription.error
                    if subscription.closed and subscription.committed < target:
                        raise BusError(f"consumer {subscription.name} stopped before applying")
                if all(s.committed >= target for s in self._subscriptions):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    def close(self) -> None:
        pass


class InProcessSubscription:
    def __init__(self, name: str, cond: threading.Condition, start: int) -> None:
        self.name = name
        self.queue: deque[Event] = deque()
        self.committed = start  # offset up to which events are applied
        self.error: BaseException | None = None
        self.closed = False
        self._cond = cond
        self._polled = start
        self._position: tuple[int, str] | None = None

    def poll(self, max_events: int, timeout: float) -> list[Event]:
        with self._cond:
            if not self.queue and not self.closed:
                self._cond.wait(timeout)
            batch = [self.queue.popleft() for _ in range(min(max_events, len(self.queue)))]
            self._polled += len(batch)
            if batch:  # one stream in commit order: its last event is the position
                self._position = (batch[-1].lsn, batch[-1].committed_at)
            return batch

    def position(self) -> tuple[int, str] | None:
        return self._position

    def parts(self) -> tuple[dict[str, tuple[int, str]], frozenset[str]]:
        return ({} if self._position is None else {"": self._position}), frozenset({""})

    def commit(self) -> None:
        with self._cond:
            self.committed = self._polled
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._cond:
            self.error = error
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()
