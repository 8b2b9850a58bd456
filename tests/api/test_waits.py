"""PositionFeed: read-your-writes waits on the event loop, fed by one reader of positions."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest

from epipe.pipeline.store import ConsumerPosition
from search_api.problems import Problem
from search_api.waits import PositionFeed

TOKEN = 1000


class Positions:
    """The consumers' positions, as a test sets them; counts the reads (from any thread)."""

    def __init__(self, *applied: int) -> None:
        self.applied = list(applied)
        self.reads = 0
        self.threads: set[int] = set()
        self.failing = False

    def read(self) -> list[ConsumerPosition]:
        self.reads += 1
        self.threads.add(threading.get_ident())
        if self.failing:
            raise OSError("the database went away")
        now = datetime.now(UTC)
        return [
            ConsumerPosition(f"index{i}", lsn, now, now, True, 0.5)
            for i, lsn in enumerate(self.applied)
        ]


def feed(positions: Positions, total: int = 100, per_caller: int = 10) -> PositionFeed:
    return PositionFeed(positions.read, max_waits=total, max_waits_per_caller=per_caller)


async def problem_of(waiting: object) -> Problem:
    with pytest.raises(Problem) as caught:
        await waiting  # type: ignore[misc]
    return caught.value


def test_a_wait_ends_once_every_consumer_has_applied_the_token() -> None:
    positions = Positions(TOKEN - 10, TOKEN - 5)

    async def scenario() -> None:
        waits = feed(positions)
        waiting = asyncio.ensure_future(waits.wait_applied("alice", TOKEN, 10_000))
        while positions.reads < 3:  # the wait has seen the old positions a few times
            await asyncio.sleep(0.005)
        assert not waiting.done()
        positions.applied = [TOKEN, TOKEN + 1]
        await asyncio.wait_for(waiting, 5)
        assert waits.waiting == 0
        await waits.close()

    asyncio.run(scenario())


def test_many_waiters_share_one_reader() -> None:
    positions = Positions(TOKEN - 1)

    async def scenario() -> None:
        waits = feed(positions, total=500, per_caller=500)
        waiting = [
            asyncio.ensure_future(waits.wait_applied("alice", TOKEN, 10_000)) for _ in range(300)
        ]
        while waits.waiting < 300 or positions.reads < 5:
            await asyncio.sleep(0.005)
        reads_before = positions.reads
        positions.applied = [TOKEN]
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        # 300 waiters were answered by a couple of reads, not 300 (and not one thread each)
        assert positions.reads - reads_before <= 3
        assert len(positions.threads) <= 2
        await waits.close()

    asyncio.run(scenario())


def test_the_deadline_gives_409_with_the_lag() -> None:
    positions = Positions(TOKEN - 10, TOKEN)

    async def scenario() -> None:
        waits = feed(positions)
        problem = await problem_of(waits.wait_applied("alice", TOKEN, 50))
        assert problem.status == 409
        assert problem.extra["token"] == "0/3E8"
        assert [(lag["consumer"], lag["lag_bytes"]) for lag in problem.extra["lag"]] == [
            ("index0", 10)
        ]
        zero = await problem_of(waits.wait_applied("alice", TOKEN, 0))
        assert zero.status == 409  # after one fresh read
        await waits.close()

    asyncio.run(scenario())


def test_without_a_consumer_the_answer_is_409_at_once() -> None:
    async def scenario() -> None:
        waits = feed(Positions())
        started = asyncio.get_running_loop().time()
        problem = await problem_of(waits.wait_applied("alice", TOKEN, 30_000))
        assert problem.status == 409 and problem.detail == "no index consumer is running"
        assert asyncio.get_running_loop().time() - started < 5
        await waits.close()

    asyncio.run(scenario())


def test_waits_beyond_the_caps_are_429_at_once() -> None:
    positions = Positions(TOKEN - 1)

    async def scenario() -> None:
        waits = feed(positions, total=5, per_caller=3)
        held = [
            asyncio.ensure_future(waits.wait_applied(who, TOKEN, 30_000))
            for who in ("alice", "alice", "alice", "bob", "bob")
        ]
        while waits.waiting < 5:
            await asyncio.sleep(0.001)
        for who in ("alice", "bob", "carol"):  # alice: her cap; bob, carol: the total
            problem = await problem_of(waits.wait_applied(who, TOKEN, 30_000))
            assert problem.status == 429 and problem.headers == {"Retry-After": "1"}
        held[0].cancel()  # one of alice's ends: now carol may wait
        while waits.waiting > 4:
            await asyncio.sleep(0.001)
        positions.applied = [TOKEN]
        await waits.wait_applied("carol", TOKEN, 1000)
        await asyncio.wait_for(asyncio.gather(*held[1:]), 5)
        assert waits.waiting == 0
        await waits.close()

    asyncio.run(scenario())


def test_the_reader_stops_when_nobody_waits() -> None:
    positions = Positions(TOKEN)

    async def scenario() -> None:
        waits = feed(positions)
        await waits.wait_applied("alice", TOKEN, 1000)
        task = waits._task
        assert task is not None
        await asyncio.wait_for(task, 5)  # the reader's loop ends by itself
        reads = positions.reads
        positions.applied = [TOKEN + 1]
        await waits.wait_applied("alice", TOKEN + 1, 1000)  # it starts again with a waiter
        assert positions.reads > reads
        await waits.close()

    asyncio.run(scenario())


def test_a_failing_read_answers_503_and_the_next_one_recovers() -> None:
    positions = Positions(TOKEN)
    positions.failing = True

    async def scenario() -> None:
        waits = feed(positions)
        assert (await problem_of(waits.wait_applied("alice", TOKEN, 1000))).status == 503
        positions.failing = False
        await waits.wait_applied("alice", TOKEN, 1000)
        await waits.close()

    asyncio.run(scenario())
