"""NamespaceReader: what consumers read of the namespace's current state.

Consumers treat events as notifications and read the current rows they touch (so replays
and reordering converge). Two things every such consumer needs live here:

- `read_after(xids, read)`: run `read` in one snapshot that contains every transaction of
  the batch being applied. A commit is decoded from the WAL a moment before the committing
  backend makes it visible to new snapshots; a consumer reading in that moment would apply
  the state from before the change and never look again.
- `chains(dir_ids)` / `paths(ids)`: where directories and inodes are now, from the parent
  chain. Directories' chains are cached until `forget_paths` (a directory moved or went).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg

T = TypeVar("T")
Chain = tuple[list[str], list[int]]  # names from the root's (''), ids from the root's
VISIBILITY_TIMEOUT = 10.0
_CACHE_LIMIT = 200_000
log = logging.getLogger(__name__)


class _NotYetVisible(Exception):
    pass


class NamespaceReader:
    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._dirs: dict[int, Chain] = {}

    def read_after(self, xids: set[int], read: Callable[[], T]) -> T:
        """Run `read` in one REPEATABLE READ snapshot that sees every transaction in `xids`
        (32-bit ids of transactions already decoded from the change log)."""
        conn = self.conn
        deadline = time.monotonic() + VISIBILITY_TIMEOUT
        attempt = 0
        while True:
            try:
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
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
        row = self.conn.execute("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").fetchone()
        assert row is not None
        xmax = int(row[0])
        full = []
        for xid in xids:  # widen to 64 bits with the epoch of the snapshot's xmax
            candidate = (xmax >> 32 << 32) | xid
            full.append(str(candidate - (1 << 32) if candidate > xmax else candidate))
        visible = self.conn.execute(
            "SELECT bool_and(pg_visible_in_snapshot(x::xid8, pg_current_snapshot())) "
            "FROM unnest(%s::text[]) AS x",
            [full],
        ).fetchone()
        return bool(visible and visible[0])

    def forget_paths(self) -> None:
        """Directories moved or were removed: cached chains may be wrong."""
        self._dirs.clear()

    def chains(self, dir_ids: set[int], *, cache: bool = True) -> dict[int, Chain]:
        """(names from the root, ids from the root) of each directory, itself included;
        directories that do not exist are left out."""
        out = {i: self._dirs[i] for i in dir_ids if cache and i in self._dirs}
        wanted = [i for i in dir_ids if i not in out]
        if wanted:
            rows = self.conn.execute(
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

    def paths(self, ids: set[int]) -> dict[int, str]:
        """The current path of each inode of `ids` that exists."""
        return {i: path_of(names) for i, (names, _) in self.chains(ids, cache=False).items()}


def path_of(names: list[str]) -> str:
    """['', 'a', 'b'] (the root's name first) -> '/a/b'."""
    return "/" + "/".join(names[1:])


def chunked(items: list[int], size: int) -> Iterator[list[int]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk
