"""The apps of the lineage graph with their inputs and outputs: the read behind the
OpenLineage export and the openlineage consumer (epipe/prov/openlineage.py translates).

SQL only. Apps come in app-id order, a chunk of apps per query, so an export of a large
graph holds one chunk at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import psycopg

from epipe.prov.openlineage import Access, AppRun

CHUNK = 500  # apps per query


def instance(conn: psycopg.Connection, configured: str | None) -> str:
    """The name of this file system outside epipe: EPIPE_INSTANCE, else DATABASE-SYSTEMID
    (the metadata database's name and its cluster's system identifier: stable across
    restarts, distinct between clusters)."""
    if configured:
        return configured
    row = conn.execute(
        "SELECT current_database(), system_identifier::text FROM pg_control_system()"
    ).fetchone()
    assert row is not None
    return f"{row[0]}-{row[1]}"


def app_runs(
    conn: psycopg.Connection,
    *,
    since: datetime | None = None,
    apps: Iterable[str] | None = None,
    chunk: int = CHUNK,
) -> Iterator[AppRun]:
    """Every app of the graph (or those of `apps`) whose last operation is at or after
    `since`, with its inputs and outputs, in app-id order."""
    wanted = None if apps is None else sorted(set(apps))
    after = ""
    while True:
        rows = conn.execute(
            """SELECT a.app_id, a.first_at, a.last_at, a.ops,
                      ARRAY(SELECT coalesce(u.name, x::text)
                            FROM unnest(a.users) x LEFT JOIN users u ON u.id = x
                            ORDER BY 1) AS users
               FROM epipe_prov_apps a
               WHERE a.app_id > %(after)s
                 AND (%(since)s::timestamptz IS NULL OR a.last_at >= %(since)s)
                 AND (%(apps)s::text[] IS NULL OR a.app_id = ANY(%(apps)s))
               ORDER BY a.app_id LIMIT %(limit)s""",
            {"after": after, "since": since, "apps": wanted, "limit": chunk},
        ).fetchall()
        if not rows:
            return
        accesses = _accesses(conn, [r[0] for r in rows])
        for app_id, first_at, last_at, ops, users in rows:
            inputs, outputs = accesses.get(app_id, ([], []))
            yield AppRun(
                app_id, first_at, last_at, int(ops), tuple(users), tuple(inputs), tuple(outputs)
            )
        after = rows[-1][0]


def _accesses(
    conn: psycopg.Connection, apps: list[str]
) -> dict[str, tuple[list[Access], list[Access]]]:
    """app id -> (inputs, outputs)."""
    rows = conn.execute(
        """SELECT e.app_id, e.role, e.inode_id, n.path, n.kind, n.artifact, n.deleted_at,
                  e.first_at, e.last_at, e.count, e.ops
           FROM epipe_prov_edges e JOIN epipe_prov_nodes n USING (inode_id)
           WHERE e.app_id = ANY(%s)
           ORDER BY e.app_id, e.role, n.path, e.inode_id""",
        [apps],
    ).fetchall()
    out: dict[str, tuple[list[Access], list[Access]]] = {}
    for app_id, role, *node in rows:
        inputs, outputs = out.setdefault(app_id, ([], []))
        (inputs if role == "input" else outputs).append(_access(node))
    return out


def _access(row: list[Any]) -> Access:
    inode_id, path, kind, artifact, deleted_at, first_at, last_at, count, ops = row
    return Access(
        int(inode_id), path, kind, artifact, deleted_at, first_at, last_at, int(count), tuple(ops)
    )
