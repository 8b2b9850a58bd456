"""kill -9 of the real pipeline process loses nothing.

At chosen points: between publishing a batch and flushing it, and between flushing it and
confirming the source (tests/integration/gated_pipeline.py stops there). At random moments:
ground truth is a second replication slot created before anything happens, read at the end:
every change it holds must have been delivered, and an event delivered twice must lie after
the slot position confirmed when the process was killed.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import psycopg
import pytest

from epipe import events as ev
from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.namespace import Namespace
from epipe.lsn import lsn_from_str
from epipe.pipeline.store import PipelineStore
from epipe.source.slot import slot_state as read_slot
from tests.integration.helpers import slot_events, wait_until
from tests.integration.pipeline_helpers import PipelineProcess, new_slot
from tests.integration.replay import Model, read_events


def slot_state(conn: psycopg.Connection, slot: str) -> tuple[bool, int] | None:
    """(active, confirmed position) once the slot has a confirmed position: a slot just
    created has none for a moment (its first snapshot is still being built)."""
    state = read_slot(conn, slot)
    if state is None or state.confirmed_lsn is None:
        return None
    return state.active, state.confirmed_lsn


def delivered_lines(events_file: Path) -> int:
    return events_file.read_bytes().count(b"\n") if events_file.exists() else 0


def grown(events_file: Path, lines: int) -> bool:
    return delivered_lines(events_file) >= lines


def workload(dsn: str, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    with connect(dsn) as conn:
        ns = Namespace(conn)
        i = 0
        while not stop.is_set():
            i += 1
            d = f"/w/d{rng.randrange(8)}"
            try:
                choice = rng.random()
                if choice < 0.35:
                    ns.mkdir(d, parents=True)
                    ns.put(f"{d}/f{i}", size=i)
                elif choice < 0.55:
                    ns.setxattr(d, "labels", {"n": i, "tags": ["x"] * (i % 5)})
                elif choice < 0.7:
                    ns.mv(d, f"/w/d{rng.randrange(8)}")
                elif choice < 0.8:
                    ns.rm(d, recursive=True)
                else:
                    ns.cat(f"{d}/f{rng.randrange(i)}")
            except FsError:
                pass


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_duplicates_only_after_the_slot(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    conn.execute("CREATE PUBLICATION epipe FOR TABLE inodes, xattrs, prov_ops")
    truth_slot = new_slot()
    conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [truth_slot])
    slot = new_slot()
    events_file = tmp_path / "events.jsonl"
    process = PipelineProcess(dsn, tmp_path, slot, events_file)
    rng = random.Random(11)
    stop = threading.Event()
    writer = threading.Thread(target=workload, args=(dsn, stop, 3))
    kills: list[tuple[int, int]] = []  # (lines delivered before the kill, confirmed position)
    process.start()
    wait_until(lambda: (slot_state(conn, slot) or (False, 0))[0])
    writer.start()
    try:
        for _ in range(6):
            # a random moment of a running stream: after some more events were delivered
            more = delivered_lines(events_file) + rng.randint(50, 400)
            wait_until(partial(grown, events_file, more), why=process.log.read_text)
            process.kill()
            state = slot_state(conn, slot)
            assert state is not None
            wait_until(lambda: not (slot_state(conn, slot) or (True, 0))[0])
            position = slot_state(conn, slot)[1]  # type: ignore[index]
            kills.append((len(read_events(events_file)), position))
            process.start()
            wait_until(lambda: (slot_state(conn, slot) or (False, 0))[0])
    finally:
        stop.set()
        writer.join()
    end = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
    wait_until(
        lambda: (slot_state(conn, slot) or (False, 0))[1] >= lsn_from_str(end),
        timeout=120,
        why=lambda: f"{slot_state(conn, slot)} < {end}: {process.log.read_text()[-3000:]}",
    )
    assert process.stop() == 0, process.log.read_text()

    delivered = [e for e in read_events(events_file)]
    expected = slot_events(conn, truth_slot, "epipe")
    conn.execute("SELECT pg_drop_replication_slot(%s)", [truth_slot])
    assert len(expected) > 200
    streamed = {(e.lsn, e.seq): e for e in delivered if not e.snapshot}
    missing = [e for e in expected if (e.lsn, e.seq) not in streamed]
    assert missing == [], f"{len(missing)} committed changes never delivered"
    for e in expected:  # what was delivered is what was committed
        assert streamed[(e.lsn, e.seq)] == e

    # an event delivered before a kill and again after it lies after that kill's position
    first_seen: dict[tuple[int, int], int] = {}
    duplicates = 0
    boundaries = [lines for lines, _ in kills]
    for index, event in enumerate(delivered):
        if event.snapshot:
            continue
        key = (event.lsn, event.seq)
        if key in first_seen:
            duplicates += 1
            for lines, position in kills:
                if first_seen[key] < lines <= index:  # seen before this kill, again after
                    assert event.lsn >= position, (event, position)
        else:
            first_seen[key] = index
    assert len(kills) == 6 and boundaries == sorted(boundaries)
    assert Model.of(delivered).differences(Model.from_database(conn)) == []
    print(
        f"{len(expected)} changes, {len(delivered)} delivered, {duplicates} duplicates, "
        f"kills at {kills}"
    )


def gate_events(events_file: Path) -> list[ev.Event]:
    """The streamed creations of the inode named `gate`, as delivered."""
    return [
        e
        for e in read_events(events_file)
        if e.type == ev.INODE_CREATED and not e.snapshot and e.data["inode"]["name"] == "gate"
    ]


@pytest.mark.parametrize("point", ["before", "after"])
def test_kill_9_between_publish_flush_and_confirm_loses_nothing(
    dsn: str, conn: psycopg.Connection, tmp_path: Path, point: str
) -> None:
    """Killed with the gate's batch published but not flushed (`before`), or flushed but not
    confirmed (`after`): the source was never confirmed past it, so a restart delivers it
    (again). A tailer that confirmed before its flush fails both."""
    slot = new_slot()
    events_file = tmp_path / "events.jsonl"
    journal = tmp_path / "journal"
    argv = [sys.executable, "-m", "tests.integration.gated_pipeline", dsn, str(tmp_path)]
    with open(tmp_path / "gated.log", "ab") as output:
        gated = subprocess.Popen(
            [*argv, slot, str(events_file), point],
            cwd=Path(__file__).resolve().parents[2],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:

        def log() -> str:
            return (tmp_path / "gated.log").read_text()[-2000:]

        store = PipelineStore.on(conn)
        wait_until(lambda: (backfill := store.backfill(slot)) and all(b.done for b in backfill))
        Namespace(conn).mkdir("/gate")

        def journaled() -> list[str]:
            return journal.read_text().splitlines() if journal.exists() else []

        # Stopped in the flush, and the tailer has since read on twice (it asks the bus
        # without waiting and goes on): whatever it confirmed before, it has confirmed.
        wait_until(
            lambda: "stopped" in (lines := journaled()) and len(lines) - lines.index("stopped") > 2,
            why=lambda: f"waiting for the gated pipeline to stop: {log()}",
        )
        told = max(int(line.split()[1]) for line in journaled() if line.startswith("confirm"))
        wait_until(
            lambda: (slot_state(conn, slot) or (False, 0))[1] >= told,
            why=lambda: "waiting for the slot",
        )
    finally:
        gated.send_signal(signal.SIGKILL)
        gated.wait()
    wait_until(lambda: not (slot_state(conn, slot) or (True, 0))[0], why=lambda: "slot release")
    confirmed = (slot_state(conn, slot) or (False, 0))[1]
    assert len(gate_events(events_file)) == (1 if point == "after" else 0)

    process = PipelineProcess(dsn, tmp_path, slot, events_file)
    process.start()
    end = lsn_from_str(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
    wait_until(
        lambda: (state := slot_state(conn, slot)) is not None and state[0] and state[1] >= end,
        why=lambda: f"waiting for the restarted pipeline: {process.log.read_text()[-2000:]}",
    )
    assert process.stop() == 0, process.log.read_text()

    delivered = gate_events(events_file)
    assert len(delivered) == (2 if point == "after" else 1), (confirmed, delivered)
    assert delivered[0].lsn >= confirmed
