"""Runner: a tailer and consumers in one process, started and stopped together.

Embedded mode: source -> tailer -> in-process bus -> consumer threads. Scale-out: the tailer
alone publishes to Kafka (`epipe tail`), and each consumer process (`epipe consume NAME`)
runs its consumers alone. The runner is handed its parts, built by the composition root
(epipe/wiring.py); it only starts, joins and stops them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass

from epipe.bus import Bus
from epipe.pipeline.consume import Consumer
from epipe.pipeline.rebuilds import RebuildRequests
from epipe.pipeline.store import PipelineStore
from epipe.pipeline.tail import Tailer
from epipe.sink import Sink
from epipe.source import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConsumerSpec:
    """A consumer to run: its name (its group on Kafka), how to open its sink, and whether
    read-your-writes searches wait for it."""

    name: str
    sink: Callable[[], Sink]
    serves_search: bool = False


class Runner:
    def __init__(
        self,
        *,
        bus: Bus,
        store: Callable[[], PipelineStore],
        consumers: Sequence[ConsumerSpec] = (),
        source: Source | None = None,
    ) -> None:
        self.bus = bus
        self.store = store  # a new store (and connection) per part
        self.specs = consumers
        self.source = source
        self.tailer: Tailer | None = None
        self.consumers: list[Consumer] = []
        self.ready = threading.Event()  # set once the source is open (or there is none)
        self._errors: list[BaseException] = []

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set or a part fails (then set `stop` and raise its error: a
        consumer's first, as the tailer's may only echo it).

        On stop the tailer ends first (flushing what it read, which the consumers must still
        apply), then the consumers."""
        consumers_stop = threading.Event()
        with ExitStack() as stack:
            stack.callback(self.bus.close)
            threads = [
                threading.Thread(
                    target=self._guard,
                    args=(self._consumer(spec, stack).run, consumers_stop, stop),
                    name=f"consumer-{spec.name}",
                    daemon=True,
                )
                for spec in self.specs
            ]
            for consumer in self.consumers:
                consumer.stopping = stop
            for thread in threads:
                thread.start()
            try:
                if self.source is not None:
                    self._run_tailer(self.source, stop, stack)
                else:
                    self.ready.set()
                    while not stop.wait(0.2) and not self._errors:
                        pass
            except BaseException:
                self._join(threads, consumers_stop)
                if self._errors:  # a consumer failed first: report that, not its echo
                    raise self._errors[0] from None
                raise
            self._join(threads, consumers_stop)
            if self._errors:
                raise self._errors[0]

    def _join(self, threads: list[threading.Thread], consumers_stop: threading.Event) -> None:
        consumers_stop.set()
        for thread in threads:
            thread.join(timeout=30)

    def _consumer(self, spec: ConsumerSpec, stack: ExitStack) -> Consumer:
        store = self._store(stack)
        subscription = self.bus.subscribe(
            spec.name, lambda raw, why: store.dead_letter(spec.name, why, raw=raw)
        )
        stack.callback(subscription.close)
        sink = spec.sink()
        stack.callback(sink.close)
        consumer = Consumer(
            spec.name,
            subscription,
            sink,
            store,
            serves_search=spec.serves_search,
            rebuilds=RebuildRequests(store.connection),
        )
        self.consumers.append(consumer)
        return consumer

    def _guard(
        self,
        target: Callable[[threading.Event], None],
        own_stop: threading.Event,
        stop: threading.Event,
    ) -> None:
        try:
            target(own_stop)
        except BaseException as exc:
            self._errors.append(exc)
            stop.set()  # one part failed: the whole pipeline stops

    def _run_tailer(self, source: Source, stop: threading.Event, stack: ExitStack) -> None:
        stack.callback(source.close)
        self.tailer = Tailer(source, self.bus, store=self._store(stack))
        self.tailer.open()
        self.ready.set()
        self.tailer.run(stop)

    def _store(self, stack: ExitStack) -> PipelineStore:
        store = self.store()
        stack.callback(store.close)
        return store
