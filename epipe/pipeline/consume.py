"""Consumer: a subscription -> a sink, committing only what the sink made durable.

Per batch: poll, add each event to the sink (an event the sink rejects goes to the dead
letters with its reason, and the batch goes on), flush the sink, commit the subscription,
record the position. An error that is not a rejection fails the subscription, so the source
never confirms past events this consumer did not apply.
"""

from __future__ import annotations

import logging
import threading

from epipe import events as ev
from epipe.bus import Subscription
from epipe.pipeline.store import PipelineStore
from epipe.sink import Rejected, Sink

log = logging.getLogger(__name__)


class Consumer:
    def __init__(
        self,
        name: str,
        subscription: Subscription,
        sink: Sink,
        store: PipelineStore,
        *,
        batch: int = 2_000,
        poll_timeout: float = 0.1,
    ) -> None:
        self.name = name
        self.subscription = subscription
        self.sink = sink
        self.store = store
        self.batch = batch
        self.poll_timeout = poll_timeout
        self.applied = 0
        self.dead_letters = 0
        store.register(name)

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self.step()
        except BaseException as exc:
            log.error("consumer %s stopped: %s", self.name, exc)
            self.subscription.fail(exc)
            raise

    def step(self) -> int:
        """One batch; the number of events it applied."""
        events = self.subscription.poll(self.batch, self.poll_timeout)
        if not events:
            return 0
        rejected = 0
        for event in events:
            if event.type == ev.HEARTBEAT:
                continue  # a position, not a change
            try:
                self.sink.add(event)
            except Rejected as exc:
                rejected += 1
                self.store.dead_letter(self.name, str(exc), event=event)
        for event, reason in self.sink.flush():
            rejected += 1
            self.store.dead_letter(self.name, reason, event=event)
        self.dead_letters += rejected
        self.subscription.commit()
        position = self.subscription.position()
        if position is not None:
            self.store.record_position(self.name, *position)
        self.store.add_counts(self.name, len(events), len(events) - rejected)
        self.applied += len(events)
        return len(events)
