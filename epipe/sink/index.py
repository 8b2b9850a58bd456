"""IndexSink: events -> the search index, by reading the current rows they touch.

Events are notifications (ePipe's design): a batch collects which inodes changed, then reads
their current state and writes whole documents. Replays, duplicates and reordering within a
batch therefore converge, and an inode the database no longer has is never indexed again.
Per batch, in this order:

1. a truncation of inodes or xattrs: rebuild everything from the database;
2. removed inodes: delete by id (the cascade of an `rm -r` brings one delete event per
   descendant, in the same transaction; an index subtree query would miss documents whose
   ancestors a move in the same batch has not rewritten yet);
3. moved directories: re-read and rewrite the whole subtree (paths and ancestors changed);
4. every other touched inode: re-read and rewrite (or delete, if it is gone);
5. commit the index.

`rebuild` fills a new generation from one snapshot and swaps it in (`epipe reindex` while
the pipeline runs: the consumer calls it between batches).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from epipe import events as ev
from epipe.events import Event
from epipe.fs.reader import NamespaceReader
from epipe.index.document import Document
from epipe.index.engine import IndexStore, SearchIndex, upsert_files
from epipe.index.rebuild import rebuild
from epipe.index.state import DocumentSource, Skipped
from epipe.sink import Progress, Rejection

log = logging.getLogger(__name__)


class IndexSink:
    def __init__(self, connect: Callable[[], psycopg.Connection], store: IndexStore) -> None:
        self._connect = connect  # rebuilds read one snapshot on a connection of their own
        self._conn = connect()
        self._store = store
        self.index: SearchIndex = store.current(writable=True)
        self._reader = NamespaceReader(self._conn)
        self._state = DocumentSource(self._reader)
        self._reset()

    def _reset(self) -> None:
        self._touched: dict[int, int] = {}  # inode id -> version (commit LSN)
        self._cause: dict[int, Event] = {}  # inode id -> the last event about it
        self._moved_dirs: dict[int, Event] = {}
        self._deleted: set[int] = set()
        self._deleted_at = 0  # LSN of the last delete in the batch
        self._refresh: Event | None = None
        self._paths_stale = False
        self._xids: set[int] = set()  # transactions whose changes this batch applies

    def add(self, event: Event) -> None:
        kind = event.type
        if event.xid:
            self._xids.add(event.xid)
        if kind in (ev.INODE_CREATED, ev.INODE_UPDATED, ev.XATTR_SET, ev.XATTR_REMOVED):
            self._touch(event)
        elif kind == ev.INODE_MOVED:
            self._touch(event)
            if event.data["inode"].get("kind") == "dir":
                self._moved_dirs[event.data["inode"]["id"]] = event
                self._paths_stale = True
        elif kind == ev.INODE_DELETED:
            self._delete(event)
        elif kind == ev.TABLE_TRUNCATED and {"inodes", "xattrs"} & set(event.data["tables"]):
            self._refresh = event

    def _touch(self, event: Event) -> None:
        inode_id = event.inode_id
        assert inode_id is not None
        self._touched[inode_id] = event.lsn
        self._cause[inode_id] = event

    def _delete(self, event: Event) -> None:
        row = event.data["inode"]
        inode_id = row["id"]
        self._deleted_at = max(self._deleted_at, event.lsn)
        self._touched.pop(inode_id, None)
        self._moved_dirs.pop(inode_id, None)
        self._deleted.add(inode_id)
        if row.get("kind") == "dir":
            self._paths_stale = True

    def flush(self) -> list[Rejection]:
        rejections: list[Rejection] = []
        try:
            if self._refresh is not None:
                self._rebuild(self._refresh, rejections)
                return rejections
            if self._paths_stale:
                self._reader.forget_paths()
            index = self.index
            if self._deleted:
                index.delete(self._deleted, self._deleted_at)
            if self._touched or self._moved_dirs:
                self._reader.read_after(self._xids, lambda: self._rewrite(rejections))
            if self._touched or self._deleted or self._moved_dirs:
                index.commit()
        finally:
            self._reset()
        return rejections

    def _rewrite(self, rejections: list[Rejection]) -> None:
        """Moved subtrees, then every other touched inode, from the current rows."""
        covered: set[int] = set()
        for root, cause in self._moved_dirs.items():
            for docs, skipped in self._state.subtree(root, cause.lsn):
                covered.update(doc["id"] for doc in docs)
                self._write(docs, skipped, lambda _id, c=cause: c, rejections)
        pending = {i: v for i, v in self._touched.items() if i not in covered}
        docs, missing, skipped = self._state.documents(pending)
        if missing:
            self.index.delete(missing)  # gone since: its delete event follows
        self._write(docs, skipped, self._cause.__getitem__, rejections)

    def _write(
        self, docs: list[Document], skipped: Skipped, cause: Any, rejections: list[Rejection]
    ) -> None:
        for inode_id, reason in upsert_files(self.index, docs):
            rejections.append((cause(inode_id), reason))
        for inode_id, reasons in skipped:
            rejections.append((cause(inode_id), _left_out(inode_id, reasons)))

    def _rebuild(self, cause: Event, rejections: list[Rejection]) -> None:
        self.index.close()
        with self._connect() as conn:
            report, self.index = rebuild(conn, self._store)
        for inode_id, reason in report.rejected:
            rejections.append((cause, f"inode {inode_id}: {reason}"))

    def rebuild(self, progress: Progress) -> str:
        """A new generation from one snapshot, swapped in; the sink writes to it from now on."""
        time.sleep(0.05)  # a change just decoded is visible to new snapshots by now
        self.index.close()
        try:
            with self._connect() as conn:
                report, self.index = rebuild(conn, self._store, progress=progress)
        except BaseException:
            self.index = self._store.current(writable=True)
            raise
        return f"rebuilt the index: {report.documents:,} documents in {report.seconds:.1f} s"

    def close(self) -> None:
        self.index.close()
        self._conn.close()


def _left_out(inode_id: int, reasons: list[str]) -> str:
    return f"inode {inode_id}: {'; '.join(reasons)}; left out of the search index"
