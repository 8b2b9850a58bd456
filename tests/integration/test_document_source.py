"""Reading current rows for the index: never a state from before a decoded change."""

from __future__ import annotations

import threading
import time

import psycopg

from epipe.db.server import connect
from epipe.fs.namespace import Namespace
from epipe.fs.reader import NamespaceReader
from epipe.index.state import DocumentSource


def test_reads_wait_until_the_changes_of_the_batch_are_visible(
    dsn: str, conn: psycopg.Connection, ns: Namespace
) -> None:
    # A transaction decoded from the change log can still be invisible to new snapshots for
    # a moment; an open transaction stands in for that moment here.
    ns.put("/f", size=1)
    inode = ns.stat("/f").id
    source = DocumentSource(NamespaceReader(conn))
    with connect(dsn, autocommit=False) as writer:
        writer.execute("UPDATE inodes SET size = 2 WHERE id = %s", [inode])
        xid = writer.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0]  # type: ignore[index]
        seen: list[int] = []

        def read() -> None:
            docs, _, _ = source.documents({inode: 1})
            seen.append(docs[0]["size"])

        reader = threading.Thread(
            target=lambda: source.reader.read_after({int(xid) & 0xFFFFFFFF}, read)
        )
        reader.start()
        time.sleep(0.3)
        assert seen == [] and reader.is_alive()  # waiting, not reading the old size
        writer.commit()
        reader.join(timeout=10)
    assert seen == [2]


def test_reads_without_pending_transactions_go_ahead(
    conn: psycopg.Connection, ns: Namespace
) -> None:
    ns.put("/g")
    source = DocumentSource(NamespaceReader(conn))
    docs = source.reader.read_after(set(), lambda: source.documents({ns.stat("/g").id: 1})[0])
    assert [d["path"] for d in docs] == ["/g"]
