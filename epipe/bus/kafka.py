"""KafkaBus and KafkaSubscription: the bus of scale-out mode, on kafka-python.

Topics `epipe.fs` (inode and xattr events) and `epipe.prov` (provenance), created with
`partitions` partitions if missing. The key is the inode id, so one inode's events stay in
one partition, in order. Heartbeats and truncations, which concern no inode, go to every
partition. The producer is idempotent with acks=all; `flush` is true only when the brokers
acknowledged everything. Consumers commit offsets by hand, after their sink has flushed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from epipe.bus import FS_TOPIC, PROV_TOPIC, BusError, topic_of
from epipe.events import Event
from epipe.events.codec import CodecError, decode, encode

log = logging.getLogger(__name__)
TOPICS = (FS_TOPIC, PROV_TOPIC)


def ensure_topics(bootstrap: str, partitions: int, replication: int) -> None:
    """Create the topics if they do not exist (an existing topic is left as it is)."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="epipe-admin")
    except KafkaError as exc:
        raise BusError(f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}: {exc}") from None
    try:
        for topic in TOPICS:
            with contextlib.suppress(TopicAlreadyExistsError):  # leave an existing one as it is
                admin.create_topics(
                    {topic: {"num_partitions": partitions, "replication_factor": replication}},
                    wait_for_metadata=True,
                )
    except KafkaError as exc:
        raise BusError(f"cannot create Kafka topics {TOPICS}: {exc}") from None
    finally:
        admin.close()


class KafkaBus:
    def __init__(
        self, bootstrap: str, *, partitions: int = 6, replication: int = 1, **producer_options: Any
    ) -> None:
        self.bootstrap = bootstrap
        ensure_topics(bootstrap, partitions, replication)
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                client_id="epipe-source",
                acks="all",
                enable_idempotence=True,
                max_in_flight_requests_per_connection=5,
                linger_ms=5,
                compression_type="gzip",
                **producer_options,
            )
        except KafkaError as exc:
            raise BusError(
                f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}: {exc}"
            ) from None
        self._partitions = {topic: sorted(self._producer.partitions_for(topic)) for topic in TOPICS}
        self._pending: list[Any] = []  # futures of records sent since the last flush

    def publish(self, events: Sequence[Event]) -> None:
        send = self._producer.send
        pending = self._pending
        try:
            for event in events:
                value = encode(event)
                if event.inode_id is None:  # heartbeat, truncation: every partition
                    for topic in _broadcast_topics(event):
                        for partition in self._partitions[topic]:
                            pending.append(send(topic, value=value, partition=partition))
                else:
                    key = str(event.inode_id).encode()
                    pending.append(send(topic_of(event), value=value, key=key))
        except KafkaError as exc:
            raise BusError(f"Kafka refused an event: {exc}") from None

    def flush(self, timeout: float) -> bool:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError:
            return False
        except KafkaError as exc:
            raise BusError(f"Kafka flush failed: {exc}") from None
        failed = [f for f in self._pending if f.failed()]
        if failed:
            raise BusError(f"Kafka did not accept {len(failed)} events: {failed[0].exception}")
        if not all(f.is_done for f in self._pending):
            return False
        self._pending.clear()
        return True

    def close(self) -> None:
        self._producer.close(timeout=10)


def _broadcast_topics(event: Event) -> tuple[str, ...]:
    if event.type == "table.truncated":
        tables = set(event.data.get("tables", ()))
        return tuple(
            t
            for t, names in ((FS_TOPIC, {"inodes", "xattrs"}), (PROV_TOPIC, {"prov_ops"}))
            if tables & names
        )
    return TOPICS


class KafkaSubscription:
    """A consumer group member: poll, apply, commit (never auto-commit)."""

    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: Sequence[str] = TOPICS,
        *,
        on_invalid: Callable[[bytes, str], None] | None = None,
        **consumer_options: Any,
    ) -> None:
        self._on_invalid = on_invalid
        self.group = group
        self.bootstrap = bootstrap
        self._positions: dict[Any, tuple[int, str]] = {}  # partition -> last event polled
        try:
            self._consumer = KafkaConsumer(
                *topics,
                bootstrap_servers=bootstrap,
                group_id=group,
                client_id=f"epipe-{group}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **consumer_options,
            )
        except KafkaError as exc:
            raise BusError(
                f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}: {exc}"
            ) from None
        self.error: BaseException | None = None
        self.skipped = 0  # records that were not epipe events

    def poll(self, max_events: int, timeout: float) -> list[Event]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_events)
        except KafkaError as exc:
            raise BusError(f"Kafka poll failed: {exc}") from None
        out = []
        for partition, records in batches.items():
            for record in records:
                try:
                    event = decode(record.value)
                    out.append(event)
                    self._positions[partition] = (event.lsn, event.committed_at)
                except CodecError as exc:  # never stop on it: hand it to the dead letters
                    self.skipped += 1
                    where = f"{record.topic}[{record.partition}]@{record.offset}"
                    log.warning("not an epipe event at %s: %s", where, exc)
                    if self._on_invalid is not None:
                        self._on_invalid(record.value, f"{where}: {exc}")
        return out

    def commit(self) -> None:
        try:
            self._consumer.commit()
        except KafkaError as exc:
            raise BusError(f"Kafka commit failed: {exc}") from None

    def position(self) -> tuple[int, str] | None:
        """The least position over the assigned partitions: each partition is in commit
        order and heartbeats reach them all, so every change before it was polled."""
        assigned = self._consumer.assignment()
        if not assigned or any(p not in self._positions for p in assigned):
            return None
        return min(self._positions[p] for p in assigned)

    def fail(self, error: BaseException) -> None:
        self.error = error

    def close(self) -> None:
        self._consumer.close(autocommit=False)
