"""Change capture: the change log reaches the bus completely, in order, and never past
what the consumers applied."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import psycopg
import pytest

from epipe import events as ev
from epipe.events import Event
from epipe.fs.namespace import Namespace
from epipe.lsn import lsn_from_str
from epipe.pipeline.runner import ConsumerSpec
from epipe.pipeline.store import PipelineStore
from epipe.sink import Rejected, Rejection
from epipe.sink.events_file import EventsFileSink
from tests.integration.helpers import wait_until
from tests.integration.pipeline_helpers import new_slot, running
from tests.integration.replay import Model, read_events


def confirmed(conn: psycopg.Connection, slot: str) -> int:
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [slot]
    ).fetchone()
    assert row is not None
    return lsn_from_str(row[0])


def test_every_operation_reaches_the_bus_in_commit_order(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    with running(dsn, tmp_path) as pipeline:
        ns.mkdir("/a/b", parents=True)
        ns.put("/a/b/f", size=5)
        ns.setxattr("/a/b/f", "labels", {"objects": {"bicycle": 4}})
        ns.mv("/a/b", "/a/c")
        ns.write("/a/c/f", size=9)
        ns.cat("/a/c/f")
        token = ns.rm("/a", recursive=True).token
        pipeline.wait(conn, token)
        events = read_events(pipeline.events_file)
    stream = [e for e in events if not e.snapshot]
    assert [e.type for e in stream if e.type != ev.PROV_OP] == [
        "inode.created",
        "inode.created",  # mkdir -p
        "inode.created",
        "xattr.set",
        "inode.moved",
        "inode.updated",
        "inode.deleted",
        "inode.deleted",
        "inode.deleted",
        "xattr.removed",  # rm -r, parent first
    ]
    assert [e.position for e in events] == sorted(e.position for e in events)
    assert Model.of(events).differences(Model.from_database(conn)) == []


def test_the_slot_does_not_advance_when_a_sink_flush_fails(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    failing = threading.Event()

    class FlakySink(EventsFileSink):
        def flush(self) -> list[Rejection]:
            if failing.is_set():
                raise OSError("disk full")
            return super().flush()

    slot = new_slot()
    path = tmp_path / "flaky.jsonl"
    with running(
        dsn,
        tmp_path,
        slot=slot,
        consumers=[ConsumerSpec("flaky", lambda: FlakySink(path))],
        expect_failure=True,
    ) as pipeline:
        pipeline.wait(conn, ns.mkdir("/before").token)
        before = confirmed(conn, slot)
        failing.set()
        lost = ns.mkdir("/during").token
        deadline = time.monotonic() + 30
        while not pipeline.errors and time.monotonic() < deadline:
            time.sleep(0.05)
    assert pipeline.errors, "the pipeline must stop when a sink cannot flush"
    assert "disk full" in str(pipeline.errors[0])
    assert confirmed(conn, slot) < lsn_from_str(lost)  # never past what was not applied
    assert confirmed(conn, slot) >= before
    # a restart delivers the change again
    failing.clear()
    with running(
        dsn, tmp_path, slot=slot, consumers=[ConsumerSpec("flaky", lambda: FlakySink(path))]
    ) as again:
        again.wait(conn, lost)
    names = [e.data["inode"]["name"] for e in read_events(path) if e.type == ev.INODE_CREATED]
    assert "during" in names


def test_a_rejected_event_is_dead_lettered_and_the_pipeline_goes_on(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    class PickySink(EventsFileSink):
        def add(self, event: Event) -> None:
            if event.type == ev.XATTR_SET and event.data["xattr"]["name"] == "poison":
                raise Rejected("mapping conflict on labels.poison")
            super().add(event)

    path = tmp_path / "picky.jsonl"
    with running(
        dsn, tmp_path, consumers=[ConsumerSpec("picky", lambda: PickySink(path))]
    ) as pipeline:
        pipeline.backfilled(conn)
        ns.put("/f")
        ns.setxattr("/f", "poison", 1)
        pipeline.wait(conn, ns.setxattr("/f", "fine", 2).token)
    assert PipelineStore.on(conn).dead_letter_counts() == {"picky": 1}
    reason, event = conn.execute("SELECT reason, event FROM epipe_dead_letters").fetchone()  # type: ignore[misc]
    assert reason == "mapping conflict on labels.poison"
    assert event["xattr"]["name"] == "poison"
    names = [e.data["xattr"]["name"] for e in read_events(path) if e.type == ev.XATTR_SET]
    assert names == ["fine"]


def test_heartbeats_carry_positions_past_uncaptured_writes(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    conn.execute("CREATE TABLE noise (x text)")
    with running(dsn, tmp_path) as pipeline:
        pipeline.wait(conn, ns.mkdir("/d").token)
        for _ in range(20):
            conn.execute("INSERT INTO noise SELECT repeat('x', 1000) FROM generate_series(1, 100)")
        end = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
        pipeline.wait(conn, end, timeout=30)  # no captured change, yet everyone moves on
        assert confirmed(conn, pipeline.slot) >= lsn_from_str(end)
        events = read_events(pipeline.events_file)
    assert [e.type for e in events if not e.snapshot and e.type != ev.PROV_OP] == ["inode.created"]


def test_backfill_of_a_non_empty_database_under_concurrent_changes(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    from epipe.fs.model import Actor
    from epipe.load.bulk import load_images

    load_images(conn, Actor(), under="/data", count=1500, seed=4)
    stop = threading.Event()
    writes: list[str] = []

    def writer() -> None:  # changes rows while the backfill reads them
        from epipe.db.server import connect
        from epipe.errors import FsError

        rng = random.Random(7)
        with connect(dsn) as own:
            w = Namespace(own)
            entries = [f"/data/{e.name}" for e in w.ls("/data")]
            files = [
                f"{d}/{s.name}/{f.name}"
                for d in entries
                for s in w.ls(d)
                for f in w.ls(f"{d}/{s.name}")
            ][:400]
            i = 0
            while not stop.is_set():
                path = rng.choice(files)
                i += 1
                try:
                    choice = rng.random()
                    if choice < 0.4:
                        w.setxattr(path, "labels", {"seen": i})
                    elif choice < 0.6:
                        w.write(path, size=i)
                    elif choice < 0.75:
                        w.rm(path)
                    elif choice < 0.9:
                        w.mv(path, f"{path}.moved{i}")
                        files.append(f"{path}.moved{i}")
                    else:
                        w.put(f"/data/new{i}", size=i)
                    writes.append(path)
                except FsError:
                    pass

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        with running(dsn, tmp_path, backfill_chunk=300) as pipeline:
            pipeline.backfilled(conn, timeout=120)  # the writer changes rows all along
            wait_until(lambda: len(writes) > 50, why=lambda: f"{len(writes)} writes")
            stop.set()
            thread.join()
            pipeline.wait(conn, timeout=60)
            events = read_events(pipeline.events_file)
    finally:
        stop.set()
        thread.join()
    assert len(writes) > 50, "the writer must have raced the backfill"
    snapshots = [e for e in events if e.snapshot]
    assert Model.of(events).differences(Model.from_database(conn)) == []
    assert len({e.inode_id for e in snapshots if e.type == ev.INODE_CREATED}) > 1000


@pytest.mark.parametrize("rows", [0, 1])
def test_backfill_of_tiny_tables(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path, rows: int
) -> None:
    for i in range(rows):
        ns.put(f"/f{i}")
    with running(dsn, tmp_path) as pipeline:
        pipeline.wait(conn, ns.mkdir("/after").token)
        pipeline.backfilled(conn)
        pipeline.wait(conn)
        events = read_events(pipeline.events_file)
    assert Model.of(events).differences(Model.from_database(conn)) == []
