"""The lineage graph in PostgreSQL (migration 0011): merging a batch's changes into it.

One `apply` is one transaction: the graph's apps, edges and nodes, and the positions the
graph holds — one for the in-process stream and the last rebuild (`epipe_prov_state`), one
per Kafka partition (`epipe_prov_parts`). A batch replayed after a crash is recognised by
its part's position and not counted twice. SQL only; what to merge comes from
epipe/prov/graph.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

import psycopg

from epipe.fs.model import KINDS
from epipe.lsn import lsn_from_str, lsn_to_str
from epipe.prov.artifacts import classify
from epipe.prov.graph import Delta, Op
from epipe.prov.snapshot import Snapshot


class Place(NamedTuple):
    """Where an inode is now."""

    path: str
    ancestors: list[int]  # ids from the root down to the parent
    kind: str  # file | dir

    @property
    def artifact(self) -> str | None:
        name = self.path.rsplit("/", 1)[-1]
        return classify(name, directory=self.kind == "dir")


Position = tuple[int, int]
IN_PROCESS = ""  # the part of the in-process bus: one ordered stream


class Held(NamedTuple):
    """What the graph holds: every event at or before `floor` (the in-process stream's
    position, or the last rebuild's), and every event of a Kafka partition at or before
    that part's position."""

    floor: Position
    parts: dict[str, Position]

    def holds(self, part: str, position: Position) -> bool:
        if part == IN_PROCESS:
            return position <= self.floor
        return position <= max(self.floor, self.parts.get(part, self.floor))


def state(conn: psycopg.Connection) -> tuple[Held | None, Snapshot | None]:
    """What the graph holds (None: no graph yet), and the snapshot of its last rebuild."""
    row = conn.execute("SELECT lsn, seq, seen FROM epipe_prov_state").fetchone()
    if row is None:
        return None, None
    parts = {
        part: (int(lsn), int(seq))
        for part, lsn, seq in conn.execute("SELECT part, lsn, seq FROM epipe_prov_parts")
    }
    floor = (int(row[0]), int(row[1]))
    return Held(floor, parts), None if row[2] is None else Snapshot.parse(row[2])


def holding(conn: psycopg.Connection, parts: set[str]) -> tuple[Held, Snapshot | None]:
    """What the graph holds, with the rows of `parts` locked until the transaction ends: a
    member of the group applying one of them at the same moment (a rebalance moved it)
    waits, then sees what this one applied. Parts are locked in name order (no deadlock)."""
    if parts:
        names = sorted(parts)
        conn.execute(
            """INSERT INTO epipe_prov_parts (part, lsn, seq)
               SELECT part, 0, 0 FROM unnest(%s::text[]) AS part ON CONFLICT DO NOTHING""",
            [names],
        )
        conn.execute(
            "SELECT 1 FROM epipe_prov_parts WHERE part = ANY(%s) ORDER BY part FOR UPDATE",
            [names],
        )
    held, seen = state(conn)
    assert held is not None, "a graph is made (rebuilt) before a batch is applied"
    return Held(held.floor, held.parts), seen


def places(conn: psycopg.Connection, ids: set[int]) -> dict[int, Place]:
    """Where each inode of `ids` that exists is now (one query)."""
    if not ids:
        return {}
    rows = conn.execute(
        """WITH RECURSIVE up (start, node, names, ids) AS (
               SELECT d, d, ARRAY[]::text[], ARRAY[]::bigint[]
               FROM unnest(%s::bigint[]) AS d
               UNION ALL
               SELECT up.start, i.parent_id, i.name || up.names, i.id || up.ids
               FROM up JOIN inodes i ON i.id = up.node)
           SELECT up.start, up.names, up.ids, i.kind::text
           FROM up JOIN inodes i ON i.id = up.start WHERE up.node IS NULL""",
        [sorted(ids)],
    ).fetchall()
    return {
        start: Place("/" + "/".join(names[1:]), list(chain[:-1]), KINDS[kind])
        for start, names, chain, kind in rows
    }


def log_reads(conn: psycopg.Connection, ops: Sequence[Op]) -> set[int]:
    """Write the reads of `ops` that came as messages into the log; the positions of those
    it did not hold yet (a message delivered again is logged once)."""
    reads = [op for op in ops if op.lsn is not None]
    if not reads:
        return set()
    rows = conn.execute(
        """INSERT INTO prov_ops (at, inode_id, parent_id, user_id, op, app_id, name, lsn)
           SELECT * FROM unnest(%s::timestamptz[], %s::bigint[], %s::bigint[], %s::integer[],
                                %s::text[], %s::text[], %s::text[], %s::pg_lsn[])
           ON CONFLICT (lsn) WHERE lsn IS NOT NULL DO NOTHING
           RETURNING lsn::text""",
        [
            [op.at for op in reads],
            [op.inode_id for op in reads],
            [op.parent_id for op in reads],
            [op.user_id for op in reads],
            [op.op for op in reads],
            [op.app_id for op in reads],
            [op.name for op in reads],
            [lsn_to_str(op.lsn) for op in reads if op.lsn is not None],
        ],
    ).fetchall()
    return {lsn_from_str(lsn) for (lsn,) in rows}


def locate(
    conn: psycopg.Connection, delta: Delta, also: set[int]
) -> tuple[dict[int, Place], set[int]]:
    """Where the nodes of `delta` and the inodes `also` are, and which of `delta`'s nodes are
    gone already. A gone node is where its last operation put it: under its parent's place
    when the parent is still there, else known by its name alone."""
    parents = {p for p, _ in delta.named.values() if p is not None}
    nodes = delta.nodes  # computed from the edges at each use: once here
    found = places(conn, nodes | also | parents)
    out = {i: place for i, place in found.items() if i in nodes or i in also}
    gone = nodes - found.keys()
    made = {i for (_, _, i), span in delta.edges.items() if i in gone and "mkdir" in span.kinds}
    for inode in gone:
        parent, name = delta.named.get(inode, (None, str(inode)))
        above = found.get(parent) if parent is not None else None
        kind = "dir" if inode in made else "file"
        if above is None or parent is None:
            out[inode] = Place(name, [], kind)
        else:
            out[inode] = Place(f"{above.path.rstrip('/')}/{name}", [*above.ancestors, parent], kind)
    return out, gone


def apply(
    conn: psycopg.Connection,
    delta: Delta,
    found: Mapping[int, Place],
    moved: set[int],
    deleted: Mapping[int, datetime],
    reached: Mapping[str, Position],
) -> None:
    """Merge `delta` into the graph, give the nodes below `moved` inodes their new place,
    mark `deleted` inodes deleted, and record the position `reached` on each part — in one
    transaction. `found`: the place of every inode of `delta.nodes` and `moved` (`locate`)."""
    with conn.transaction():
        _apps(conn, delta)
        _edges(conn, delta)
        _nodes(conn, {i: found[i] for i in delta.nodes if i in found})
        if moved:
            _moved(conn, moved, found)
        gone = dict(deleted)
        for inode, when in delta.deleted.items():
            gone[inode] = max(when, gone.get(inode, when))
        if gone:
            conn.execute(
                """UPDATE epipe_prov_nodes n SET deleted_at = g.at
                   FROM unnest(%s::bigint[], %s::timestamptz[]) AS g (id, at)
                   WHERE n.inode_id = g.id AND (n.deleted_at IS NULL OR g.at < n.deleted_at)""",
                [list(gone), list(gone.values())],
            )
        _positions(conn, reached)


def _positions(conn: psycopg.Connection, reached: Mapping[str, Position]) -> None:
    if IN_PROCESS in reached:
        conn.execute(
            """INSERT INTO epipe_prov_state (one, lsn, seq) VALUES (true, %s, %s)
               ON CONFLICT (one) DO UPDATE SET lsn = EXCLUDED.lsn, seq = EXCLUDED.seq""",
            list(reached[IN_PROCESS]),
        )
    parts = [(part, lsn, seq) for part, (lsn, seq) in reached.items() if part != IN_PROCESS]
    if parts:
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO epipe_prov_parts AS p (part, lsn, seq) VALUES (%s, %s, %s)
                   ON CONFLICT (part) DO UPDATE SET lsn = EXCLUDED.lsn, seq = EXCLUDED.seq
                   WHERE (p.lsn, p.seq) < (EXCLUDED.lsn, EXCLUDED.seq)""",
                parts,
            )


def _apps(conn: psycopg.Connection, delta: Delta) -> None:
    if not delta.apps:
        return
    rows = [
        (app, s.first, s.last, s.count, sorted(delta.users.get(app, ())))
        for app, s in delta.apps.items()
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO epipe_prov_apps AS a (app_id, first_at, last_at, ops, users)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (app_id) DO UPDATE SET
                   first_at = LEAST(a.first_at, EXCLUDED.first_at),
                   last_at = GREATEST(a.last_at, EXCLUDED.last_at),
                   ops = a.ops + EXCLUDED.ops,
                   users = ARRAY(SELECT DISTINCT u FROM unnest(a.users || EXCLUDED.users) u
                                 ORDER BY u)""",
            rows,
        )


