"""The lineage graph rebuilt from the operation log: what `verify` compares the kept graph
with, and what the consumer does when the log or the namespace was truncated (a
resynchronisation) or when it finds no graph at its first start.

The log is folded by the same function the consumer uses (epipe/prov/graph.py), so the two
cannot disagree on what an operation means. It is read in one snapshot, recorded with the
graph: stream events of transactions that snapshot saw are skipped afterwards (their
operations are not counted twice), those of later ones are applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg

from epipe.prov import graph, store
from epipe.prov.graph import Delta, Op, Span
from epipe.prov.snapshot import Snapshot

_CHUNK = 50_000


def from_log(conn: psycopg.Connection) -> tuple[Delta, Snapshot]:
    """The graph the log (and what was pruned from it) implies, and the snapshot read."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        delta = graph.fold(_ops(conn))
        _add_pruned(conn, delta)
    return delta, Snapshot.parse(row[0])


def _ops(conn: psycopg.Connection) -> Iterator[Op]:
    with conn.cursor(name="epipe_prov_log") as cur:
        cur.itersize = _CHUNK
        cur.execute(
            "SELECT id, at, inode_id, parent_id, user_id, op, app_id, name "
            "FROM prov_ops ORDER BY id"
        )
        for row in cur:
            yield Op(*row)


def _add_pruned(conn: psycopg.Connection, delta: Delta) -> None:
    rows = conn.execute(
        "SELECT app_id, role, inode_id, first_at, last_at, count, ops, users FROM epipe_prov_pruned"
    ).fetchall()
    for app, role, inode, first, last, count, ops, users in rows:
        span = Span(first, last, count, set(ops))
        if role == "":
            old = delta.apps.get(app)
            delta.apps[app] = span if old is None else graph.merge(old, span)
            delta.users.setdefault(app, set()).update(users)
        else:
            old = delta.edges.get((app, role, inode))
            delta.edges[(app, role, inode)] = span if old is None else graph.merge(old, span)


def rebuild(conn: psycopg.Connection, at: tuple[int, int]) -> Snapshot:
    """Replace the graph by the one the log implies, holding position `at`."""
    delta, snapshot = from_log(conn)
    with conn.transaction():
        found, gone = store.locate(conn, delta, set())
        now = datetime.now(UTC)
        deleted = {i: delta.deleted.get(i, now) for i in gone}
        # The log does not say where a file removed with its directory was: the graph does.
        for inode, path, ancestors, kind, deleted_at in conn.execute(
            "SELECT inode_id, path, ancestors, kind, deleted_at FROM epipe_prov_nodes "
            "WHERE inode_id = ANY(%s)",
            [sorted(gone)],
        ):
            found[inode] = store.Place(path, list(ancestors), kind)
            deleted[inode] = deleted_at or deleted[inode]
        # every part's events up to `at` are in the log read: one position holds for all
        conn.execute(
            "TRUNCATE epipe_prov_apps, epipe_prov_edges, epipe_prov_nodes, epipe_prov_parts"
        )
        store.apply(conn, delta, found, set(), deleted, {store.IN_PROCESS: at})
        conn.execute("UPDATE epipe_prov_state SET seen = %s", [str(snapshot)])
    return snapshot
