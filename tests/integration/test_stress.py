"""Concurrent clients moving and removing overlapping trees leave a valid tree.

Clients run until the history did what the test needs (so many moves, so many deletes),
not for a time: a busy machine makes fewer operations per second, never a weaker test.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable

import psycopg
import pytest

from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.namespace import Namespace
from tests.integration.helpers import tree_problems

NAMES = ("a", "b", "c", "d")
EXPECTED = {"ENOENT", "EEXIST", "EINVAL", "ENOTDIR", "ENOTEMPTY", "EISDIR"}


def random_path(rng: random.Random) -> str:
    return "/s/" + "/".join(rng.choice(NAMES) for _ in range(rng.randint(1, 4)))


def build(ns: Namespace, depth: int = 3) -> None:
    def fill(prefix: str, level: int) -> None:
        for name in NAMES[:3]:
            path = f"{prefix}/{name}"
            if level == depth:
                ns.put(path)
            else:
                ns.mkdir(path)
                fill(path, level + 1)

    ns.mkdir("/s")
    fill("/s", 1)


GIVE_UP = 300.0  # seconds: a history that has not done enough by then fails the test

Done = Callable[[], bool]


def client(
    dsn: str, seed: int, done: Done, outcomes: Counter[str], failures: list[BaseException]
) -> None:
    rng = random.Random(seed)
    try:
        with connect(dsn) as conn:
            ns = Namespace(conn)
            while not done() and not failures:
                op = rng.choices(["mv", "rm", "mkdir", "put"], weights=[5, 2, 2, 2])[0]
                try:
                    if op == "mv":
                        ns.mv(random_path(rng), random_path(rng))
                    elif op == "rm":
                        ns.rm(random_path(rng), recursive=rng.random() < 0.8)
                    elif op == "mkdir":
                        ns.mkdir(random_path(rng), parents=True)
                    else:
                        ns.put(random_path(rng))
                    outcomes[f"{op}:ok"] += 1
                except FsError as exc:
                    if exc.code not in EXPECTED:
                        raise
                    outcomes[f"{op}:{exc.code}"] += 1
    except BaseException as exc:
        failures.append(exc)


@pytest.mark.slow
def test_concurrent_mv_and_rm_r_on_overlapping_trees_keep_a_valid_tree(
    dsn: str, ns: Namespace, conn: psycopg.Connection
) -> None:
    outcomes: Counter[str] = Counter()
    failures: list[BaseException] = []
    give_up = time.monotonic() + GIVE_UP
    for round_ in range(3):
        build(ns) if round_ == 0 else ns.mkdir("/s", parents=True)

        def done(rounds: int = round_ + 1) -> bool:
            enough = (
                outcomes["mv:ok"] > 20 * rounds
                and outcomes["rm:ok"] > 7 * rounds
                and (rounds < 3 or outcomes["mv:EINVAL"] > 0)
            )
            return enough or time.monotonic() > give_up

        threads = [
            threading.Thread(target=client, args=(dsn, round_ * 100 + i, done, outcomes, failures))
            for i in range(6)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert tree_problems(conn) == []
    # the history really exercised concurrent moves and recursive deletes
    assert outcomes["mv:ok"] > 50, outcomes
    assert outcomes["rm:ok"] > 20, outcomes
    assert outcomes["mv:EINVAL"] > 0, outcomes


def mover(
    dsn: str,
    first: str,
    second: str,
    done: Done,
    moves: Counter[str],
    failures: list[BaseException],
) -> None:
    """Move /<first> into /<second> and back, as fast as possible."""
    try:
        with connect(dsn) as conn:
            ns = Namespace(conn)
            while not done() and not failures:
                for src, dst in (
                    (f"/{first}", f"/{second}/{first}"),
                    (f"/{second}/{first}", f"/{first}"),
                ):
                    try:
                        ns.mv(src, dst)
                        moves[first] += 1
                    except FsError as exc:
                        if exc.code not in ("ENOENT", "EINVAL"):
                            raise
    except BaseException as exc:
        failures.append(exc)


def test_crossing_directory_moves_never_make_a_cycle(
    dsn: str, ns: Namespace, conn: psycopg.Connection
) -> None:
    # mv /p /q/p racing mv /q /p/q: each is valid alone, together they would detach a cycle.
    ns.mkdir("/p")
    ns.mkdir("/q")
    moves: Counter[str] = Counter()
    failures: list[BaseException] = []
    give_up = time.monotonic() + GIVE_UP

    def done() -> bool:
        return (moves["p"] > 20 and moves["q"] > 20) or time.monotonic() > give_up

    threads = [
        threading.Thread(target=mover, args=(dsn, a, b, done, moves, failures))
        for a, b in (("p", "q"), ("q", "p"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert moves["p"] > 20 and moves["q"] > 20, moves
    assert tree_problems(conn) == []
