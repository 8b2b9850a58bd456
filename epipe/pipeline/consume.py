"""Consumer: a subscription -> a sink, committing only what the sink made durable.

Per batch: poll, add each event to the sink (an event the sink rejects goes to the dead
letters with its reason, and the batch goes on), flush the sink, commit the subscription,
record the position. An error that is not a rejection fails the subscription, so the source
never confirms past events this consumer did not apply. Between batches a consumer whose
sink can rebuild its view serves rebuild requests.
"""

from __future__ import annotations

import logging
import threading
import time

from epipe import events as ev
from epipe.bus import Subscription
from epipe.pipeline.rebuilds import RebuildRequests
from epipe.pipeline.store import PipelineStore
from epipe.pipeline.supervisor import Backoff
from epipe.sink import Positioned, Rebuildable, Rejected, Rejection, Sink, Unavailable

log = logging.getLogger(__name__)
REQUEST_POLL_SECONDS = 2.0


class Consumer:
    def __init__(
        self,
        name: str,
        subscription: Subscription,
        sink: Sink,
        store: PipelineStore,
        *,
        serves_search: bool = False,
        rebuilds: RebuildRequests | None = None,
        batch: int = 10_000,
        poll_timeout: float = 0.1,
    ) -> None:
        self.name = name
        self.subscription = subscription
        self.sink = sink
        self.store = store
        self.rebuilds = rebuilds if isinstance(sink, Rebuildable) else None
        self.batch = batch
        self.poll_timeout = poll_timeout
        self.applied = 0
        self.dead_letters = 0
        self._last_request_check = 0.0
        self._stop = threading.Event()
        # the pipeline is stopping: its tailer waits for what this consumer applies, so a
        # consumer waiting for its view gives up rather than hold the stop
        self.stopping = threading.Event()
        self._waiting = False
        store.register(name, serves_search=serves_search)

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        try:
            while not stop.is_set():
                self.step()
                self.serve_requests()
        except BaseException as exc:
            # the runner reports it (epipe run: one line, then a new attempt)
            log.info("consumer %s stopped: %s", self.name, exc)
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
        for cause, reason in self._flush():
            rejected += 1
            self.store.dead_letter(self.name, reason, event=cause)
        self.dead_letters += rejected
        self.subscription.commit()
        position = self.subscription.position()
        if position is not None and isinstance(self.sink, Positioned):
            self.sink.applied(position[0])  # the view first: it may be ahead, not behind
        held, parts = self.subscription.parts()
        self.store.record_parts(self.name, held, parts)
        self.store.add_counts(self.name, len(events), len(events) - rejected)
        self.applied += len(events)
        return len(events)

    def _flush(self) -> list[Rejection]:
        """The sink's flush, again after a pause while its view is unavailable (the batch is
        kept, nothing is committed, `epipe status` shows why)."""
        backoff = Backoff(first=0.5, longest=10.0)
        while True:
            try:
                rejections = self.sink.flush()
            except Unavailable as exc:
                delay = backoff.delay(0.0)
                if not self._waiting:
                    log.warning("consumer %s: %s; retrying", self.name, exc)
                self._waiting = True
                self.store.set_problem(self.name, f"{exc}; retrying every {delay:g} s or less")
                if self._pause(delay):
                    raise
                continue
            if self._waiting:
                log.warning("consumer %s: its view is back", self.name)
                self.store.set_problem(self.name, None)
                self._waiting = False
            return rejections

    def _pause(self, seconds: float) -> bool:
        """Wait `seconds`; True if the consumer or the pipeline is stopping meanwhile."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return self._stop.is_set()
            if self._stop.wait(min(left, 0.1)):
                return True
        return True

    def serve_requests(self) -> None:
        """Take a rebuild request, if one waits, and serve it (now and then)."""
        now = time.monotonic()
        if self.rebuilds is None or now - self._last_request_check < REQUEST_POLL_SECONDS:
            return
        self._last_request_check = now
        request = self.rebuilds.take()
        if request is None:
            return
        sink, requests = self.sink, self.rebuilds
        assert isinstance(sink, Rebuildable)
        error = None
        try:
            summary = sink.rebuild(lambda done, total: requests.progress(request, done, total))
            log.info("consumer %s: %s", self.name, summary)
        except Exception as exc:  # the old generation stays current: report, go on
            error = str(exc)
            log.error("consumer %s: rebuilding failed: %s", self.name, exc)
        requests.finish(request, error)
