"""ConnectBus: consumers read the topics Kafka Connect's Debezium connector writes
(EPIPE_BUS=connect, compose profile `debezium`).

Nothing of epipe publishes here: Kafka Connect is the tailer. Each consumer reads every
partition of the connector's topics (`<EPIPE_CONNECT_TOPIC_PREFIX>.public.inodes`, `…xattrs`,
`…prov_ops`, and `.message`, where the connector puts transaction markers and messages), puts
commit order back (`reassembly`) and translates
the envelopes into the same domain events as every other source (`source.envelope`), so
consumers work unchanged. Commit order needs all the topics in one reader: a consumer group
has one member that reads (a second one reads the same and applies nothing new).

Offsets are committed, under the consumer's group, only at a cut (nothing read is held), with
the translator's positions as the commit's metadata: a restarted reader gives every event
the position it had, so a view that counts by position (the lineage graph) stays exact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from epipe.bus import BusError, OnInvalid
from epipe.bus.kafka import ensure_topics, map_exceptions
from epipe.bus.reassembly import Reassembler
from epipe.events import Event
from epipe.source.envelope import EnvelopeError, EnvelopeTranslator
from epipe.source.translate import CAPTURED

log = logging.getLogger(__name__)
PART = "connect"  # the one part of the stream a reader holds: all of it


def topics(prefix: str) -> tuple[str, ...]:
    """The connector's topics: one per captured table, and the control topic."""
    return (*(f"{prefix}.public.{table}" for table in CAPTURED), control(prefix))


def control(prefix: str) -> str:
    """Transaction markers and messages, in log order (`topic.transaction=message`)."""
    return f"{prefix}.message"


class ConnectBus:
    def __init__(
        self,
        bootstrap: str,
        *,
        topic_prefix: str = "epipe",
        group_prefix: str = "",
        replication: int = 1,
        **consumer_options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic_prefix = topic_prefix
        self.group_prefix = group_prefix
        self._replication = replication
        self._consumer_options = consumer_options

    def publish(self, events: Sequence[Event]) -> None:
        raise BusError(
            "EPIPE_BUS=connect: Kafka Connect's Debezium connector writes the change topics; "
            "epipe only reads them (run `epipe consume NAME`, not a tailer)"
        )

    def flush(self, timeout: float) -> bool:
        return True

    def subscribe(self, name: str, on_invalid: OnInvalid) -> ConnectSubscription:
        return ConnectSubscription(
            self.bootstrap,
            self.group_prefix + name,
            self.topic_prefix,
            on_invalid=on_invalid,
            replication=self._replication,
            **self._consumer_options,
        )

    def close(self) -> None:
        pass


class ConnectSubscription:
    """One reader of all the connector's partitions; commits at cuts."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topic_prefix: str,
        *,
        on_invalid: OnInvalid | None = None,
        replication: int = 1,
        **consumer_options: Any,
    ) -> None:
        self.group = group
        self._on_invalid = on_invalid
        names, ordered = topics(topic_prefix), control(topic_prefix)
        # as the connector's topic.creation defaults (compose/debezium/epipe-connector.json)
        ensure_topics(bootstrap, 1, replication, names)
        with map_exceptions(f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}"):
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group,
                client_id=f"epipe-{group}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **consumer_options,
            )
        try:
            with map_exceptions("Kafka metadata"):
                parts = {t: sorted(self._consumer.partitions_for_topic(t) or ()) for t in names}
            if len(parts[ordered]) != 1:
                raise BusError(
                    f"topic {ordered} has {len(parts[ordered])} partitions: commit order "
                    "needs it to have one (the connector's topic.creation default)"
                )
            self._assigned = [TopicPartition(t, p) for t in names for p in parts[t]]
            with map_exceptions("Kafka: reading the committed offsets"):
                self._consumer.assign(self._assigned)
                position, last = self._start()
        except BaseException:
            self._consumer.close(autocommit=False)
            raise
        self._reassembler = Reassembler(ordered)
        self._translator = EnvelopeTranslator(position, last=last)
        self._committed_at = ""
        self._cut: dict[TopicPartition, OffsetAndMetadata] | None = None
        self._idle_caught_up = 0  # polls in a row with nothing new, everything read

    def _start(self) -> tuple[int, int]:
        """The translator's positions at the committed cut (0, 0 for a new group)."""
        position = last = 0
        for tp in self._assigned:
            committed = self._consumer.committed(tp, metadata=True)
            if committed is None:
                continue
            head, _, tail = (committed.metadata or "").partition(":")
            if head.isdigit() and tail.isdigit():
                position, last = max(position, int(head)), max(last, int(tail))
        return position, last

    def poll(self, max_events: int, timeout: float) -> list[Event]:
        with map_exceptions("Kafka poll failed"):
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_events)
        reassembler = self._reassembler
        for tp, records in batches.items():
            for record in records:
                reassembler.add(tp.topic, tp.partition, record.offset, record.value)
        if not batches and reassembler.stalled is not None:
            self._unstall()
        events = self._translate()
        cut = reassembler.cut()
        if cut is not None:
            mark = f"{self._translator.position}:{self._translator.last}"
            self._cut = {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, mark, -1)
                for (topic, partition), offset in cut.items()
            }
        return events

    def _translate(self) -> list[Event]:
        out: list[Event] = []
        translator = self._translator
        for where, value, why in self._reassembler.invalid:
            self._invalid(value, f"{where}: {why}")
        self._reassembler.invalid.clear()
        for value, envelope in self._reassembler.take():
            try:
                events = translator.envelope(envelope)
            except EnvelopeError as exc:  # never stop on it: hand it to the dead letters
                self._invalid(value, str(exc))
                continue
            for event in events:
                out.append(event._replace(part=PART))
                if event.committed_at:
                    self._committed_at = event.committed_at
        return out

    def _invalid(self, value: bytes, why: str) -> None:
        log.warning("not a Debezium change event: %s", why)
        if self._on_invalid is not None:
            self._on_invalid(value, why)

    def _unstall(self) -> None:
        """A transaction's END was read but not all of its rows. Rows are sent before their
        END, so they come; unless Kafka Connect, restarted, sent a transaction again in
        part. Once every partition was read to its end twice in a row, it goes on as it is
        (consumers re-read the current state of what it touches)."""
        with map_exceptions("Kafka metadata"):
            ends = self._consumer.end_offsets(self._assigned)
            caught_up = all(self._consumer.position(tp) >= ends[tp] for tp in self._assigned)
        self._idle_caught_up = self._idle_caught_up + 1 if caught_up else 0
        if self._idle_caught_up >= 2:
            self._idle_caught_up = 0
            id_, had, named = self._reassembler.give_up_head()
            log.warning(
                "transaction %s: %d of its %d rows on the topics; going on", id_, had, named
            )

    def commit(self) -> None:
        if self._cut is None:
            return
        cut, self._cut = self._cut, None
        with map_exceptions("Kafka commit failed"):
            self._consumer.commit(offsets=cut)

    def position(self) -> tuple[int, str] | None:
        position = self._translator.position
        return (position, self._committed_at) if position > 0 else None

    def parts(self) -> tuple[dict[str, tuple[int, str]], frozenset[str]]:
        position = self.position()
        return ({PART: position} if position is not None else {}), frozenset({PART})

    def fail(self, error: BaseException) -> None:
        pass  # uncommitted offsets are read again at the next start

    def close(self) -> None:
        with map_exceptions("closing the Kafka consumer"):
            self._consumer.close(autocommit=False)
