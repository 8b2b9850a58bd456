"""No silent loss on the source side, with the real `epipe run` process: a slot or a
publication lost (while the pipeline is stopped, or under it while it runs) is repaired by a
backfill that also removes what was deleted in the gap; `epipe wait` does not return while a
backfill or an index rebuild still runs. Each case is checked with the real `epipe verify`
and by replaying the events file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from epipe import events as ev
from epipe import wiring
from epipe.db.server import connect
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.load.bulk import load_images
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.store import PipelineStore
from epipe.settings import Settings
from epipe.source import Source
from tests.integration.helpers import wait_until
from tests.integration.pipeline_helpers import (
    PipelineProcess,
    epipe_command,
    epipe_env,
    new_slot,
    streaming,
    wait_caught_up,
)
from tests.integration.replay import Model, read_events


def epipe(dsn: str, home: Path, slot: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI, as a process."""
    return epipe_command(epipe_env(dsn, home, slot), *args)


class Pipeline:
    """`epipe run` over a few hundred annotated images, with its events file."""

    def __init__(self, dsn: str, conn: psycopg.Connection, home: Path, *args: str) -> None:
        load_images(conn, Actor(), under="/data", count=300, seed=3)
        self.dsn, self.conn, self.home = dsn, conn, home
        self.slot = new_slot()
        self.events_file = home / "events.jsonl"
        self.process = PipelineProcess(dsn, home, self.slot, self.events_file, *args)

    def start_and_catch_up(self) -> None:
        self.process.start()
        self.catch_up()

    def catch_up(self) -> None:
        wait_until(
            lambda: streaming(self.conn, self.slot),
            why=lambda: "for the slot to stream",
            timeout=120,
        )
        wait_caught_up(self.conn, self.slot)

    def stop(self) -> None:
        assert self.process.stop() == 0, self.process.log.read_text()

    def reap(self) -> None:
        """Kill the process if a failed test left it running."""
        process = self.process.process
        if process is not None and process.poll() is None:
            self.process.kill()

    def removable(self, ns: Namespace) -> str:
        """A directory with files below it, to delete while nothing captures it."""
        directory = next(e.name for e in ns.ls("/data") if e.kind == "dir")
        return f"/data/{directory}"

    def assert_repaired(self, removed: str, logged: str) -> None:
        """Stopped: converged, and resynchronised with a word in the log."""
        self.stop()
        self.assert_converged(removed)
        assert logged in self.process.log.read_text()
        assert any(e.type == ev.TABLE_TRUNCATED and e.snapshot for e in self.events())

    def events(self) -> list[ev.Event]:
        return read_events(self.events_file)

    def assert_converged(self, removed: str) -> None:
        """The index equals the database (`epipe verify`), and so does the events file's
        replay; nothing is left under `removed`."""
        verified = epipe(self.dsn, self.home, self.slot, "verify", "--timeout", "0")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "index equals the database" in verified.stdout
        assert Model.of(self.events()).differences(Model.from_database(self.conn)) == []
        found = epipe(self.dsn, self.home, self.slot, "search", "--under", removed, "--json")
        assert json.loads(found.stdout)["total"] == 0, found.stdout[:2000]


def publication_exists(conn: psycopg.Connection) -> bool:
    return (
        conn.execute("SELECT 1 FROM pg_publication WHERE pubname = 'epipe'").fetchone() is not None
    )


@pytest.fixture
def pipeline(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> Iterator[Pipeline]:
    """A running pipeline that has caught up."""
    running = Pipeline(dsn, conn, tmp_path)
    try:
        running.start_and_catch_up()
        yield running
    finally:
        running.reap()


LOSSES = {
    "slot": ("SELECT pg_drop_replication_slot(%s)", "resynchronising"),
    "publication": ('DROP PUBLICATION "epipe"', "publication 'epipe' was missing"),
}


@pytest.mark.parametrize("lost", LOSSES)
def test_a_slot_or_publication_lost_while_stopped_is_repaired_and_the_gap_resynchronised(
    conn: psycopg.Connection, ns: Namespace, pipeline: Pipeline, lost: str
) -> None:
    pipeline.stop()
    drop, logged = LOSSES[lost]
    conn.execute(drop, [pipeline.slot] if "%s" in drop else None)
    removed = pipeline.removable(ns)
    ns.rm(removed, recursive=True)  # no slot sees this, or pgoutput skips it
    ns.mkdir("/data/new")

    pipeline.start_and_catch_up()
    pipeline.assert_repaired(removed, logged)


def test_a_slot_dropped_under_a_running_pipeline_is_recreated_and_resynchronised(
    conn: psycopg.Connection, ns: Namespace, pipeline: Pipeline
) -> None:
    removed = pipeline.removable(ns)
    with connect(pipeline.dsn) as admin, conn.transaction():
        # committed only after the slot is gone: no slot, old or new, ever decodes it (a
        # new slot's creation waits for transactions in progress and starts after them)
        ns.rm(removed, recursive=True)
        while admin.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", [pipeline.slot]
        ).fetchone() != (0,):
            admin.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
                "WHERE slot_name = %s AND active_pid IS NOT NULL",
                [pipeline.slot],
            )
            admin.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                [pipeline.slot],
            )
    process = pipeline.process.process
    assert process is not None
    # the stream broke: the process either exits (to be restarted) or reconnects
    wait_until(
        lambda: process.poll() is not None or streaming(conn, pipeline.slot),
        why=lambda: "for the pipeline to exit or stream again",
        timeout=120,
    )
    if process.poll() is not None:
        assert "replication stream" in pipeline.process.log.read_text()
        pipeline.process.start()
    pipeline.catch_up()
    pipeline.assert_repaired(removed, "resynchronising")


