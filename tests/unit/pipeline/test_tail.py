"""The tailer on a fake source and a recording bus: publish, flush, then confirm."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

import pytest

from epipe import events as ev
from epipe.bus import BusError, OnInvalid, Subscription
from epipe.events import Event
from epipe.pipeline.tail import Tailer
from epipe.source import Batch

START = 100


class FakeSource:
    """A source that answers every `read` with what `handler` returns (the way httpx's
    MockTransport answers requests), and records what it was told."""

    def __init__(self, handler: Callable[[], Batch], log: list[tuple[str, int]]) -> None:
        self.handler = handler
        self.log = log
        self.closed = False

    def open(self) -> int:
        return START

    def read(self, max_events: int, timeout: float) -> Batch:
        return self.handler()

    def confirm(self, position: int) -> None:
        self.log.append(("confirm", position))

    def keepalive(self) -> None:
        self.log.append(("alive", 0))

    def close(self) -> None:
        self.closed = True


class RecordingBus:
    """A bus that logs what it is asked; `accept()` says whether a flush completes."""

    def __init__(self, log: list[tuple[str, int]], accept: Callable[[], bool] = lambda: True):
        self.log = log
        self.accept = accept
        self.published: list[Event] = []

    def publish(self, events: Sequence[Event]) -> None:
        self.published.extend(events)
        self.log.append(("publish", len(events)))

    def flush(self, timeout: float) -> bool:
        if not self.accept():
            return False
        self.log.append(("durable", len(self.published)))
        return True

    def subscribe(self, name: str, on_invalid: OnInvalid) -> Subscription:
        raise NotImplementedError

    def close(self) -> None:
        pass


def change(lsn: int, seq: int = 0) -> Event:
    data = {"inode": {"id": 7, "size": seq}, "changed": ["size"]}
    return Event(ev.INODE_UPDATED, lsn, seq, lsn, "2026-01-01T00:00:00+00:00", 7, data)


def batches(*items: Batch) -> Callable[[], Batch]:
    """Each call the next batch; then idle batches at the last position."""
    queue: Iterator[Batch] = iter(items)
    last = [START]

    def handler() -> Batch:
        batch = next(queue, None)
        if batch is None:
            return Batch([], last[0])
        last[0] = batch.position
        return batch

    return handler


def tailer(
    handler: Callable[[], Batch], accept: Callable[[], bool] = lambda: True, **options: int
) -> tuple[Tailer, list[tuple[str, int]], RecordingBus]:
    log: list[tuple[str, int]] = []
    bus = RecordingBus(log, accept)
    options.setdefault("flush_interval", 0)
    tail = Tailer(FakeSource(handler, log), bus, **options)  # type: ignore[arg-type]
    tail.open()
    return tail, log, bus


def confirmed_only_when_durable(log: list[tuple[str, int]]) -> list[int]:
    """The positions confirmed, checking that each confirmation (an advance or not: it says
    all that was read is durable) came when every event published so far was durable."""
    published = durable = 0
    confirmed = [START]
    for what, n in log:
        if what == "publish":
            published += n
        elif what == "durable":
            durable = n
        elif what == "confirm":
            assert durable == published, f"confirmed {n} with {published - durable} in flight"
            if n > confirmed[-1]:
                confirmed.append(n)
    return confirmed[1:]


def test_the_source_is_confirmed_only_after_the_bus_made_the_events_durable() -> None:
    tail, log, bus = tailer(batches(Batch([change(150), change(150, 1)], 160)))
    tail.handle(tail.source.read(100, 0))
    assert log == [("publish", 2), ("durable", 2), ("confirm", 160)]
    assert bus.published == [change(150), change(150, 1)]


def test_a_failing_flush_confirms_nothing() -> None:
    def refuse() -> bool:
        raise BusError("broker gone")

    tail, log, _ = tailer(batches(Batch([change(150)], 160)), accept=refuse)
    with pytest.raises(BusError, match="broker gone"):
        tail.handle(tail.source.read(100, 0))
    assert confirmed_only_when_durable(log) == []


def test_a_large_transaction_is_flushed_in_pieces_and_confirmed_at_its_end() -> None:
    pieces = [Batch([change(900, 4 * i + j) for j in range(4)], START) for i in range(5)]
    tail, log, _ = tailer(batches(*pieces, Batch([], 950)), max_unflushed=8)
    for _ in range(5):
        tail.handle(tail.source.read(100, 0))
    assert ("durable", 8) in log and ("durable", 16) in log  # memory stays bounded
    assert confirmed_only_when_durable(log) == []  # still inside it
    tail.handle(tail.source.read(100, 0))  # the commit was read: idle at its end
    assert confirmed_only_when_durable(log) == [950]


def test_an_idle_source_moves_the_consumers_on_with_a_heartbeat() -> None:
    tail, log, bus = tailer(batches(Batch([], 300)))
    tail.handle(tail.source.read(100, 0))
    (beat,) = bus.published
    assert (beat.type, beat.lsn, beat.inode_id) == (ev.HEARTBEAT, 300, None)
    assert confirmed_only_when_durable(log) == [300]
    assert ("durable", 1) in log  # the heartbeat itself was flushed
    tail.handle(tail.source.read(100, 0))
    assert len(bus.published) == 1  # nothing new: no second heartbeat


def test_a_slow_flush_keeps_the_stream_alive_without_moving_the_position() -> None:
    answers = iter([False, False, True])
    tail, log, _ = tailer(
        batches(Batch([change(150)], 160)), accept=lambda: next(answers), max_unflushed=1
    )
    tail.handle(tail.source.read(100, 0))  # at the bound: the tailer waits for the bus
    assert log == [
        ("publish", 1),
        ("alive", 0),  # a sign of life, confirming nothing
        ("alive", 0),
        ("durable", 1),
        ("confirm", 160),
    ]


def test_a_bus_behind_does_not_hold_the_tailer_until_the_bound() -> None:
    """A consumer applying a backlog: the tailer asks the bus without waiting, reads on,
    confirms once the bus has taken everything, and waits only at `max_unflushed`."""
    behind = [True]
    reads = [Batch([change(150 + 10 * i)], 160 + 10 * i) for i in range(4)]
    tail, log, bus = tailer(batches(*reads), accept=lambda: not behind[0], max_unflushed=3)
    tail.handle(tail.source.read(100, 0))
    tail.handle(tail.source.read(100, 0))
    assert log == [("publish", 1), ("publish", 1)]  # asked twice, never waited, no confirm
    behind[0] = False
    tail.handle(tail.source.read(100, 0))  # the bound: waits (here: done at once)
    assert log[-2:] == [("durable", 3), ("confirm", 180)]
    behind[0] = True
    tail.handle(tail.source.read(100, 0))
    tail.handle(tail.source.read(100, 0))  # idle at 190: asks, does not wait
    assert confirmed_only_when_durable(log) == [180]
    behind[0] = False
    tail.handle(tail.source.read(100, 0))  # idle again: now durable
    assert confirmed_only_when_durable(log) == [180, 190]
    assert [e.lsn for e in bus.published if e.type != ev.HEARTBEAT] == [150, 160, 170, 180]
    assert ("alive", 0) not in log


def test_stopping_flushes_and_confirms_what_was_read() -> None:
    stop = threading.Event()
    reads = iter([Batch([change(150)], 160), Batch([change(170)], 180)])

    def handler() -> Batch:
        batch = next(reads)
        if batch.position == 180:
            stop.set()  # the last batch: nothing flushed it yet
        return batch

    tail, log, bus = tailer(handler, flush_interval=3600)  # only the stop may flush here
    tail.run(stop)
    assert [e.lsn for e in bus.published] == [150, 170]
    assert log == [("publish", 1), ("publish", 1), ("durable", 2), ("confirm", 180)]
    assert tail.confirmed == 180
