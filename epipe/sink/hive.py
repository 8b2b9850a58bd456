"""HiveSink: keeps the Hive metastore consistent with the file system.

Events only say when to look: a batch that removed or moved inodes (or truncated them, a
resynchronisation) makes the sink scan the metastore and reconcile every object bound to
an inode (epipe/hms/catalog.py); otherwise it scans every `scan_interval` seconds, so new
objects are bound while their directories exist. The namespace is read in a snapshot that
holds the whole batch. Bindings are kept in PostgreSQL (`epipe_hive_objects`), written after
the metastore was changed: a crash in between replays the batch, and the plan comes out the
same or empty. A metastore that cannot be reached raises `Unavailable` (the consumer waits
and retries); an object the metastore refuses is a dead letter with HMS's reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import psycopg

from epipe import events as ev
from epipe.events import Event
from epipe.fs.reader import NamespaceReader
from epipe.hms import catalog
from epipe.hms.catalog import Binding, Plan
from epipe.hms.locations import LocationMap
from epipe.hms.metastore import TABLE, Metastore, MetastoreUnavailable
from epipe.sink import Rejection, Unavailable

log = logging.getLogger(__name__)
_TRIGGERS = (ev.INODE_DELETED, ev.INODE_MOVED, ev.TABLE_TRUNCATED)


class HiveUnavailable(Unavailable):
    pass


class HiveSink:
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        metastore: Metastore,
        locations: LocationMap,
        *,
        scan_interval: float = 2.0,
    ) -> None:
        self._conn = connect()
        self._reader = NamespaceReader(self._conn)
        self._metastore = metastore
        self._locations = locations
        self._scan_interval = scan_interval
        self._xids: set[int] = set()
        self._triggered: Event | None = None
        self._last_scan = 0.0

    def add(self, event: Event) -> None:
        if event.xid:
            self._xids.add(event.xid)
        if event.type in _TRIGGERS and self._triggered is None:
            self._triggered = event

    def flush(self) -> list[Rejection]:
        due = time.monotonic() - self._last_scan >= self._scan_interval
        if self._triggered is None and not due:
            self._xids.clear()
            return []
        try:
            rejections = reconcile(
                self._conn,
                self._reader,
                self._metastore,
                self._locations,
                xids=self._xids,
                cause=self._triggered,
            )
        except MetastoreUnavailable as exc:
            raise HiveUnavailable(str(exc)) from None
        self._last_scan = time.monotonic()
        self._xids.clear()
        self._triggered = None
        return rejections

    def close(self) -> None:
        self._metastore.close()
        self._conn.close()


def reconcile(
    conn: psycopg.Connection,
    reader: NamespaceReader,
    metastore: Metastore,
    locations: LocationMap,
    *,
    xids: set[int] | None = None,
    cause: Event | None = None,
    retry_refused: bool = False,
) -> list[Rejection]:
    """Scan, plan, apply, record: the metastore follows the namespace. What HMS refused.

    Databases and tables are scanned first; the partitions of a table about to be dropped
    whole are never listed (they go with it): an `rm -r` costs what its drops cost."""
    bindings = load_bindings(conn)
    if retry_refused:  # `epipe hive repair`: ask again what HMS refused before
        bindings = {k: Binding(b.key, b.kind, b.path, b.inode_id) for k, b in bindings.items()}
    tables = metastore.scan_tables()
    top = catalog.seen(tables, locations)
    wanted = catalog.to_bind(top, bindings)

    def read() -> tuple[dict[str, int], dict[int, str]]:
        resolved = resolve(conn, wanted)
        ids = {b.inode_id for b in bindings.values()} | set(resolved.values())
        return resolved, reader.paths(ids)

    resolved, current = reader.read_after(xids or set(), read)
    doomed = {o.key for o in catalog.plan(top, bindings, resolved, current, locations).drop}
    partitioned = [o for o in tables if o.kind == TABLE and o.key not in doomed]
    scan = catalog.seen(tables + metastore.scan_partitions(partitioned), locations)
    more = catalog.to_bind(scan, bindings) - wanted
    if more:  # partitions not bound yet: read after the batch already, so no wait
        found = resolve(conn, more)
        resolved |= found
        current |= reader.paths(set(found.values()) - current.keys())
    plan = catalog.plan(scan, bindings, resolved, current, locations)
    rejections = apply(metastore, plan, bindings, cause)
    save_bindings(conn, bindings, plan.bindings)
    return rejections


def apply(
    metastore: Metastore, plan: Plan, before: dict[str, Binding], cause: Event | None
) -> list[Rejection]:
    """Carry `plan` out; refusals are recorded on the bindings (not asked again)."""
    rejections: list[Rejection] = []
    for o in plan.kept:
        log.info("hive: %s", f"{o.describe()} {catalog.KEPT}")
    for o, reason in metastore.drop(plan.drop):
        old = before.get(o.key)
        if reason.startswith("kept:"):  # a table appeared elsewhere since the scan
            if old is not None:
                plan.bindings[o.key] = Binding(o.key, o.kind, old.path, old.inode_id, catalog.KEPT)
            continue
        rejections.append((cause, f"hive: dropping {o.describe()}: {reason}"))
        if old is not None:
            plan.bindings[o.key] = Binding(
                o.key, o.kind, old.path, old.inode_id, f"drop refused: {reason}"
            )
    targets = {o.key: location for o, location in plan.relocate}
    for o, reason in metastore.relocate(plan.relocate):
        rejections.append((cause, f"hive: moving {o.describe()}: {reason}"))
        new = plan.bindings.get(o.key)
        if new is not None:  # bound where HMS still has it: verify reports it stale
            plan.bindings[o.key] = Binding(
                o.key,
                o.kind,
                plan.moved_from.get(o.key, new.path),
                new.inode_id,
                f"move refused: {reason}",
                targets[o.key],
            )
    return rejections


def resolve(conn: psycopg.Connection, paths: set[str]) -> dict[str, int]:
    """path -> inode id, for the paths that exist (one query for all)."""
    if not paths:
        return {}
    rows = conn.execute(
        """WITH RECURSIVE wanted AS (
               SELECT p AS path, CASE WHEN p = '/' THEN ARRAY[]::text[]
                                      ELSE string_to_array(substr(p, 2), '/') END AS parts
               FROM unnest(%s::text[]) AS p),
           walk (path, parts, depth, node) AS (
               SELECT path, parts, 0, 1::bigint FROM wanted
               UNION ALL
               SELECT w.path, w.parts, w.depth + 1, i.id
               FROM walk w JOIN inodes i ON i.parent_id = w.node AND i.name = w.parts[w.depth + 1]
               WHERE w.depth < cardinality(w.parts))
           SELECT path, node FROM walk WHERE depth = cardinality(parts)""",
        [sorted(paths)],
    ).fetchall()
    return dict(rows)


def load_bindings(conn: psycopg.Connection) -> dict[str, Binding]:
    rows = conn.execute(
        "SELECT key, kind, path, inode_id, problem, refused FROM epipe_hive_objects"
    ).fetchall()
    return {row[0]: Binding(*row) for row in rows}


def save_bindings(
    conn: psycopg.Connection, before: dict[str, Binding], after: dict[str, Binding]
) -> None:
    """Write the difference (one transaction)."""
    gone = [k for k in before if k not in after]
    changed = [b for k, b in after.items() if before.get(k) != b]
    if not gone and not changed:
        return
    with conn.transaction():
        if gone:
            conn.execute("DELETE FROM epipe_hive_objects WHERE key = ANY(%s)", [gone])
        if changed:
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO epipe_hive_objects
                           (key, kind, path, inode_id, problem, refused)
                       VALUES (%s, %s, %s, %s, %s, %s)
                       ON CONFLICT (key) DO UPDATE SET kind = EXCLUDED.kind,
                           path = EXCLUDED.path, inode_id = EXCLUDED.inode_id,
                           problem = EXCLUDED.problem, refused = EXCLUDED.refused""",
                    [(b.key, b.kind, b.path, b.inode_id, b.problem, b.refused) for b in changed],
                )
