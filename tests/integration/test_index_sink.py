"""The index sink on batches of real events (decoded from a slot), whatever they combine."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from epipe import events as ev
from epipe.db.server import connect
from epipe.fs.namespace import Namespace
from epipe.index.rebuild import rebuild
from epipe.index.tantivy import TantivyStore
from epipe.index.verify import verify
from epipe.sink.index import IndexSink
from tests.integration.helpers import slot_events


@pytest.fixture
def sink(dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path):  # type: ignore[no-untyped-def]
    for path in ("/a/x/f1", "/a/x/y/f2", "/a/f3", "/b/f4"):
        ns.mkdir(path.rsplit("/", 1)[0], parents=True)
        ns.put(path)
        ns.setxattr(path, "labels", {"p": path})
    store = TantivyStore(tmp_path / "index")
    _, index = rebuild(conn, store)
    index.close()
    conn.execute("CREATE PUBLICATION p FOR TABLE inodes, xattrs, prov_ops")
    conn.execute("SELECT pg_create_logical_replication_slot('batch', 'pgoutput')")
    sink = IndexSink(lambda: connect(dsn), store)
    yield sink
    sink.close()


def apply_as_one_batch(sink: IndexSink, conn: psycopg.Connection) -> None:
    for event in slot_events(conn, "batch", "p"):
        sink.add(event)
    assert sink.flush() == []


@pytest.mark.parametrize(
    "history",
    [
        [("mv", "/a", "/b/a"), ("rm", "/b")],  # moved into a directory removed next
        [("mv", "/a/x", "/b/x"), ("rm", "/a")],  # moved out of a directory removed next
        [("mv", "/a/x/f1", "/b/f1"), ("rm", "/a/x")],  # a file, the same
        [("mv", "/b", "/a/x/b"), ("rm", "/a/x")],  # moved in, removed with it
        [("rm", "/a"), ("mkdir", "/a/x/y")],  # removed, then the same names again
        [("mv", "/a", "/c"), ("mv", "/c/x", "/d"), ("mv", "/b", "/c/b")],  # nested moves
        [("mv", "/a", "/b/a"), ("mv", "/b", "/z")],  # a move inside a moved directory
        # entries below a moved directory changed in the same batch, before and after it
        [("setxattr", "/a/x/f1"), ("mv", "/a", "/b/a"), ("setxattr", "/b/a/f3")],
        [("mkdir", "/Projects/p"), ("mv", "/a", "/Projects/p/a"), ("put", "/Projects/p/a/n")],
        [("mv", "/a", "/c"), ("rm", "/c/x/y"), ("mv", "/c/x/f1", "/d"), ("rm", "/c/f3")],
    ],
)
def test_any_combination_in_one_batch_leaves_the_index_equal_to_the_database(
    sink: IndexSink,
    conn: psycopg.Connection,
    ns: Namespace,
    history: list[tuple[str, ...]],
) -> None:
    for op, *args in history:
        if op == "mv":
            ns.mv(*args)
        elif op == "rm":
            ns.rm(args[0], recursive=True)
        elif op == "setxattr":
            ns.setxattr(args[0], "labels", {"changed": args[0]})
        elif op == "put":
            ns.put(args[0])
        else:
            ns.mkdir(args[0], parents=True)
    apply_as_one_batch(sink, conn)
    drift = verify(conn, sink.index)
    assert not drift, drift.summary()


def test_a_removed_directory_leaves_search_at_its_own_delete_event(
    sink: IndexSink, conn: psycopg.Connection, ns: Namespace
) -> None:
    """The cascade's events for the entries below follow the directory's; search does not
    wait for them (a million-file `rm -r` is hundreds of batches)."""
    removed = ns.stat("/a").id
    ns.rm("/a", recursive=True)
    events = list(slot_events(conn, "batch", "p"))
    deletes = [e for e in events if e.type == ev.INODE_DELETED]
    assert deletes[0].inode_id == removed and len(deletes) == 6  # a, x, y and three files
    sink.add(deletes[0])
    assert sink.flush() == []
    left = [doc["path"] for batch in sink.index.scan() for doc in batch]
    assert sorted(left) == ["/", "/b", "/b/f4"]
    for event in events:
        sink.add(event)
    assert sink.flush() == []
    drift = verify(conn, sink.index)
    assert not drift, drift.summary()