def _edges(conn: psycopg.Connection, delta: Delta) -> None:
    if not delta.edges:
        return
    rows = [
        (app, role, inode, s.first, s.last, s.count, sorted(s.kinds))
        for (app, role, inode), s in delta.edges.items()
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO epipe_prov_edges AS e
                   (app_id, role, inode_id, first_at, last_at, count, ops)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (app_id, role, inode_id) DO UPDATE SET
                   first_at = LEAST(e.first_at, EXCLUDED.first_at),
                   last_at = GREATEST(e.last_at, EXCLUDED.last_at),
                   count = e.count + EXCLUDED.count,
                   ops = ARRAY(SELECT DISTINCT o FROM unnest(e.ops || EXCLUDED.ops) o
                               ORDER BY o)""",
            rows,
        )


def _nodes(conn: psycopg.Connection, found: Mapping[int, Place]) -> None:
    """Nodes where they are now. A node already deleted keeps its last place."""
    if not found:
        return
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO epipe_prov_nodes AS n (inode_id, path, ancestors, kind, artifact)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (inode_id) DO UPDATE SET path = EXCLUDED.path,
                   ancestors = EXCLUDED.ancestors, kind = EXCLUDED.kind,
                   artifact = EXCLUDED.artifact
               WHERE n.deleted_at IS NULL""",
            [(i, p.path, p.ancestors, p.kind, p.artifact) for i, p in found.items()],
        )


def _moved(conn: psycopg.Connection, moved: set[int], found: Mapping[int, Place]) -> None:
    """Nodes at or below a moved inode: their place from the namespace, read again."""
    rows = conn.execute(
        """SELECT inode_id FROM epipe_prov_nodes
           WHERE deleted_at IS NULL AND (inode_id = ANY(%s) OR ancestors && %s::bigint[])""",
        [sorted(moved), sorted(moved)],
    ).fetchall()
    ids = {r[0] for r in rows}
    now = places(conn, ids - found.keys()) | {i: found[i] for i in ids if i in found}
    _nodes(conn, now)
