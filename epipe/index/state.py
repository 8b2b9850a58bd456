"""DocumentSource: documents built from the current rows of the metadata database.

The index sink treats events as notifications and reads the current state of what they
touch (so replays and reordering converge, and a deleted inode is never indexed again).
Paths come from the parent chain; directories' paths are cached until a directory moves or
goes away.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psycopg

from epipe.index.document import Document, build

_KINDS = {"f": "file", "d": "dir"}
_ROW = """i.id, i.parent_id, i.name, i.kind, i.size, i.mode,
          coalesce(u.name, i.owner_id::text), coalesce(g.name, i.group_id::text),
          i.mtime, i.ctime,
          (SELECT jsonb_object_agg(CASE WHEN x.namespace = 'user' THEN x.name
                                        ELSE x.namespace || '.' || x.name END, x.value)
           FROM xattrs x WHERE x.inode_id = i.id)"""
_JOINS = "LEFT JOIN users u ON u.id = i.owner_id LEFT JOIN groups g ON g.id = i.group_id"
_CACHE_LIMIT = 200_000
Skipped = list[tuple[int, list[str]]]  # (inode id, xattrs left out of its document)
T = TypeVar("T")
VISIBILITY_TIMEOUT = 10.0
log = logging.getLogger(__name__)


class _NotYetVisible(Exception):
    pass


class DocumentSource:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn
        self._dirs: dict[int, tuple[list[str], list[int]]] = {}  # id -> (names, ids) to it

    def read_after(self, xids: set[int], read: Callable[[], T]) -> T:
        """Run `read` in one snapshot that sees every transaction in `xids` (32-bit ids of
        transactions already decoded from the change log).

        A commit is decoded as soon as it is in the WAL, a moment before the committing
        backend makes it visible to new snapshots; a consumer reading the current rows in
        that moment would index the state from before the change and never look again."""
        deadline = time.monotonic() + VISIBILITY_TIMEOUT
        attempt = 0
        while True:
            try:
                with self._conn.transaction():
                    self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    if xids and not self._visible(xids) and time.monotonic() < deadline:
                        raise _NotYetVisible
                    return read()
            except _NotYetVisible:
                attempt += 1
                time.sleep(min(0.05, 0.001 * attempt))
                if time.monotonic() >= deadline:
                    log.warning(
                        "transactions %s not visible after %ss; reading anyway",
                        sorted(xids)[:5],
                        VISIBILITY_TIMEOUT,
                    )

    def _visible(self, xids: set[int]) -> bool:
        row = self._conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
        assert row is not None
        xmax = int(row[0])
        full = []
        for xid in xids:  # widen to 64 bits with the epoch of the snapshot's xmax
            candidate = (xmax >> 32 << 32) | xid
            full.append(str(candidate - (1 << 32) if candidate > xmax else candidate))
        visible = self._conn.execute(
            "SELECT bool_and(pg_visible_in_snapshot(x::xid8, pg_current_snapshot())) "
            "FROM unnest(%s::text[]) AS x",
            [full],
        ).fetchone()
        return bool(visible and visible[0])

    def forget_paths(self) -> None:
        """Directories moved or were removed: cached paths may be wrong."""
        self._dirs.clear()

    def documents(self, versions: dict[int, int]) -> tuple[list[Document], list[int], Skipped]:
        """Documents of the inodes in `versions` (id -> version) that exist now, the ids that
        do not, and the xattrs left out for their size."""
        if not versions:
            return [], [], []
        rows = self._conn.execute(
            f"SELECT {_ROW} FROM inodes i {_JOINS} WHERE i.id = ANY(%s)", [list(versions)]
        ).fetchall()
        chains = self._chains({row[1] for row in rows if row[1] is not None})
        docs: list[Document] = []
        skipped: Skipped = []
        found: set[int] = set()
        for row in rows:
            inode_id, parent_id = row[0], row[1]
            if parent_id is None:
                names, ancestors = [""], []
            elif parent_id in chains:
                parent_names, parent_ids = chains[parent_id]
                names, ancestors = [*parent_names, row[2]], parent_ids
            else:
                continue  # its parent went away meanwhile: its own delete event follows
            doc, left_out = build(_row(row), names, ancestors, row[10], versions[inode_id])
            docs.append(doc)
            found.add(inode_id)
            if left_out:
                skipped.append((inode_id, left_out))
        return docs, [i for i in versions if i not in found], skipped

    def subtree(
        self, root: int, version: int, *, batch: int = 5_000
    ) -> Iterator[tuple[list[Document], Skipped]]:
        """Documents of `root` and everything below it, `batch` at a time (none if `root`
        no longer exists)."""
        chain = self._chains({root}, cache=False).get(root)
        if chain is None:
            return
        names, ids = chain
        yield from self._walk(root, names, ids[:-1], version, batch)

    def everything(
        self, version: int, *, batch: int = 5_000
    ) -> Iterator[tuple[list[Document], Skipped]]:
        """Every inode's document (call inside a REPEATABLE READ transaction for one
        consistent picture)."""
        yield from self._walk(1, [""], [], version, batch)

    def count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM inodes").fetchone()
        return int(row[0]) if row else 0

    # -- internals -------------------------------------------------------------------------

    def _chains(
        self, dir_ids: set[int], *, cache: bool = True
    ) -> dict[int, tuple[list[str], list[int]]]:
        """(names from the root, ids from the root) of each directory, itself included."""
        out = {i: self._dirs[i] for i in dir_ids if cache and i in self._dirs}
        wanted = [i for i in dir_ids if i not in out]
        if wanted:
            rows = self._conn.execute(
                """WITH RECURSIVE up (start, node, names, ids) AS (
                       SELECT d, d, ARRAY[]::text[], ARRAY[]::bigint[]
                       FROM unnest(%s::bigint[]) AS d
                       UNION ALL
                       SELECT up.start, i.parent_id, i.name || up.names, i.id || up.ids
                       FROM up JOIN inodes i ON i.id = up.node)
                   SELECT start, names, ids FROM up WHERE node IS NULL""",
                [wanted],
            ).fetchall()
            for start, names, ids in rows:
                out[start] = (names, ids)
            if cache:
                if len(self._dirs) + len(rows) > _CACHE_LIMIT:
                    self._dirs.clear()
                self._dirs.update((start, (names, ids)) for start, names, ids in rows)
        return out

    def _walk(
        self, root: int, names: list[str], ancestors: list[int], version: int, batch: int
    ) -> Iterator[tuple[list[Document], Skipped]]:
        sql = f"""WITH RECURSIVE down (id, names, ids) AS (
                      SELECT %(root)s::bigint, %(names)s::text[], %(ids)s::bigint[]
                      UNION ALL
                      SELECT c.id, down.names || c.name, down.ids || down.id
                      FROM inodes c JOIN down ON c.parent_id = down.id)
                  SELECT {_ROW}, down.names, down.ids
                  FROM down JOIN inodes i ON i.id = down.id {_JOINS}"""
        params = {"root": root, "names": names, "ids": ancestors}
        # a server-side cursor streams the subtree; it needs a transaction (a savepoint if
        # the caller has one open)
        with self._conn.transaction(), self._conn.cursor(name=f"epipe_walk_{root}") as cur:
            cur.itersize = batch
            cur.execute(sql, params)
            while rows := cur.fetchmany(batch):
                docs, skipped = [], []
                for row in rows:
                    doc, left_out = build(_row(row), row[11], row[12], row[10], version)
                    docs.append(doc)
                    if left_out:
                        skipped.append((row[0], left_out))
                yield docs, skipped


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "parent_id": row[1],
        "name": row[2],
        "kind": _KINDS[row[3]],
        "size": row[4],
        "mode": row[5],
        "owner": row[6],
        "group": row[7],
        "mtime": row[8],
        "ctime": row[9],
    }


def chunked(items: list[int], size: int) -> Iterator[list[int]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
