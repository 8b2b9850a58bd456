"""The bus contract: what the source and every consumer may rely on, for both adapters."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from epipe import events as ev
from epipe.bus import Bus, Subscription, topic_of
from epipe.events import Event
from tests.conftest import KAFKA_GROUP_TIMEOUTS, kafka_prefix

_groups = itertools.count()


@dataclass
class Harness:
    name: str
    bus: Bus
    subscribe: Callable[[str], Subscription]


@pytest.fixture(params=["inprocess", "kafka"])
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    if request.param == "inprocess":
        from epipe.bus.inprocess import InProcessBus

        bus = InProcessBus()
        yield Harness("inprocess", bus, lambda name: bus.subscribe(name, _ignore))
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    from epipe.bus.kafka import KafkaBus

    kafka = KafkaBus(bootstrap, partitions=3, prefix=kafka_prefix(), **KAFKA_GROUP_TIMEOUTS)
    subscriptions: list[Subscription] = []

    def subscribe(group: str) -> Subscription:
        subscription = kafka.subscribe(f"{group}-{next(_groups)}", _ignore)
        subscriptions.append(subscription)
        return subscription

    yield Harness("kafka", kafka, subscribe)
    for subscription in subscriptions:
        subscription.close()
    kafka.close()


def _ignore(raw: bytes, why: str) -> None:
    pass  # every record here is an event


def change(lsn: int, seq: int, inode: int, kind: str = ev.INODE_UPDATED) -> Event:
    data = {"inode": {"id": inode, "size": lsn}, "changed": ["size"]}
    if kind == ev.PROV_OP:
        data = {"op": {"id": lsn * 10 + seq, "inode_id": inode, "op": "read"}}
    return Event(kind, lsn, seq, lsn, "2026-01-01T00:00:00+00:00", inode, data)


def in_order(events: list[Event]) -> list[Event]:
    """The events by position, without where the bus delivered them from (`part`: a Kafka
    topic:partition, not a part of the event)."""
    return sorted((e._replace(part="") for e in events), key=lambda e: e.position)


def heartbeat(lsn: int) -> Event:
    return Event(ev.HEARTBEAT, lsn, 0, 0, "2026-01-01T00:00:00+00:00", None, {})


def drain(subscription: Subscription, want: int, timeout: float = 60.0) -> list[Event]:
    """Poll (and commit) until `want` events arrived."""
    got: list[Event] = []
    deadline = time.monotonic() + timeout
    while len(got) < want and time.monotonic() < deadline:
        got.extend(subscription.poll(1000, 0.2))
        subscription.commit()
    return got


def flush(bus: Bus, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bus.flush(1.0):
            return True
    return False


def drain_while_flushing(
    harness: Harness, groups: tuple[str, ...], events: list[Event], want: int
) -> list[list[Event]]:
    """What each group, subscribed first, receives of `events` while the bus is flushed."""
    subscriptions = [harness.subscribe(group) for group in groups]
    harness.bus.publish(events)
    results: list[list[Event]] = [[] for _ in groups]
    threads = [
        threading.Thread(target=lambda i=i, s=s: results[i].extend(drain(s, want)))
        for i, s in enumerate(subscriptions)
    ]
    for thread in threads:
        thread.start()
    assert flush(harness.bus)
    for thread in threads:
        thread.join()
    return results


HISTORY = [
    change(lsn, seq, inode, kind)
    for lsn in range(1, 41)
    for seq, (inode, kind) in enumerate([(lsn % 7, ev.INODE_UPDATED), ((lsn * 3) % 7, ev.PROV_OP)])
]


def test_every_subscriber_gets_every_event_unchanged_and_in_order_per_inode(
    harness: Harness,
) -> None:
    for got in drain_while_flushing(harness, ("a", "b"), HISTORY, 80):
        assert in_order(got) == HISTORY  # nothing lost or altered
        for inode in range(7):  # each inode's events keep their order on each topic
            for topic in {topic_of(e) for e in HISTORY}:  # Kafka: none between topics
                mine = [e for e in got if e.inode_id == inode and topic_of(e) == topic]
                assert [e.position for e in mine] == sorted(e.position for e in mine)
                assert len({e.part for e in mine}) <= 1  # from one part of the stream
        if harness.name == "inprocess":
            assert {e.part for e in got} == {""}  # one ordered stream
        else:  # where each came from: its topic (after the prefix) and a partition of it
            for e in got:
                topic, partition = e.part.rsplit(":", 1)
                assert topic.endswith(topic_of(e)) and 0 <= int(partition) < 3, e.part


def test_heartbeats_reach_every_subscriber(harness: Harness) -> None:
    for got in drain_while_flushing(harness, ("a", "b"), [heartbeat(99)], 1):
        assert got and all(e.type == ev.HEARTBEAT and e.lsn == 99 for e in got)


def test_events_not_committed_are_delivered_again(harness: Harness) -> None:
    first = harness.subscribe("redelivery")
    harness.bus.publish(HISTORY[:10])
    if harness.name == "inprocess":
        # In-process the guarantee is held by the source: flush stays false while a consumer
        # has not committed, so the slot is not confirmed and a restart delivers them again.
        assert in_order(first.poll(1000, 1.0)) == HISTORY[:10]
        assert harness.bus.flush(0.2) is False
        first.commit()
        assert harness.bus.flush(1.0) is True
        return
    assert flush(harness.bus)
    polled = drain_without_commit(first, 10)
    assert in_order(polled) == HISTORY[:10]
    from epipe.bus.kafka import KafkaSubscription

    assert isinstance(first, KafkaSubscription)
    first.close()
    again = KafkaSubscription(first.bootstrap, first.group, first.topics, **KAFKA_GROUP_TIMEOUTS)
    try:
        assert in_order(drain(again, 10)) == HISTORY[:10]
    finally:
        again.close()


def drain_without_commit(subscription: Subscription, want: int) -> list[Event]:
    got: list[Event] = []
    deadline = time.monotonic() + 60
    while len(got) < want and time.monotonic() < deadline:
        got.extend(subscription.poll(1000, 0.2))
    return got


def test_a_failed_consumer_is_never_reported_as_accepting(harness: Harness) -> None:
    if harness.name == "kafka":
        pytest.skip(
            "on Kafka a consumer's failure does not concern the producer: the brokers "
            "hold the events and the consumer resumes from its committed offset"
        )
    subscription = harness.subscribe("fails")
    harness.bus.publish(HISTORY[:3])
    subscription.poll(1000, 1.0)
    subscription.fail(RuntimeError("disk full"))
    from epipe.bus import BusError

    with pytest.raises(BusError, match="disk full"):
        harness.bus.flush(1.0)
