"""`epipe prov prune --before T`: trim the operation log without changing any lineage answer.

What the removed rows add to the graph is first merged into `epipe_prov_pruned` (the same
aggregates as the graph's), in the transaction that deletes them, so a rebuild from the
pruned aggregates plus the log still equals the kept graph — what `epipe verify` checks. A
file's history loses the removed operations: that is the point.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from epipe.prov import graph
from epipe.prov.graph import Delta, Op

_CHUNK = 50_000


class Pruned(NamedTuple):
    ops: int  # log rows removed
    before: datetime  # operations before this time are gone from the log


def prune(conn: psycopg.Connection, before: datetime) -> Pruned:
    if before.tzinfo is None:
        raise ValueError("prune: the time needs a time zone")
    with conn.transaction():
        # one snapshot: exactly the rows folded are deleted; a concurrent prune waits
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        conn.execute("LOCK TABLE epipe_prov_pruned IN SHARE ROW EXCLUSIVE MODE")
        delta = graph.fold(_ops(conn, before))
        _merge(conn, delta)
        removed = conn.execute("DELETE FROM prov_ops WHERE at < %s", [before]).rowcount
        conn.execute(
            """UPDATE epipe_prov_state
               SET pruned_before = GREATEST(pruned_before, %s::timestamptz)""",
            [before],
        )
    return Pruned(removed, before)


def _ops(conn: psycopg.Connection, before: datetime) -> Iterator[Op]:
    with conn.cursor(name="epipe_prov_prune") as cur:
        cur.itersize = _CHUNK
        cur.execute(
            "SELECT id, at, inode_id, parent_id, user_id, op, app_id, name "
            "FROM prov_ops WHERE at < %s ORDER BY id",
            [before],
        )
        for row in cur:
            yield Op(*row)


def _merge(conn: psycopg.Connection, delta: Delta) -> None:
    rows: list[tuple[Any, ...]] = [
        (app, "", 0, s.first, s.last, s.count, [], sorted(delta.users.get(app, ())))
        for app, s in delta.apps.items()
    ] + [
        (app, role, inode, s.first, s.last, s.count, sorted(s.kinds), [])
        for (app, role, inode), s in delta.edges.items()
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO epipe_prov_pruned AS p
                   (app_id, role, inode_id, first_at, last_at, count, ops, users)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (app_id, role, inode_id) DO UPDATE SET
                   first_at = LEAST(p.first_at, EXCLUDED.first_at),
                   last_at = GREATEST(p.last_at, EXCLUDED.last_at),
                   count = p.count + EXCLUDED.count,
                   ops = ARRAY(SELECT DISTINCT o FROM unnest(p.ops || EXCLUDED.ops) o ORDER BY o),
                   users = ARRAY(SELECT DISTINCT u FROM unnest(p.users || EXCLUDED.users) u
                                 ORDER BY u)""",
            rows,
        )
