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

Between batches it serves rebuild requests (`epipe reindex` while the pipeline runs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psycopg

from epipe import events as ev
from epipe.events import Event
from epipe.index.engine import IndexStore, SearchIndex, upsert_files
from epipe.index.rebuild import rebuild
from epipe.index.state import DocumentSource, Skipped
from epipe.sink import Rejection

log = logging.getLogger(__name__)
REQUEST_POLL_SECONDS = 2.0


class IndexSink:
    def __init__(self, connect: Callable[[], psycopg.Connection], store: IndexStore) -> None:
        self._connect = connect  # rebuilds read one snapshot on a connection of their own
        self._conn = connect()
        self._store = store
        self.index: SearchIndex = store.current(writable=True)
        self._state = DocumentSource(self._conn)
        self._last_request_check = 0.0
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
                self._state.forget_paths()
            index = self.index
            if self._deleted:
                index.delete(self._deleted, self._deleted_at)
            if self._touched or self._moved_dirs:
                self._state.read_after(self._xids, lambda: self._rewrite(rejections))
            if self._touched or self._deleted or self._moved_dirs:
                index.commit()
        finally:
            self._reset()
        self._serve_requests()
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
        self, docs: list[dict[str, Any]], skipped: Skipped, cause: Any, rejections: list[Rejection]
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

    # -- rebuild requests ----------------------------------------------------------------------

    def _serve_requests(self) -> None:
        now = time.monotonic()
        if now - self._last_request_check < REQUEST_POLL_SECONDS:
            return
        self._last_request_check = now
        row = self._conn.execute(
            "UPDATE epipe_index_requests SET started_at = now() WHERE id = (SELECT id FROM "
            "epipe_index_requests WHERE finished_at IS NULL AND started_at IS NULL "
            "ORDER BY id LIMIT 1) RETURNING id"
        ).fetchone()
        if row is None:
            return
        request = row[0]
        time.sleep(0.05)  # a change just decoded is visible to new snapshots by now
        self.index.close()
        error = None
        try:
            with self._connect() as conn:
                report, self.index = rebuild(
                    conn,
                    self._store,
                    progress=lambda done, total: self._progress(request, done, total),
                )
            log.info("rebuilt the index: %s documents in %.1f s", report.documents, report.seconds)
        except Exception as exc:
            error = str(exc)
            self.index = self._store.current(writable=True)
            log.error("rebuilding the index failed: %s", exc)
        self._conn.execute(
            "UPDATE epipe_index_requests SET finished_at = now(), error = %s WHERE id = %s",
            [error, request],
        )

    def _progress(self, request: int, done: int, total: int) -> None:
        self._conn.execute(
            "UPDATE epipe_index_requests SET done = %s, total = %s WHERE id = %s",
            [done, total, request],
        )

    def close(self) -> None:
        self.index.close()
        self._conn.close()


def _left_out(inode_id: int, reasons: list[str]) -> str:
    return f"inode {inode_id}: {'; '.join(reasons)}; left out of the search index"
