"""The Hive consumer against a real Hive metastore: objects follow their directories.

Objects are made with the raw Thrift client, as a user's own tool would make them; each test
has a location prefix and database names of its own (the session's metastore is shared).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from epipe import wiring
from epipe.bench.hms_objects import thrift_client
from epipe.fs.namespace import Namespace
from epipe.hms.locations import LocationMap
from epipe.hms.metastore import PARTITION, TABLE, HiveObject, Metastore
from epipe.hms.server import LocalMetastore, local_location_prefix
from epipe.lsn import lsn_from_str
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.runner import ConsumerSpec
from epipe.pipeline.store import PipelineStore
from epipe.settings import Settings
from tests.integration.hive_helpers import (
    add_partitions,
    create_database,
    create_table,
    snapshot,
    unique_name,
    unique_prefix,
)
from tests.integration.pipeline_helpers import (
    epipe_command,
    epipe_env,
    index_consumer,
    new_slot,
    running,
)

pytestmark = pytest.mark.xdist_group("hms")


def hive_consumer(dsn: str, url: str, prefix: str) -> ConsumerSpec:
    settings = Settings(
        dsn=dsn,  # type: ignore[arg-type]
        hms_uri=url,
        hms_location_prefix=prefix,
        hms_scan_interval=0.2,
    )
    return wiring.consumer("hive", settings, dsn)


def bound(conn: psycopg.Connection, count: int, timeout: float = 60.0) -> None:
    """Wait until the consumer has bound `count` objects."""
    deadline = time.monotonic() + timeout
    while True:
        row = conn.execute("SELECT count(*) FROM epipe_hive_objects").fetchone()
        assert row is not None
        if row[0] >= count:
            return
        assert time.monotonic() < deadline, f"{row[0]} of {count} objects bound"
        time.sleep(0.05)


def test_objects_follow_their_directories_through_rm_and_mv(
    dsn: str,
    conn: psycopg.Connection,
    ns: Namespace,
    tmp_path: Any,
    hms_server: tuple[str, str],
) -> None:
    url, _ = hms_server
    fs = LocationMap.of(unique_prefix())
    sales, empty = unique_name("sales"), unique_name("empty")
    for path in (
        "/w/sales.db/orders/p=1",
        "/w/sales.db/orders/p=2",
        "/w/sales.db/orders/p=3",
        "/w/sales.db/items",
        "/w/empty.db",
        "/w/salesx/orders",
    ):
        ns.mkdir(path, parents=True)
    with thrift_client(url) as client:
        create_database(client, sales, fs.location("/w/sales.db"))
        create_table(client, sales, "orders", fs.location("/w/sales.db/orders"), partitioned=True)
        add_partitions(
            client,
            sales,
            "orders",
            {
                "1": fs.location("/w/sales.db/orders/p=1"),
                "2": fs.location("/w/sales.db/orders/p=2"),
                "3": fs.location("/w/salesx/orders"),  # a partition elsewhere in the tree
            },
        )
        create_table(client, sales, "items", fs.location("/w/sales.db/items"))
        create_table(client, sales, "remote", "file:/elsewhere/remote")  # not ours
        create_database(client, empty, fs.location("/w/empty.db"))
        before = snapshot(client, [sales, empty])
    consumer = hive_consumer(dsn, url, fs.prefix)
    with running(dsn, tmp_path, consumers=[consumer]) as pipeline:
        bound(conn, 7)  # 2 databases, 2 tables of ours, 3 partitions
        pipeline.wait(conn, ns.rm("/w/sales.db/orders/p=1", recursive=True).token)
        with thrift_client(url) as client:
            after_rm = snapshot(client, [sales, empty])
        assert set(before) - set(after_rm) == {f"{sales}.orders/p=1"}

        pipeline.wait(conn, ns.mv("/w/sales.db", "/w/moved.db").token)
        pipeline.wait(conn, ns.mv("/w/empty.db", "/w/empty2.db").token)
        with thrift_client(url) as client:
            moved = snapshot(client, [sales, empty])
        assert moved[f"{sales}.orders"] == fs.location("/w/moved.db/orders")
        assert moved[f"{sales}.orders/p=2"] == fs.location("/w/moved.db/orders/p=2")
        assert moved[f"{sales}.orders/p=3"] == fs.location("/w/salesx/orders")  # untouched
        assert moved[f"{sales}.items"] == fs.location("/w/moved.db/items")
        assert moved[f"{sales}.remote"] == "file:/elsewhere/remote"
        assert moved[empty] == fs.location("/w/empty2.db")
        assert moved[sales] == fs.location("/w/moved.db")  # the local metastore's own store

        pipeline.wait(conn, ns.rm("/w/moved.db", recursive=True).token)
        with thrift_client(url) as client:
            removed = snapshot(client, [sales, empty])
        # the database is kept for its table elsewhere; everything of the tree went
        assert removed == {
            sales: removed[sales],
            f"{sales}.remote": "file:/elsewhere/remote",
            empty: fs.location("/w/empty2.db"),
        }
    assert PipelineStore.on(conn).recent_dead_letters(10) == []


def test_a_move_leaves_the_statistics_of_what_moved_as_they_were(
    tmp_path: Path, hms_server: tuple[str, str]
) -> None:
    """A move moves no data, so HMS is not to recompute statistics at the new location
    (where it may not see the data, it would record 0 files of 0 bytes)."""
    url, _ = hms_server
    name = unique_name("stats")
    old, new = f"file:{tmp_path}/old", f"file:{tmp_path}/new"
    with thrift_client(url) as client:
        create_database(client, name, old)
        create_table(client, name, "logs", f"{old}/logs", partitioned=True)
        add_partitions(client, name, "logs", {"1": f"{old}/logs/p=1"})
        before = client.get_partition(name, "logs", ["1"]).parameters
    metastore = Metastore(url)
    try:
        refused = metastore.relocate(
            [
                (HiveObject(PARTITION, name, "logs", "p=1"), f"{new}/logs/p=1"),
                (HiveObject(TABLE, name, "logs"), f"{new}/logs"),
            ]
        )
    finally:
        metastore.close()
    assert refused == []
    with thrift_client(url) as client:
        moved = client.get_partition(name, "logs", ["1"])
        assert client.get_table(name, "logs").sd.location == f"{new}/logs"
    assert moved.sd.location == f"{new}/logs/p=1"
    assert moved.parameters == before
    assert "numFiles" not in moved.parameters


def test_verify_finds_orphans_and_repair_drops_them(
    dsn: str,
    conn: psycopg.Connection,
    ns: Namespace,
    tmp_path: Path,
    hms_server: tuple[str, str],
) -> None:
    url, _ = hms_server
    fs = LocationMap.of(unique_prefix())
    name = unique_name("logs")
    ns.mkdir("/data/day=1", parents=True)
    slot = new_slot()
    consumers = [index_consumer(dsn, tmp_path / "index"), hive_consumer(dsn, url, fs.prefix)]
    env = {
        **epipe_env(dsn, tmp_path, slot),
        "EPIPE_HMS_URI": url,
        "EPIPE_HMS_LOCATION_PREFIX": fs.prefix,
    }
    with running(dsn, tmp_path, slot=slot, consumers=consumers) as pipeline:
        with thrift_client(url) as client:
            create_database(client, name, fs.location("/data"))
            create_table(client, name, "kept", fs.location("/data/day=1"))
            create_table(client, name, "late", fs.location("/data/day=0"))  # never existed
        bound(conn, 2)
        pipeline.wait(conn, ns.put("/data/marker", size=1).token)
        found = epipe_command(env, "verify", "--json")
        assert found.returncode == 1, found.stdout + found.stderr
        report = json.loads(found.stdout)["hive"]
        assert (report["orphan"], report["stale"], report["ok"]) == (1, 0, 2)
        assert [item["key"] for item in report["sample"]] == [f"{name}.late"]

        listed = epipe_command(env, "hive", "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        states = {
            o["key"]: (o["state"], o["path"])
            for o in json.loads(listed.stdout)["objects"]
            if o["database"] == name
        }
        assert states == {
            name: ("ok", "/data"),
            f"{name}.kept": ("ok", "/data/day=1"),
            f"{name}.late": ("orphan", "/data/day=0"),
        }

        repaired = epipe_command(env, "hive", "repair")
        assert repaired.returncode == 0, repaired.stdout + repaired.stderr
        assert f"dropped orphan table {name}.late" in repaired.stdout
        clean = epipe_command(env, "verify")
        assert clean.returncode == 0, clean.stdout + clean.stderr
        with thrift_client(url) as client:
            assert sorted(snapshot(client, [name])) == [name, f"{name}.kept"]


def test_an_unreachable_metastore_holds_the_position_and_status_says_why(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        url = f"thrift://127.0.0.1:{closed.getsockname()[1]}"
    consumer = hive_consumer(dsn, url, unique_prefix())
    with running(dsn, tmp_path, consumers=[consumer], expect_failure=True) as pipeline:
        token = ns.mkdir("/x").token
        store = PipelineStore.on(conn)
        deadline = time.monotonic() + 60
        while "hive" not in store.problems():
            assert time.monotonic() < deadline, "no problem reported"
            time.sleep(0.05)
        assert "unreachable" in store.problems()["hive"]
        state = pipeline_status.status(conn, "unused")
        (hive,) = [c for c in state["consumers"] if c["name"] == "hive"]
        assert "unreachable" in hive["waiting"]
        (position,) = [p for p in store.positions() if p.name == "hive"]
        assert position.applied_lsn < lsn_from_str(token)
    # stopped while waiting: it gives up at once (the tailer would wait for it) and says why
    assert [type(e).__name__ for e in pipeline.errors] == ["HiveUnavailable"]


def test_a_metastore_that_comes_back_gets_what_changed_while_it_was_down(
    dsn: str,
    conn: psycopg.Connection,
    ns: Namespace,
    tmp_path: Path,
    hms_server: tuple[str, str],  # skips where no metastore can run; this one is its own
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    metastore = LocalMetastore(tmp_path / "hms-home", port)
    fs = LocationMap.of(local_location_prefix(tmp_path / "hms-home"))
    name = unique_name("back")
    ns.mkdir("/d/t", parents=True)
    consumer = hive_consumer(dsn, metastore.url(), fs.prefix)
    try:
        metastore.start()
        with thrift_client(metastore.url()) as client:
            create_database(client, name, fs.location("/d"))
            create_table(client, name, "t", fs.location("/d/t"))
        with running(dsn, tmp_path, consumers=[consumer]) as pipeline:
            bound(conn, 2)
            metastore.stop()
            token = ns.mv("/d", "/moved").token
            store = PipelineStore.on(conn)
            deadline = time.monotonic() + 60
            while "hive" not in store.problems():
                assert time.monotonic() < deadline, "no problem reported"
                time.sleep(0.05)
            metastore.start()  # the same port: the consumer's next attempt reaches it
            pipeline.wait(conn, token, timeout=120)
            assert store.problems() == {}
        with thrift_client(metastore.url()) as client:
            assert snapshot(client, [name]) == {
                name: fs.location("/moved"),
                f"{name}.t": fs.location("/moved/t"),
            }
    finally:
        metastore.stop()
