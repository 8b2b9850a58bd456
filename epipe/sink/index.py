"""IndexSink: events -> the search index, by reading the current rows they touch.

Events are notifications (ePipe's design): a batch collects which inodes changed, then reads
their current state and writes whole documents. Replays, duplicates and reordering within a
batch therefore converge, and an inode the database no longer has is never indexed again.
Per batch, in this order:

1. a truncation of inodes or xattrs: rebuild everything from the database;
2. removed inodes: delete by id, and below a removed directory by its id in the documents'
   ancestors. The cascade of an `rm -r` brings one delete event per descendant, in the same
   transaction, after the directory's own: the deletes by id are what is exact (the
   ancestors in the index miss documents a move in the same batch has not rewritten yet),
   the delete below takes a million-file subtree out of search at the first batch instead
   of over the hundreds that follow;
3. moved directories: rewrite the whole subtree (paths and ancestors changed): the stored
   documents at their new places where the index has one writer, else read again;
4. every other touched inode: re-read and rewrite (or delete, if it is gone);
5. commit the index.

`rebuild` fills a new generation from one snapshot and swaps it in (`epipe reindex` while
the pipeline runs: the consumer calls it between batches).

The sink holds the store's writer lock while it lives. Starting, it rebuilds an index that
cannot serve it (cannot be opened, carries no position, is behind or from another
database: epipe.index.position); after each batch the generation records the position it
holds; before each commit the sink checks that its generation is still current (a
generation swapped out from under it would take its writes out of search for good).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from epipe import events as ev
from epipe.errors import EpipeError
from epipe.events import Event
from epipe.fs.reader import NamespaceReader, chunked
from epipe.index.document import Document
from epipe.index.engine import (
    REINDEX,
    RUN,
    EngineError,
    IndexBusy,
    IndexStore,
    SearchIndex,
    upsert_files,
)
from epipe.index.position import (
    IndexPosition,
    database_identity,
    recorded_position,
    stale_because,
)
from epipe.index.rebuild import RebuildReport, rebuild
from epipe.index.state import DocumentSource, Skipped
from epipe.sink import Progress, Rejection

log = logging.getLogger(__name__)
_CHECK_CHUNK = 10_000  # ids per lookup when checking that deletes took
_WATCH_SECONDS = 120.0  # how long deleted ids are checked for (merges end well within it)
_WATCH_LIMIT = 20_000  # deleted ids watched at once; past it, a batch's deletes are checked once


class IndexSink:
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        store: IndexStore,
        consumer: str = "index",
    ) -> None:
        self._connect = connect  # rebuilds read one snapshot on a connection of their own
        self._store = store
        try:
            self._lock = store.hold_writer(RUN)
        except IndexBusy as busy:
            if busy.role == REINDEX:  # an EngineError: the pipeline tries again, and waits
                raise EngineError(f"{busy}: waiting for it to finish") from None
            holder = f"pid {busy.pid}" if busy.pid.isdigit() else "pid unknown"
            raise EpipeError(
                "the embedded (tantivy) index has a single writer and an index consumer holds "
                f"it ({holder}; lock {busy.path}): run one index consumer per index, or use "
                "Elasticsearch (EPIPE_INDEX=elasticsearch), where any number of `epipe consume "
                "index` share the work; the other consumers (provenance, hive) scale by "
                "starting more members of their group"
            ) from None
        try:
            self._conn = connect()
            self._identity = database_identity(self._conn)
            self.index, self._held = self._open(recorded_position(self._conn, consumer))
        except BaseException:
            self._lock.release()
            raise
        self._recent: dict[int, float] = {}  # deleted id -> until when it is checked
        self._reader = NamespaceReader(self._conn)
        self._state = DocumentSource(self._reader)
        self._reset()

    def _open(self, recorded: int) -> tuple[SearchIndex, int]:
        """The current generation, rebuilt first if it cannot serve a consumer that has
        applied changes up to `recorded`; with the position it holds."""
        reason: str | None
        try:
            index = self._store.current(writable=True)
        except EngineError as exc:
            reason = f"cannot be opened ({exc})"
        else:
            held = self._store.position(index.generation)
            reason = stale_because(held, self._identity, recorded)
            if reason is None:
                return index, 0 if held is None else held.lsn
            index.close()
        log.warning("the search index %s: rebuilding it from the database", reason)
        report, index = self._rebuilt()
        log.warning("the search index was rebuilt: %s", _summary(report))
        return index, report.position

    def _reset(self) -> None:
        self._touched: dict[int, int] = {}  # inode id -> version (commit LSN)
        self._cause: dict[int, Event] = {}  # inode id -> the last event about it
        self._moved_dirs: dict[int, Event] = {}
        self._deleted: set[int] = set()
        self._deleted_dirs: set[int] = set()
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
        if inode_id in self._deleted:
            return  # ids are never reused: what follows a delete is its cascade (xattrs)
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
            self._deleted_dirs.add(inode_id)

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
                index.delete_below(self._deleted_dirs)
            if self._touched or self._moved_dirs:
                self._reader.read_after(self._xids, lambda: self._rewrite(rejections))
            if self._touched or self._deleted or self._moved_dirs:
                self._still_current()
                index.commit()
            self._watch(self._deleted)
            self._check_deleted()
        finally:
            self._reset()
        return rejections

    def _watch(self, deleted: set[int]) -> None:
        """Deleted ids are looked up again at every flush for a while (up to a bound)."""
        if deleted and len(self._recent) + len(deleted) <= _WATCH_LIMIT:
            until = time.monotonic() + _WATCH_SECONDS
            self._recent.update(dict.fromkeys(deleted, until))

    def _check_deleted(self) -> None:
        """Deleted documents stay gone; if the engine brings one back, delete it again.
        (tantivy has been seen, about once in 300 histories that kill the pipeline, keeping
        a document whose delete was committed, back from a background merge that finished
        after the commit: the document would stay searchable for good.) Checked at every
        flush (idle heartbeats too) for _WATCH_SECONDS after the delete."""
        now = time.monotonic()
        self._recent = {i: until for i, until in self._recent.items() if until > now}
        kept: list[int] = []
        for chunk in chunked(sorted(self._recent.keys() | self._deleted), _CHECK_CHUNK):
            kept.extend(self.index.get(chunk))
        if kept:
            log.warning(
                "the search index kept %d deleted documents after a commit (%s): deleting "
                "them again",
                len(kept),
                ", ".join(map(str, sorted(kept)[:5])),
            )
            self.index.delete(kept)
            self.index.commit()

    def _rewrite(self, rejections: list[Rejection]) -> None:
        """Moved subtrees, then every other touched inode, from the current rows."""
        covered: set[int] = set()
        for root, cause in self._moved_dirs.items():
            for docs, skipped in self._moved(root, cause.lsn, covered):
                covered.update(doc["id"] for doc in docs)
                self._write(docs, skipped, lambda _id, c=cause: c, rejections)
        pending = {i: v for i, v in self._touched.items() if i not in covered}
        docs, missing, skipped = self._state.documents(pending)
        if missing:
            self.index.delete(missing)  # gone since: its delete event follows
        self._write(docs, skipped, self._cause.__getitem__, rejections)

    def _moved(
        self, root: int, version: int, covered: set[int]
    ) -> Iterator[tuple[list[Document], Skipped]]:
        """The documents below a moved directory at their new places. An index with one
        writer (its store's lock is exclusive) has committed everything applied before this
        batch, so its stored documents are moved (only their place changes; reading the rows
        and annotations again and building each document took half the time of a move);
        those this batch changes otherwise are read from the database after (left out
        here), as is everything when other writers may be applying newer changes."""
        if not self._lock.exclusive:
            yield from self._state.subtree(root, version)
            return
        skip = self._touched.keys() | self._deleted | covered
        for stored in self.index.scan(under=root):
            kept = [doc for doc in stored if doc["id"] not in skip]
            yield self._state.relocated(kept, version), []

    def _write(
        self, docs: list[Document], skipped: Skipped, cause: Any, rejections: list[Rejection]
    ) -> None:
        for inode_id, reason in upsert_files(self.index, docs):
            rejections.append((cause(inode_id), reason))
        for inode_id, reasons in skipped:
            rejections.append((cause(inode_id), _left_out(inode_id, reasons)))

    def _still_current(self) -> None:
        current = self._store.current_generation()
        if current != self.index.generation:
            raise EngineError(
                f"the index generation {self.index.generation} this pipeline writes to is no "
                f"longer the current one ({current}): something replaced the index; the "
                "pipeline must start again (it rebuilds an index it cannot go on from)"
            )

    def applied(self, lsn: int) -> None:
        """Everything up to `lsn` is applied (and committed): the generation records it."""
        if lsn > self._held:
            self._store.record_position(self.index.generation, IndexPosition(lsn, self._identity))
            self._held = lsn

    def _rebuilt(
        self, progress: Progress = lambda done, total: None
    ) -> tuple[RebuildReport, SearchIndex]:
        with self._connect() as conn:
            return rebuild(conn, self._store, progress=progress)

    def _rebuild(self, cause: Event, rejections: list[Rejection]) -> None:
        self.index.close()
        report, self.index = self._rebuilt()
        self._held = report.position
        for inode_id, reason in report.rejected:
            rejections.append((cause, f"inode {inode_id}: {reason}"))

    def rebuild(self, progress: Progress) -> str:
        """A new generation from one snapshot, swapped in; the sink writes to it from now on."""
        self.index.close()
        try:
            report, self.index = self._rebuilt(progress)
        except BaseException:
            self.index = self._store.current(writable=True)
            raise
        self._held = report.position
        return _summary(report)

    def close(self) -> None:
        try:
            self.index.close()
            self._conn.close()
        finally:
            self._lock.release()


def _summary(report: RebuildReport) -> str:
    return f"rebuilt the index: {report.documents:,} documents in {report.seconds:.1f} s"


def _left_out(inode_id: int, reasons: list[str]) -> str:
    return f"inode {inode_id}: {'; '.join(reasons)}; left out of the search index"
