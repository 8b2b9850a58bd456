"""A consumer group's applied position is the least over every part of the stream it reads:
a fast member never hides a slow one from `epipe wait` and read-your-writes.

The embedded index takes one writer: a second index consumer says so in one line."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from epipe import wiring
from epipe.db.server import connect
from epipe.errors import EpipeError
from epipe.index.engine import RUN
from epipe.pipeline.store import PipelineStore
from epipe.sink.index import IndexSink
from tests.integration.kafka_helpers import DEADLINE, Site
from tests.integration.pipeline_helpers import epipe_command

EVERY = frozenset({"epipe.fs:0", "epipe.fs:1", "epipe.prov:0"})


def applied(store: PipelineStore, name: str) -> int:
    return next(p.applied_lsn for p in store.positions() if p.name == name)


def test_the_group_stands_where_its_slowest_part_stands(conn: psycopg.Connection) -> None:
    store = PipelineStore.on(conn)
    store.register("provenance")
    fast, slow = "epipe.fs:0", "epipe.fs:1"
    store.record_parts("provenance", {fast: (900, None), "epipe.prov:0": (900, None)}, EVERY)
    assert applied(store, "provenance") == 0  # a part nobody has reported: nothing is known
    store.record_parts("provenance", {slow: (100, None)}, EVERY)
    assert applied(store, "provenance") == 100
    store.record_parts("provenance", {fast: (2000, None), "epipe.prov:0": (2000, None)}, EVERY)
    assert applied(store, "provenance") == 100  # the fast member cannot pull the group along
    store.record_parts("provenance", {slow: (1500, None)}, EVERY)
    assert applied(store, "provenance") == 1500
    # a member replaying an older batch after a crash moves nothing back
    store.record_parts("provenance", {slow: (700, None)}, EVERY)
    assert applied(store, "provenance") == 1500
    # a partition that moved to another member is taken up where it was
    store.record_parts("provenance", {fast: (2100, None)}, EVERY)
    store.record_parts("provenance", {slow: (2500, None), "epipe.prov:0": (2600, None)}, EVERY)
    assert applied(store, "provenance") == 2100


def test_a_group_of_one_part_is_the_in_process_bus(conn: psycopg.Connection) -> None:
    store = PipelineStore.on(conn)
    store.register("index")
    store.record_position("index", 42, "2026-12-01T00:00:00+00:00")
    store.record_position("index", 7, None)
    position = next(p for p in store.positions() if p.name == "index")
    assert position.applied_lsn == 42 and position.committed_at is not None
    assert store.forget("index")
    assert conn.execute("SELECT count(*) FROM epipe_consumer_parts").fetchone() == (0,)


def test_a_second_index_consumer_on_the_embedded_index_says_how_to_scale(
    dsn: str, tmp_path: Path
) -> None:
    store = wiring.open_tantivy_store(tmp_path / "index")
    with store.hold_writer(RUN), pytest.raises(EpipeError) as refused:  # a first consumer holds it
        IndexSink(lambda: connect(dsn), store)
    message = str(refused.value)
    assert "\n" not in message
    assert "single writer" in message and "EPIPE_INDEX=elasticsearch" in message


# -- members of one group as processes on the session's broker -------------------------------


def test_a_second_index_consumer_process_on_the_embedded_index_exits_with_one_line(
    site: Site,
) -> None:
    first = site.start("consume", "index")
    lock = site.home / "index" / "writer.lock"
    deadline = time.monotonic() + DEADLINE
    while not (lock.exists() and lock.read_text().endswith(f" pid {first.pid}")):
        assert first.alive(), site.logs()
        assert time.monotonic() < deadline, site.logs()
        time.sleep(0.05)
    second = epipe_command(site.env, "consume", "index")
    assert second.returncode == 1, (second.stdout, second.stderr)
    assert second.stderr.count("\n") == 1, second.stderr
    assert f"pid {first.pid}" in second.stderr and "single writer" in second.stderr
    assert "EPIPE_INDEX=elasticsearch" in second.stderr and "provenance" in second.stderr
    assert first.alive() and first.stop() == 0, site.logs()
