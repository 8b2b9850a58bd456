"""DocumentSource: documents built from the current rows of the metadata database.

The index sink treats events as notifications and reads the current state of what they
touch (so replays and reordering converge, and a deleted inode is never indexed again).
Paths come from the parent chain (`NamespaceReader`, shared with every consumer).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from epipe.fs.model import KINDS
from epipe.fs.reader import NamespaceReader
from epipe.index.document import Document, build, relocated

_ROW = """i.id, i.parent_id, i.name, i.kind, i.size, i.mode,
          coalesce(u.name, i.owner_id::text), coalesce(g.name, i.group_id::text),
          i.mtime, i.ctime,
          (SELECT jsonb_object_agg(CASE WHEN x.namespace = 'user'
                                             AND NOT starts_with(x.name, 'user.')
                                             AND NOT starts_with(x.name, 'system.')
                                        THEN x.name
                                        ELSE x.namespace || '.' || x.name END, x.value)
           FROM xattrs x WHERE x.inode_id = i.id)"""  # keys as xattrs.display_name shows them
_JOINS = "LEFT JOIN users u ON u.id = i.owner_id LEFT JOIN groups g ON g.id = i.group_id"
Skipped = list[tuple[int, list[str]]]  # (inode id, xattrs left out of its document)
T = TypeVar("T")


class DocumentSource:
    def __init__(self, reader: NamespaceReader) -> None:
        self.reader = reader
        self._conn = reader.conn

    def documents(self, versions: dict[int, int]) -> tuple[list[Document], list[int], Skipped]:
        """Documents of the inodes in `versions` (id -> version) that exist now, the ids that
        do not, and the xattrs left out for their size."""
        if not versions:
            return [], [], []
        rows = self._conn.execute(
            f"SELECT {_ROW} FROM inodes i {_JOINS} WHERE i.id = ANY(%s)", [list(versions)]
        ).fetchall()
        chains = self.reader.chains({row[1] for row in rows if row[1] is not None})
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
        chain = self.reader.chains({root}, cache=False).get(root)
        if chain is None:
            return
        names, ids = chain
        yield from self._walk(root, names, ids[:-1], version, batch)

    def relocated(self, stored: list[Document], version: int) -> list[Document]:
        """Stored documents of a moved subtree at their places now (their parents' chains
        as the database has them); those whose parent is gone are left out (their own
        delete events follow)."""
        chains = self.reader.chains({d["parent_id"] for d in stored if d["parent_id"] is not None})
        docs: list[Document] = []
        for doc in stored:
            chain = chains.get(doc["parent_id"]) if doc["parent_id"] is not None else None
            if chain is not None:
                names, ids = chain
                docs.append(relocated(doc, [*names, doc["name"]], ids, version))
        return docs

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
            for rows in fetched_ahead(lambda: cur.fetchmany(batch) or None):
                docs, skipped = [], []
                for row in rows:
                    doc, left_out = build(_row(row), row[11], row[12], row[10], version)
                    docs.append(doc)
                    if left_out:
                        skipped.append((row[0], left_out))
                yield docs, skipped


def fetched_ahead(fetch: Callable[[], T | None]) -> Generator[T, None, None]:
    """What `fetch()` returns until it returns None, the next call already running on a
    thread of its own while the caller works on the last: the database computes the next
    rows (in its own process) while the caller builds documents of these. Stopping early
    waits for the call in flight (at most one)."""
    with ThreadPoolExecutor(1, thread_name_prefix="epipe-fetch") as pool:
        pending = pool.submit(fetch)
        while (fetched := pending.result()) is not None:
            pending = pool.submit(fetch)
            yield fetched


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "parent_id": row[1],
        "name": row[2],
        "kind": KINDS[row[3]],
        "size": row[4],
        "mode": row[5],
        "owner": row[6],
        "group": row[7],
        "mtime": row[8],
        "ctime": row[9],
    }