def test_a_publication_dropped_under_a_running_pipeline_is_noticed_and_repaired(
    conn: psycopg.Connection, ns: Namespace, pipeline: Pipeline
) -> None:
    removed = pipeline.removable(ns)
    with conn.transaction():  # one commit: the delete is skipped, whenever the drop is seen
        conn.execute('DROP PUBLICATION "epipe"')
        ns.rm(removed, recursive=True)
    # the pipeline records its backfill before it creates the publication again
    wait_until(
        lambda: publication_exists(conn), timeout=30, why=lambda: "for the publication's repair"
    )
    wait_caught_up(conn, pipeline.slot)
    ns.mkdir("/data/after")  # streamed again
    wait_caught_up(conn, pipeline.slot)
    pipeline.assert_repaired(removed, "dropped or altered while streaming")


@pytest.mark.slow
def test_wait_does_not_return_while_a_backfill_runs(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    load_images(conn, Actor(), under="/data", count=2000, seed=4)
    slot = new_slot()
    events_file = tmp_path / "events.jsonl"
    process = PipelineProcess(dsn, tmp_path, slot, events_file, "--backfill-chunk", "40")
    process.start()
    try:
        wait_until(
            lambda: PipelineStore.on(conn).backfill(slot),
            why=lambda: "for the backfill to start",
            timeout=120,
        )
        waited = epipe(dsn, tmp_path, slot, "wait", "--timeout", "240")
        assert waited.returncode == 0, waited.stderr
        assert all(state.done for state in PipelineStore.on(conn).backfill(slot))
        # and every backfilled row has reached the consumers
        events = read_events(events_file)
        assert Model.of(events).differences(Model.from_database(conn)) == []
        # a first backfill (nothing applied before) costs consumers no resynchronisation
        assert not any(e.type == ev.TABLE_TRUNCATED for e in events)
    finally:
        assert process.stop() == 0, process.log.read_text()


def test_wait_names_a_running_backfill_and_a_running_rebuild(conn: psycopg.Connection) -> None:
    store = PipelineStore.on(conn)
    store.start_backfill("s", ["inodes", "xattrs"])
    store.save_backfill("s", "inodes", [7], 7, True)
    (request,) = (
        conn.execute(
            "INSERT INTO epipe_index_requests (started_at) VALUES (now()) RETURNING id"
        ).fetchone()
        or ()
    )
    conn.execute("INSERT INTO epipe_index_requests DEFAULT VALUES")  # not started: not waited on
    _, lagging = pipeline_status.wait(conn, "s", 0, timeout=0)
    running = ["backfill of xattrs running", f"index rebuild {request} running"]
    assert lagging[:2] == running
    assert pipeline_status.status(conn, "s")["running"] == running  # `epipe status` shows it
    store.save_backfill("s", "xattrs", [], 0, True)
    conn.execute("UPDATE epipe_index_requests SET finished_at = now()")
    assert pipeline_status.running(conn, "s") == []


def _backfilled_events(source: Source, conn: psycopg.Connection, slot: str) -> list[ev.Event]:
    """Read the source until its backfill is confirmed done; the events read."""
    events: list[ev.Event] = []
    store = PipelineStore.on(conn)
    while not all(state.done for state in store.backfill(slot)):
        batch = source.read(1_000, 0.05)
        events.extend(batch.events)
        source.confirm(batch.position)
    return events


@pytest.mark.parametrize("applied_before_start", [False, True])
def test_a_backfill_resynchronises_only_consumers_that_applied_changes_before_it_started(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path, applied_before_start: bool
) -> None:
    ns.put("/f")
    slot = new_slot()
    settings = Settings(dsn=dsn, slot=slot, home=tmp_path, heartbeat_interval=0.05)  # type: ignore[arg-type]
    store = PipelineStore.on(conn)
    store.register("index")
    if applied_before_start:  # e.g. the slot was lost: the consumer may hold deleted rows
        store.record_position("index", 1, None)
    source = wiring.open_source(settings, dsn)
    try:
        source.open()
        # a consumer that applies what the new slot streams before the first chunk is read
        store.record_position("index", 2, None)
        truncations = [
            e for e in _backfilled_events(source, conn, slot) if e.type == ev.TABLE_TRUNCATED
        ]
    finally:
        source.close()
    assert len(truncations) == (1 if applied_before_start else 0)
