"""`epipe bench capture`: row changes per second from committed changes to the bus.

The same committed changes are drained from separate replication slots, created together
before the workload: by `pg_recvlogical` (pgoutput to /dev/null: what the server can decode
and send, the physical limit here), by epipe's tailer into the in-process bus with a
consumer that acknowledges every event (and into Kafka when a broker is configured), and by
Debezium's embedded engine as epipe's source into the same bus (where Java and the engine
are installed and the server takes TCP). Runs alternate, twice each, and the best of each
is compared. Debezium's rate is counted from its first event: its start (the JVM, the
connector) is reported apart.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from epipe import wiring
from epipe.db.embedded import binaries_dir
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.errors import EpipeError
from epipe.events import Event
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.load.bulk import load_images
from epipe.lsn import lsn_from_str, lsn_to_str
from epipe.pipeline.runner import ConsumerSpec
from epipe.pipeline.store import PipelineStore
from epipe.settings import Settings
from epipe.sink import Rejection
from epipe.source import translate

DATABASE = "epipe_bench"
PUBLICATION = "epipe_bench"


@dataclass(frozen=True)
class Drain:
    what: str
    changes: int
    seconds: float
    start_s: float = 0.0  # before the first event (counted apart, not in `seconds`)

    @property
    def per_s(self) -> float:
        return self.changes / self.seconds


class _CountingSink:
    def __init__(self) -> None:
        self.count = 0

    def add(self, event: Event) -> None:
        self.count += 1

    def flush(self) -> list[Rejection]:
        return []

    def close(self) -> None:
        pass


def run(
    admin_dsn: str,
    settings: Settings,
    *,
    images: int = 50_000,
    repeats: int = 2,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """Drain the same changes with pg_recvlogical, the tailer into the in-process bus, and
    (when EPIPE_KAFKA_BOOTSTRAP is set) the tailer into Kafka."""
    kafka = bool(settings.kafka_bootstrap)
    debezium_skipped = _debezium_unavailable(settings, admin_dsn)
    dsn = _fresh_database(admin_dsn)
    with connect(dsn) as conn:
        migrate(conn)
        conn.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE inodes, xattrs, prov_ops")
        kinds = (
            ["recvlogical", "epipe"]
            + (["kafka"] if kafka else [])
            + ([] if debezium_skipped else ["debezium"])
        )
        slots = {(kind, i): f"bench_{kind}_{i}" for kind in kinds for i in range(repeats)}
        for slot in slots.values():
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", [slot])
        progress(f"workload: {images:,} images loaded, then removed with rm -r")
        changes, end = _workload(conn, images)
        drains: dict[str, list[Drain]] = {kind: [] for kind in kinds}
        for i in range(repeats):
            for kind in kinds:
                slot = slots[(kind, i)]
                if kind == "recvlogical":
                    drain = _recvlogical(dsn, slot, end, changes)
                else:  # the built-in tailer (whatever EPIPE_SOURCE says) or Debezium
                    update = {
                        "slot": slot,
                        "publication": PUBLICATION,
                        "bus": "kafka" if kind == "kafka" else "inprocess",
                        "source": "debezium" if kind == "debezium" else "postgres",
                    }
                    drain = _epipe(settings.model_copy(update=update), dsn, end, changes)
                drains[kind].append(drain)
                progress(f"{kind} run {i + 1}: {drain.per_s:,.0f} changes/s")
        for slot in slots.values():
            conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
    best = {kind: max(d.per_s for d in runs) for kind, runs in drains.items()}
    result: dict[str, Any] = {
        "changes": changes,
        "events_per_s": round(best["epipe"]),
        "baseline": "pg_recvlogical (pgoutput, to /dev/null)",
        "baseline_events_per_s": round(best["recvlogical"]),
        "ratio": round(best["epipe"] / best["recvlogical"], 3),
        "runs": {kind: [round(d.per_s) for d in runs] for kind, runs in drains.items()},
        "compiled_parse": translate.COMPILED,  # the tailer's tuple parse (_tuples.c)
    }
    if kafka:
        result["kafka_events_per_s"] = round(best["kafka"])
        result["kafka_ratio"] = round(best["kafka"] / best["recvlogical"], 3)
    if debezium_skipped:
        result["debezium_skipped"] = debezium_skipped
    else:
        result["debezium_events_per_s"] = round(best["debezium"])
        result["debezium_ratio"] = round(best["debezium"] / best["recvlogical"], 3)
        result["debezium_start_s"] = round(min(d.start_s for d in drains["debezium"]), 2)
    _drop_database(admin_dsn)
    return result


def _debezium_unavailable(settings: Settings, admin_dsn: str) -> str | None:
    """Why Debezium's drain cannot run here, or None."""
    from epipe.db.server import tcp_dsn
    from epipe.source.debezium import unavailable

    reason = unavailable()
    if reason is None:
        try:
            tcp_dsn(settings, admin_dsn)
        except EpipeError as exc:
            reason = str(exc)
    return reason


