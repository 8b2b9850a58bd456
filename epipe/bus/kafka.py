"""KafkaBus and KafkaSubscription: the bus of scale-out mode, on kafka-python.

Topics `epipe.fs` (inode and xattr events) and `epipe.prov` (provenance), created with
`partitions` partitions if missing; a `prefix` goes before both and before every consumer
group id (several pipelines, or tests, on one cluster). The key is the inode id, so one
inode's events stay in one partition of its topic, in order. Heartbeats and truncations,
which concern no inode, go to every partition. The producer is idempotent with acks=all;
`flush` is true only when the brokers acknowledged everything. Consumers commit offsets by
hand, after their sink has flushed; their session timeout and heartbeat interval are set
(EPIPE_KAFKA_SESSION_TIMEOUT_MS, EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS), so a killed member's
partitions go to the others within seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from epipe.bus import FS_TOPIC, PROV_TOPIC, BusError, OnInvalid, topic_of
from epipe.events import Event
from epipe.events.codec import CodecError, decode, encode

log = logging.getLogger(__name__)
TOPICS = (FS_TOPIC, PROV_TOPIC)


@contextlib.contextmanager
def map_exceptions(what: str) -> Iterator[None]:
    """kafka-python's errors as BusError naming what failed."""
    try:
        yield
    except KafkaError as exc:
        raise BusError(f"{what}: {exc}") from None


def ensure_topics(
    bootstrap: str, partitions: int, replication: int, topics: Sequence[str] = TOPICS
) -> None:
    """Create the topics if they do not exist (an existing topic is left as it is)."""
    with map_exceptions(f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}"):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="epipe-admin")
    try:
        with map_exceptions(f"cannot create Kafka topics {tuple(topics)}"):
            for topic in topics:
                with contextlib.suppress(TopicAlreadyExistsError):  # leave an existing one
                    admin.create_topics(
                        {topic: {"num_partitions": partitions, "replication_factor": replication}},
                        wait_for_metadata=True,
                    )
    finally:
        admin.close()


class KafkaBus:
    def __init__(
        self,
        bootstrap: str,
        *,
        partitions: int = 6,
        replication: int = 1,
        prefix: str = "",
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3000,
        **producer_options: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self._topics = {topic: prefix + topic for topic in TOPICS}  # ours -> on the broker
        self._group_options = {
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
        }
        ensure_topics(bootstrap, partitions, replication, tuple(self._topics.values()))
        with map_exceptions(f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}"):
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
            self._partitions = {
                topic: sorted(self._producer.partitions_for(name))
                for topic, name in self._topics.items()
            }
        self._pending: list[Any] = []  # futures of records sent since the last flush

    def subscribe(self, name: str, on_invalid: OnInvalid) -> KafkaSubscription:
        return KafkaSubscription(
            self.bootstrap,
            self.prefix + name,
            tuple(self._topics.values()),
            on_invalid=on_invalid,
            **self._group_options,
        )

    def publish(self, events: Sequence[Event]) -> None:
        send = self._producer.send
        pending = self._pending
        with map_exceptions("Kafka refused an event"):
            for event in events:
                value = encode(event)
                if event.inode_id is None:  # heartbeat, truncation: every partition
                    for topic in _broadcast_topics(event):
                        for partition in self._partitions[topic]:
                            pending.append(
                                send(self._topics[topic], value=value, partition=partition)
                            )
                else:
                    key = str(event.inode_id).encode()
                    pending.append(send(self._topics[topic_of(event)], value=value, key=key))

    def flush(self, timeout: float) -> bool:
        with map_exceptions("Kafka flush failed"):
            try:
                self._producer.flush(timeout=timeout)
            except KafkaTimeoutError:  # not an error: not yet
                return False
        failed = [f for f in self._pending if f.failed()]
        if failed:
            raise BusError(f"Kafka did not accept {len(failed)} events: {failed[0].exception}")
        if not all(f.is_done for f in self._pending):
            return False
        self._pending.clear()
        return True

    def close(self) -> None:
        with map_exceptions("closing the Kafka producer"):
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
        on_invalid: OnInvalid | None = None,
        **consumer_options: Any,
    ) -> None:
        self._on_invalid = on_invalid
        self.group = group
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self._positions: dict[Any, tuple[int, str]] = {}  # partition -> last event polled
        with map_exceptions(f"EPIPE_KAFKA_BOOTSTRAP: cannot reach Kafka at {bootstrap}"):
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap,
                group_id=group,
                client_id=f"epipe-{group}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                **consumer_options,
            )
            self._consumer.subscribe(topics=list(topics), listener=_Assignments(group))

    def poll(self, max_events: int, timeout: float) -> list[Event]:
        with map_exceptions("Kafka poll failed"):
            batches = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_events)
        out = []
        for partition, records in batches.items():
            for record in records:
                try:
                    event = decode(record.value)._replace(
                        part=_part(record.topic, record.partition)
                    )
                    out.append(event)
                    self._positions[partition] = (event.lsn, event.committed_at)
                except CodecError as exc:  # never stop on it: hand it to the dead letters
                    where = f"{record.topic}[{record.partition}]@{record.offset}"
                    log.warning("not an epipe event at %s: %s", where, exc)
                    if self._on_invalid is not None:
                        self._on_invalid(record.value, f"{where}: {exc}")
        return out

    def commit(self) -> None:
        with map_exceptions("Kafka commit failed"):
            self._consumer.commit()

    def position(self) -> tuple[int, str] | None:
        """The least position over the assigned partitions: each partition is in commit
        order and heartbeats reach them all, so every change before it was polled."""
        assigned = self._consumer.assignment()
        if not assigned or any(p not in self._positions for p in assigned):
            return None
        return min(self._positions[p] for p in assigned)

    def parts(self) -> tuple[dict[str, tuple[int, str]], frozenset[str]]:
        """Positions per partition held now, and every partition of the topics read. A
        partition this member no longer holds is left to its new owner."""
        with map_exceptions("Kafka metadata"):
            assigned = self._consumer.assignment()
            every = frozenset(
                _part(topic, p)
                for topic in self._consumer.subscription() or ()
                for p in self._consumer.partitions_for_topic(topic) or ()
            )
        held = {
            _part(tp.topic, tp.partition): self._positions[tp]
            for tp in assigned
            if tp in self._positions
        }
        return held, every

    def fail(self, error: BaseException) -> None:
        pass  # nothing to release: uncommitted offsets are read again by the next member

    def close(self) -> None:
        with map_exceptions("closing the Kafka consumer"):
            self._consumer.close(autocommit=False)


class _Assignments(ConsumerRebalanceListener):  # type: ignore[misc]  # kafka-python is untyped
    """Logs which parts this member holds after each rebalance (`epipe consume -v`)."""

    def __init__(self, group: str) -> None:
        self.group = group

    def on_partitions_revoked(self, revoked: Any) -> None:
        pass

    def on_partitions_assigned(self, assigned: Any) -> None:
        parts = sorted(_part(tp.topic, tp.partition) for tp in assigned)
        log.info(
            "group %s: member pid %d holds %s", self.group, os.getpid(), " ".join(parts) or "none"
        )


def _part(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"
