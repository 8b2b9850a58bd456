"""`fetched_ahead`: what a streamed read fetches comes in order until None, the next fetch
runs on its own thread while the caller works on the last, a failed fetch fails the caller
at that point, and stopping early leaves no fetch running. (Its reads against a real
server: the rebuild's and the index sink's integration tests.)"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from epipe.index.state import fetched_ahead

WAIT = 30.0  # seconds before a condition that never comes fails the test


def batches(results: list[list[int]]) -> tuple[Callable[[], list[int] | None], list[str]]:
    """A fetch returning `results` one by one, then None for good; and the threads it ran
    on."""
    left = list(results)
    threads: list[str] = []

    def fetch() -> list[int] | None:
        threads.append(threading.current_thread().name)
        return left.pop(0) if left else None

    return fetch, threads


def test_every_batch_comes_in_order_until_none() -> None:
    fetch, threads = batches([[1, 2], [], [4, 5, 6]])  # an empty batch is a batch
    assert list(fetched_ahead(fetch)) == [[1, 2], [], [4, 5, 6]]
    assert len(threads) == 4  # None ends it: no fetch after it
    assert threading.current_thread().name not in threads


def test_nothing_at_all_is_no_batch() -> None:
    fetch, threads = batches([])
    assert list(fetched_ahead(fetch)) == []
    assert len(threads) == 1


def test_the_next_fetch_runs_while_the_caller_holds_the_last() -> None:
    second_called = threading.Event()
    calls = 0

    def fetch() -> list[int] | None:
        nonlocal calls
        calls += 1
        if calls == 2:
            second_called.set()
        return [calls] if calls <= 3 else None

    reading = fetched_ahead(fetch)
    assert next(reading) == [1]
    # the caller has not asked for more: the second fetch runs (or ran) anyway
    assert second_called.wait(WAIT)
    assert calls == 2  # one ahead, never more
    assert list(reading) == [[2], [3]]


def test_a_failed_fetch_fails_the_caller_after_the_batches_before_it() -> None:
    calls = 0

    def fetch() -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionError("server closed the connection")
        return [calls]

    reading = fetched_ahead(fetch)
    assert next(reading) == [1]
    assert next(reading) == [2]
    with pytest.raises(ConnectionError, match="server closed"):
        next(reading)


def test_stopping_early_waits_for_the_fetch_in_flight_and_starts_no_other() -> None:
    release = threading.Event()
    in_flight = threading.Event()
    calls = 0

    def fetch() -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 2:
            in_flight.set()
            assert release.wait(WAIT)
        return [calls]

    reading = fetched_ahead(fetch)
    assert next(reading) == [1]
    assert in_flight.wait(WAIT)
    closer = threading.Thread(target=reading.close)
    closer.start()
    closer.join(0.05)  # a join with a timeout only looks: close must still be waiting
    assert closer.is_alive()
    release.set()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert calls == 2
