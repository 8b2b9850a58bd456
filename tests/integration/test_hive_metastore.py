"""epipe's metastore adapter against a real Hive metastore: work spread over several
connections ends as it would over one, and an `rm -r` lists no partition of a table it
drops whole."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from epipe.bench.hms_objects import thrift_client
from epipe.fs.namespace import Namespace
from epipe.fs.reader import NamespaceReader
from epipe.hms.locations import LocationMap, rebase
from epipe.hms.metastore import PARTITION, TABLE, HiveObject, Metastore
from epipe.hms.verify import inspect
from epipe.sink.hive import reconcile
from tests.conftest import HmsServer
from tests.integration.hive_helpers import (
    add_partitions,
    create_database,
    create_table,
    snapshot,
    unique_name,
    unique_prefix,
)

pytestmark = pytest.mark.xdist_group("hms")

TABLES, PARTITIONS = 6, 3


def make(url: str, name: str, root: str) -> None:
    """The database `name` at `root`: TABLES tables of PARTITIONS partitions each."""
    with thrift_client(url) as client:
        create_database(client, name, root)
        for t in range(TABLES):
            create_table(client, name, f"t{t}", f"{root}/t{t}", partitioned=True)
            add_partitions(
                client, name, f"t{t}", {str(p): f"{root}/t{t}/p={p}" for p in range(PARTITIONS)}
            )


def relative(found: dict[str, str], name: str, root: str) -> dict[str, str]:
    """`found` with the database's name and location prefix taken out (to compare copies)."""
    return {key.replace(name, "DB", 1): rebase(v, root, "ROOT") for key, v in found.items()}


@pytest.fixture
def metastores(hms_server: HmsServer) -> Iterator[tuple[Metastore, Metastore]]:
    one, many = Metastore(hms_server.url, parallel=1), Metastore(hms_server.url, parallel=4)
    yield one, many
    one.close()
    many.close()


def test_work_over_several_connections_ends_as_over_one(
    hms_server: HmsServer, metastores: tuple[Metastore, Metastore]
) -> None:
    url = hms_server.url
    prefix = unique_prefix()
    ends: list[tuple[dict[str, str], dict[str, str], list[HiveObject]]] = []
    for metastore in metastores:
        name, root = unique_name("par"), f"{prefix}/{unique_name('db')}"
        make(url, name, root)
        objects = [o for o in metastore.scan() if o.database == name]
        assert len(objects) == 1 + TABLES + TABLES * PARTITIONS

        moved = f"{root}-moved"
        refused = metastore.relocate([(o, rebase(o.location, root, moved)) for o in objects])
        assert refused == []
        with thrift_client(url) as client:
            after_move = relative(snapshot(client, [name]), name, root + "-moved")

        # whole tables t0..t2; of t3..t5 their first partition only
        doomed = [o for o in objects if o.kind == TABLE and o.table < "t3"] + [
            o for o in objects if o.kind == PARTITION and o.table >= "t3" and o.partition == "p=0"
        ]
        assert metastore.drop(doomed) == []
        with thrift_client(url) as client:
            after_drop = relative(snapshot(client, [name]), name, moved)
        ends.append((after_move, after_drop, doomed))

    (move_one, drop_one, _), (move_many, drop_many, _) = ends
    assert move_many == move_one
    assert all(v.startswith("ROOT") for v in move_one.values())
    assert drop_many == drop_one
    assert sorted(drop_one) == ["DB"] + [
        key
        for t in range(3, TABLES)
        for key in [f"DB.t{t}", *(f"DB.t{t}/p={p}" for p in range(1, PARTITIONS))]
    ]


def test_a_refusal_in_one_table_does_not_stop_the_others(
    hms_server: HmsServer, metastores: tuple[Metastore, Metastore]
) -> None:
    _, many = metastores
    name, root = unique_name("ref"), f"{unique_prefix()}/db"
    make(hms_server.url, name, root)
    tables = [o for o in many.scan_tables() if o.kind == TABLE and o.database == name]
    bad = HiveObject(TABLE, name, "t0")
    too_long = f"{root}/{'x' * 5000}"  # past the store's 4,000 characters of a location
    moves = [(bad, too_long)] + [(o, f"{o.location}-2") for o in tables[1:]]
    refused = many.relocate(moves)
    assert [o.key for o, _ in refused] == [bad.key]
    with thrift_client(hms_server.url) as client:
        found = snapshot(client, [name])
    assert found[f"{name}.t0"] == f"{root}/t0"
    assert all(found[f"{name}.t{t}"] == f"{root}/t{t}-2" for t in range(1, TABLES))


class Listing(Metastore):
    """The real adapter, noting which tables' partitions it was asked for."""

    listed: list[str]

    def scan_partitions(self, tables: list[HiveObject]) -> list[HiveObject]:
        self.listed += [t.key for t in tables]
        return super().scan_partitions(tables)


def test_rm_r_lists_no_partition_of_a_table_it_drops_whole(
    conn: psycopg.Connection, ns: Namespace, hms_server: HmsServer
) -> None:
    fs = LocationMap.of(unique_prefix())
    name = unique_name("rm")
    for path in ("/d/gone/p=1", "/d/stays/p=1", "/d/stays/p=2", "/elsewhere/p=9"):
        ns.mkdir(path, parents=True)
    with thrift_client(hms_server.url) as client:
        create_database(client, name, fs.location("/w"))  # not a directory: an orphan
        create_table(client, name, "gone", fs.location("/d/gone"), partitioned=True)
        add_partitions(
            client,
            name,
            "gone",
            {"1": fs.location("/d/gone/p=1"), "9": fs.location("/elsewhere/p=9")},
        )
        create_table(client, name, "stays", fs.location("/elsewhere"), partitioned=True)
        add_partitions(
            client,
            name,
            "stays",
            {"1": fs.location("/d/stays/p=1"), "2": fs.location("/d/stays/p=2")},
        )
    metastore = Listing(hms_server.url)
    metastore.listed = []
    reader = NamespaceReader(conn)
    try:
        assert reconcile(conn, reader, metastore, fs) == []
        ours = {f"{name}.gone", f"{name}.stays"}
        assert ours <= set(metastore.listed)  # nothing doomed yet: every table listed
        metastore.listed = []
        ns.rm("/d/gone", recursive=True)
        ns.rm("/d/stays/p=1", recursive=True)
        assert reconcile(conn, reader, metastore, fs) == []
        assert f"{name}.gone" not in metastore.listed
        assert f"{name}.stays" in metastore.listed
        with thrift_client(hms_server.url) as client:
            assert sorted(snapshot(client, [name])) == [
                name,
                f"{name}.stays",
                f"{name}.stays/p=2",
            ]
        rows = conn.execute(
            "SELECT key FROM epipe_hive_objects WHERE key LIKE %s ORDER BY key", [f"{name}%"]
        ).fetchall()
        assert [r[0] for r in rows] == [f"{name}.stays", f"{name}.stays/p=2"]
        drift = inspect(conn, metastore, fs)
        assert [item.object.key for item in drift.of("orphan")] == [name]
        assert [item.object.key for item in drift.of("stale")] == []
    finally:
        metastore.close()
