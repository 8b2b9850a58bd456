"""ConnectBus: consumers read the topics Kafka Connect's Debezium connector writes
(EPIPE_BUS=connect, compose profile `debezium`).

Nothing of epipe publishes here: Kafka Connect is the tailer. Each consumer reads every
partition of the connector's topics (`<EPIPE_CONNECT_TOPIC_PREFIX>.public.inodes`, `…xattrs`,
`…prov_ops`, and `.message`, where the connector puts transaction markers and messages), puts
commit order back (`reassembly`) and translates
the envelopes into the same domain events as every other source (`source.envelope`), so
consumers work unchanged. Commit order needs all the topics in one reader: in a consumer
group, the member given the control topic's one partition reads; the others stand by and
take over when it goes.

Where a group stands is recorded only at a cut (nothing read is held): every partition's
offset and the translator's positions, as one record on the group's own topic
`<group>.connect-cuts` (Kafka Connect keeps its offsets the same way; a commit's metadata
would do, but not every broker keeps it). A reader started again gives every event the
position it had, so a view that counts by position (the lineage graph) stays exact.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import orjson
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition

from epipe.bus import BusError, OnInvalid
from epipe.bus.kafka import ensure_topics, map_exceptions
from epipe.bus.reassembly import Reassembler
from epipe.errors import ConfigError
from epipe.events import Event
from epipe.source.envelope import EnvelopeError, EnvelopeTranslator
from epipe.source.translate import CAPTURED

log = logging.getLogger(__name__)
PART = "connect"  # the one part of the stream a reader holds: all of it
_READ_TIMEOUT = 30.0  # seconds for the broker to hand a cut back or take one


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
    """A member of consumer group `group`. The control topic's one partition goes to one
    member, which then reads every table partition too (assigned by hand); the others wait
    as standbys and take over when it goes. Cuts are recorded on the group's topic, one
    record each (never half-recorded)."""

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
        self._cuts = TopicPartition(f"{group}.connect-cuts", 0)
        # as the connector's topic.creation defaults (compose/debezium/epipe-connector.json)
        ensure_topics(bootstrap, 1, replication, (*names, self._cuts.topic))
        common = {
            "bootstrap_servers": bootstrap,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
        }
        with map_exceptions(f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}"):
            self._member = KafkaConsumer(
                group_id=group, client_id=f"epipe-{group}", **common, **consumer_options
            )
            self._rows = KafkaConsumer(group_id=None, client_id=f"epipe-{group}-rows", **common)
            self._recorder = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id=f"epipe-{group}-cuts",
                acks="all",
                enable_idempotence=True,
            )
        try:
            with map_exceptions("Kafka metadata"):
                parts = {t: sorted(self._member.partitions_for_topic(t) or ()) for t in names}
            if len(parts[ordered]) != 1:
                raise ConfigError(
                    f"topic {ordered} has {len(parts[ordered])} partitions: commit order "
                    "needs it to have one (the connector's topic.creation default)"
                )
            self._control = TopicPartition(ordered, parts[ordered][0])
            self._tables = [TopicPartition(t, p) for t in names if t != ordered for p in parts[t]]
            self._names = {tp: f"{names.index(tp.topic)}:{tp.partition}" for tp in self._tables}
            with map_exceptions("Kafka: joining the consumer group"):
                self._member.subscribe([ordered], listener=_Holder(self))
        except BaseException:
            self.close()
            raise
        self._held = False  # this member holds the control partition, and reads
        self._took = False  # it was given the control partition during the last poll
        self._offsets: dict[str, int] = {}  # table partition -> the offset of the last cut
        self._reassembler = Reassembler(ordered)
        self._translator = EnvelopeTranslator(0)
        self._committed_at = ""
        self._cut: bytes | None = None  # the last cut, not yet recorded
        self._idle_caught_up = 0  # polls in a row with nothing new, everything read

    # -- holding the control partition ---------------------------------------------------

    def assigned(self, held: bool) -> None:
        """The group's rebalance (inside a poll): what was read is dropped either way."""
        if self._held and not held:
            log.info("group %s: member pid %d stands by", self.group, os.getpid())
        self._held, self._took = held, held
        self._cut = None
        if not held:
            self._rows.unsubscribe()

    def _take_over(self) -> None:
        """Start at the group's last cut: the table partitions where it left them, the
        translator's positions as they were."""
        self._took = False
        position = last = 0
        self._offsets = {}
        start = 0  # the control partition's
        cut = self._last_cut()
        if cut is not None:
            try:
                mark = orjson.loads(cut)
                position, last = int(mark["position"]), int(mark["last"])
                start = int(mark["control"])
                self._offsets = {str(k): int(v) for k, v in mark["offsets"].items()}
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
                log.warning(
                    "group %s: its last cut is unreadable; reading from the start", self.group
                )
                position = last = start = 0
                self._offsets = {}
        self._member.seek(self._control, start)
        self._reassembler = Reassembler(self._control.topic)
        self._translator = EnvelopeTranslator(position, last=last)
        self._rows.assign(self._tables)
        for tp in self._tables:
            offset = self._offsets.get(self._names[tp])
            if offset is None:
                self._rows.seek_to_beginning(tp)
            else:
                self._rows.seek(tp, offset)
        log.info("group %s: member pid %d reads the connector's topics", self.group, os.getpid())

    def _last_cut(self) -> bytes | None:
        """The value of the last record on the group's topic of cuts, if any."""
        reader = self._rows
        reader.assign([self._cuts])
        end = reader.end_offsets([self._cuts])[self._cuts]
        if end == 0:
            return None
        reader.seek(self._cuts, end - 1)
        deadline = time.monotonic() + _READ_TIMEOUT
        while time.monotonic() < deadline:
            for record in reader.poll(timeout_ms=200).get(self._cuts, ()):
                if record.offset == end - 1:
                    value: bytes = record.value
                    return value
        raise BusError(f"Kafka: the last cut on {self._cuts.topic} did not come")

    # -- the subscription ----------------------------------------------------------------

    def poll(self, max_events: int, timeout: float) -> list[Event]:
        wait = int(timeout * 500)  # half for each consumer
        with map_exceptions("Kafka poll failed"):
            control = self._member.poll(timeout_ms=wait, max_records=max_events)
            if self._took:
                self._take_over()
                control = {}  # fetched from before the cut: read again from it
            if not self._held:
                return []
            rows = self._rows.poll(timeout_ms=wait, max_records=max_events)
        reassembler = self._reassembler
        for batches in (control, rows):
            for tp, records in batches.items():
                for record in records:
                    reassembler.add(tp.topic, tp.partition, record.offset, record.value)
        if not control and not rows and reassembler.stalled is not None:
            self._unstall()
        events = self._translate()
        cut = reassembler.cut()
        if cut is not None:
            at = cut.pop((self._control.topic, self._control.partition), None)
            self._offsets.update(
                (self._names[TopicPartition(*part)], offset) for part, offset in cut.items()
            )
            self._cut = orjson.dumps(
                {
                    "position": self._translator.position,
                    "last": self._translator.last,
                    "control": at if at is not None else self._member.position(self._control),
                    "offsets": self._offsets,
                }
            )
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
            ends = self._rows.end_offsets(self._tables)
            caught_up = all(self._rows.position(tp) >= ends[tp] for tp in self._tables) and (
                self._member.position(self._control)
                >= self._member.end_offsets([self._control])[self._control]
            )
        self._idle_caught_up = self._idle_caught_up + 1 if caught_up else 0
        if self._idle_caught_up >= 2:
            self._idle_caught_up = 0
            id_, had, named = self._reassembler.give_up_head()
            log.warning(
                "transaction %s: %d of its %d rows on the topics; going on", id_, had, named
            )

    def commit(self) -> None:
        if self._cut is None or not self._held:
            return
        cut, self._cut = self._cut, None
        with map_exceptions("Kafka: recording a cut failed"):
            self._recorder.send(self._cuts.topic, value=cut, partition=0).get(_READ_TIMEOUT)

    def position(self) -> tuple[int, str] | None:
        position = self._translator.position
        return (position, self._committed_at) if position > 0 else None

    def parts(self) -> tuple[dict[str, tuple[int, str]], frozenset[str]]:
        position = self.position()
        return ({PART: position} if position is not None else {}), frozenset({PART})

    def fail(self, error: BaseException) -> None:
        pass  # uncommitted offsets are read again at the next start

    def close(self) -> None:
        with map_exceptions("closing the Kafka consumers"):
            for consumer in (self._member, self._rows):
                consumer.close(autocommit=False)
            self._recorder.close(timeout=10)


class _Holder(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Tells the subscription whether this member holds the control partition."""

    def __init__(self, subscription: ConnectSubscription) -> None:
        self._subscription = subscription

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._subscription.assigned(False)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._subscription.assigned(bool(assigned))
