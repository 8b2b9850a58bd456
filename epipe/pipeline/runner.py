"""Runner: the tailer and the consumers of one process, started and stopped together.

Embedded mode: tailer -> InProcessBus -> consumer threads. Scale-out: the tailer publishes
to Kafka (`epipe tail`) and each consumer process subscribes with its own group.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import ExitStack

from epipe.bus import Bus, Subscription
from epipe.bus.inprocess import InProcessBus
from epipe.errors import ConfigError, EpipeError
from epipe.pipeline.consume import Consumer
from epipe.pipeline.store import PipelineStore
from epipe.pipeline.tail import Tailer
from epipe.settings import Settings
from epipe.sink import Sink
from epipe.source.backfill import Backfill
from epipe.source.postgres import PostgresSource

log = logging.getLogger(__name__)
SinkFactory = Callable[[], Sink]


class Runner:
    def __init__(
        self,
        dsn: str,
        settings: Settings,
        *,
        sinks: dict[str, SinkFactory],
        tail: bool = True,
        backfill: bool = False,
        backfill_chunk: int | None = None,
    ) -> None:
        self.dsn = dsn
        self.settings = settings
        self.sink_factories = sinks
        self.tail = tail
        self.force_backfill = backfill
        self.backfill_chunk = backfill_chunk
        self.tailer: Tailer | None = None
        self.consumers: list[Consumer] = []
        self.ready = threading.Event()  # set once the slot exists and the stream is open
        self._errors: list[BaseException] = []

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set or a part fails (then raise its error).

        On stop the tailer ends first (flushing what it read, which the consumers must still
        apply), then the consumers."""
        consumers_stop = threading.Event()
        with ExitStack() as stack:
            bus = self._bus(stack)
            threads = []
            for name, factory in self.sink_factories.items():
                consumer = Consumer(
                    name,
                    self._subscribe(bus, name, stack),
                    _closing(stack, factory()),
                    _store(stack, self.dsn),
                )
                self.consumers.append(consumer)
                threads.append(
                    threading.Thread(
                        target=self._guard,
                        args=(consumer.run, consumers_stop, stop),
                        name=f"consumer-{name}",
                        daemon=True,
                    )
                )
            for thread in threads:
                thread.start()
            try:
                if self.tail:
                    self._run_tailer(bus, stop, stack)
                else:
                    self.ready.set()
                    while not stop.wait(0.2) and not self._errors:
                        pass
            finally:
                consumers_stop.set()
                for thread in threads:
                    thread.join(timeout=30)
            if self._errors:
                raise self._errors[0]

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

    def _bus(self, stack: ExitStack) -> Bus:
        if self.settings.bus == "inprocess":
            return InProcessBus()
        if not self.settings.kafka_bootstrap:
            raise ConfigError("EPIPE_BUS=kafka needs EPIPE_KAFKA_BOOTSTRAP (host:port of a broker)")
        from epipe.bus.kafka import KafkaBus

        bus = KafkaBus(
            self.settings.kafka_bootstrap,
            partitions=self.settings.kafka_partitions,
            replication=self.settings.kafka_replication,
        )
        stack.callback(bus.close)
        return bus

    def _subscribe(self, bus: Bus, name: str, stack: ExitStack) -> Subscription:
        if isinstance(bus, InProcessBus):
            subscription: Subscription = bus.subscribe(name)
        else:
            from epipe.bus.kafka import KafkaSubscription

            store = _store(stack, self.dsn)
            assert self.settings.kafka_bootstrap
            subscription = KafkaSubscription(
                self.settings.kafka_bootstrap,
                name,
                on_invalid=lambda raw, why: store.dead_letter(name, why, raw=raw),
            )
        stack.callback(subscription.close)
        return subscription

    def _run_tailer(self, bus: Bus, stop: threading.Event, stack: ExitStack) -> None:
        source = PostgresSource(
            self.dsn, slot=self.settings.slot, publication=self.settings.publication
        )
        stack.callback(source.close)
        slot = source.prepare()
        chunks = {t: self.backfill_chunk for t in source.tables} if self.backfill_chunk else None
        backfill = Backfill(
            _store(stack, self.dsn),
            source.emit_message,
            source.control,
            source.slot,
            chunk_rows=chunks,
        )
        if slot.created or self.force_backfill:
            backfill.start(source.tables)
        source.start()
        self.ready.set()
        self.tailer = Tailer(
            source,
            bus,
            backfill=backfill,
            store=_store(stack, self.dsn),
            heartbeat_interval=self.settings.heartbeat_interval,
        )
        try:
            self.tailer.run(stop)
        except EpipeError:
            if self._errors:  # a consumer failed first: report that, not its echo
                raise self._errors[0] from None
            raise


def _store(stack: ExitStack, dsn: str) -> PipelineStore:
    store = PipelineStore(dsn)
    stack.callback(store.close)
    return store


def _closing(stack: ExitStack, sink: Sink) -> Sink:
    stack.callback(sink.close)
    return sink