def _fresh_database(admin_dsn: str) -> str:
    _drop_database(admin_dsn)
    with connect(admin_dsn) as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
        dbname = conn.info.dbname
    return admin_dsn.replace(f"dbname={dbname}", f"dbname={DATABASE}")


def _drop_database(admin_dsn: str) -> None:
    with connect(admin_dsn) as conn:
        for (slot,) in conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE database = %s", [DATABASE]
        ).fetchall():
            conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


def _workload(conn: psycopg.Connection, images: int) -> tuple[int, int]:
    """Commit the changes every drain reads; (row changes, WAL position after them)."""
    load_images(conn, Actor("root", "bench"), under="/bench", count=images, seed=1)
    Namespace(conn, Actor("root", "bench")).rm("/bench", recursive=True)
    end = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert end is not None
    return _count_changes(conn), lsn_from_str(end[0])


def _count_changes(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM prov_ops),"
        " (SELECT count(*) FROM prov_ops WHERE op IN ('create', 'mkdir')),"
        " (SELECT count(*) FROM prov_ops WHERE op = 'setxattr')"
    ).fetchone()
    assert row is not None
    prov, inodes, xattrs = row
    return int(prov + 2 * inodes + 2 * xattrs)  # each inode and xattr inserted, then deleted


def _recvlogical(dsn: str, slot: str, end: int, changes: int) -> Drain:
    argv = [
        str(binaries_dir() / "pg_recvlogical"),
        "-d",
        dsn,
        "--slot",
        slot,
        "--start",
        "--endpos",
        lsn_to_str(end),
        "--no-loop",
        "-o",
        "proto_version=1",
        "-o",
        f"publication_names={PUBLICATION}",
        "-f",
        "/dev/null",
    ]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise EpipeError(f"pg_recvlogical failed: {done.stderr.strip()}")
    return Drain("recvlogical", changes, time.perf_counter() - started)


def _epipe(settings: Settings, dsn: str, end: int, changes: int) -> Drain:
    """The tailer from the slot of `settings` into its bus, until it confirmed `end`; on
    the in-process bus with a consumer that acknowledges every event."""
    sink = _CountingSink()
    consumers = [ConsumerSpec("bench", lambda: sink)] if settings.bus == "inprocess" else []
    runner = wiring.runner(settings, dsn, consumers, source=wiring.open_source(settings, dsn))
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    started = time.perf_counter()
    thread.start()
    first = started  # Debezium's: its first event (the JVM and connector start before it)
    try:
        if settings.source == "debezium":
            while thread.is_alive() and sink.count == 0:
                time.sleep(0.005)
            first = time.perf_counter()
        while thread.is_alive() and (runner.tailer is None or runner.tailer.confirmed < end):
            time.sleep(0.005)
        seconds = time.perf_counter() - first
    finally:
        stop.set()
        thread.join()
        with PipelineStore(dsn) as store:
            store.forget("bench")
    if consumers and sink.count < changes:
        raise RuntimeError(f"the bench consumer saw {sink.count} of {changes} changes")
    if settings.source == "debezium":
        (settings.home.resolve() / "debezium" / f"{settings.slot}.offsets").unlink(missing_ok=True)
    return Drain(settings.source, changes, seconds, first - started)
