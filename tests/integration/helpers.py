"""Assertions over the metadata database shared by the integration tests."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable

import psycopg

from epipe.events import Event
from epipe.source import pgoutput as pg
from epipe.source.translate import Translator


def wait_until(
    predicate: Callable[[], object], timeout: float = 60.0, why: Callable[[], str] = str
) -> None:
    """Poll `predicate` until it holds; fail after `timeout` s, saying `why()`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s {why()}"
        time.sleep(0.02)


TABLES = ("inodes", "xattrs", "prov_ops", "users", "groups", "projects", "memberships")


def snapshot(conn: psycopg.Connection) -> dict[str, str | None]:
    """A digest of every metadata table: equal snapshots mean nothing was written."""
    return {
        table: conn.execute(
            f"SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"
        ).fetchone()[0]  # type: ignore[index]
        for table in TABLES
    }


def prov_ops(conn: psycopg.Connection) -> list[tuple[str, str, str | None]]:
    """(op, name, app_id) of every provenance row, oldest first."""
    return conn.execute("SELECT op, name, app_id FROM prov_ops ORDER BY id").fetchall()


class ReadMessages:
    """The reads recorded as messages (migration 0015) from the moment it is opened: a
    test_decoding slot of its own, peeked (never consumed), dropped on close."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.slot = f"reads_{next(_slots)}_{os.getpid()}"
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'test_decoding')", [self.slot])

    def __enter__(self) -> ReadMessages:
        return self

    def __exit__(self, *_: object) -> None:
        self.conn.execute("SELECT pg_drop_replication_slot(%s)", [self.slot])

    def reads(self) -> list[tuple[str, str, str | None]]:
        """(op, name, app_id) of each read so far, oldest first. A message reaches decoding
        once the WAL is flushed: the next synchronous commit does it."""
        # a transactional message commits with a WAL flush (a bare xid would not flush)
        self.conn.execute("SELECT pg_logical_emit_message(true, 'epipe.test.flush', '')")
        out = []
        for text in self.texts():
            read = json.loads(text.split(" content:", 1)[1])
            out.append(("read", read["name"], read["app_id"]))
        return out

    def texts(self, upto: str | None = None) -> list[str]:
        """The read messages decodable now (up to the LSN `upto`), as test_decoding prints
        them."""
        rows = self.conn.execute(
            "SELECT data FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, NULL)",
            [self.slot, upto],
        ).fetchall()
        prefix = "message: transactional: 0 prefix: epipe.prov.read,"
        return [str(data) for (data,) in rows if str(data).startswith(prefix)]


_slots = itertools.count()


def tree_problems(conn: psycopg.Connection) -> list[str]:
    """What makes the inode table not a tree rooted at inode 1 (empty list: a valid tree)."""
    problems = []
    unreachable = conn.execute(
        """WITH RECURSIVE reach (id) AS (
               SELECT id FROM inodes WHERE id = 1
               UNION ALL
               SELECT i.id FROM inodes i JOIN reach r ON i.parent_id = r.id)
           SELECT count(*) FROM inodes WHERE id NOT IN (SELECT id FROM reach)"""
    ).fetchone()[0]  # type: ignore[index]
    if unreachable:
        problems.append(f"{unreachable} inodes unreachable from / (a cycle or an orphan)")
    orphans = conn.execute(
        "SELECT count(*) FROM inodes c LEFT JOIN inodes p ON p.id = c.parent_id "
        "WHERE c.id <> 1 AND p.id IS NULL"
    ).fetchone()[0]  # type: ignore[index]
    if orphans:
        problems.append(f"{orphans} inodes whose parent does not exist")
    under_files = conn.execute(
        "SELECT count(*) FROM inodes c JOIN inodes p ON p.id = c.parent_id WHERE p.kind = 'f'"
    ).fetchone()[0]  # type: ignore[index]
    if under_files:
        problems.append(f"{under_files} inodes below a file")
    duplicates = conn.execute(
        "SELECT count(*) FROM (SELECT 1 FROM inodes GROUP BY parent_id, name HAVING count(*) > 1) d"
    ).fetchone()[0]  # type: ignore[index]
    if duplicates:
        problems.append(f"{duplicates} duplicate names in a directory")
    stray_xattrs = conn.execute(
        "SELECT count(*) FROM xattrs x LEFT JOIN inodes i ON i.id = x.inode_id WHERE i.id IS NULL"
    ).fetchone()[0]  # type: ignore[index]
    if stray_xattrs:
        problems.append(f"{stray_xattrs} xattrs of missing inodes")
    return problems


def slot_events(conn: psycopg.Connection, slot: str, publication: str) -> list[Event]:
    """Consume a pgoutput slot through SQL and translate it: the ground truth of a history."""
    rows = conn.execute(
        "SELECT data FROM pg_logical_slot_get_binary_changes(%s, NULL, NULL, "
        "'proto_version', '1', 'publication_names', %s, 'messages', 'true')",
        [slot, publication],
    ).fetchall()
    translator = Translator()
    return [e for (data,) in rows for e in translator.feed(pg.decode(bytes(data)))]


def older_row(conn: psycopg.Connection, inode_id: int, name: str, value: str) -> None:
    """Write xattr `name` = the JSON text `value` as a row from before migration 0008 (which
    refuses values past the namespace's limits): the constraint is lifted for this one write."""
    (definition,) = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'xattrs_value_representable'"
    ).fetchone()  # type: ignore[misc]
    with conn.transaction():
        conn.execute("ALTER TABLE xattrs DROP CONSTRAINT xattrs_value_representable")
        conn.execute(
            "INSERT INTO xattrs (inode_id, namespace, name, value) "
            "VALUES (%s, 'user', %s, %s::jsonb) "
            "ON CONFLICT (inode_id, namespace, name) DO UPDATE SET value = EXCLUDED.value",
            [inode_id, name, value],
        )
        conn.execute(f"ALTER TABLE xattrs ADD CONSTRAINT xattrs_value_representable {definition}")
