"""ProvenanceSink: keeps the lineage graph (epipe/prov) from `prov.op` events.

Each batch folds its operations into graph changes (pure, epipe/prov/graph.py), reads where
the touched inodes are now in a snapshot that holds the batch, and merges everything with
the position it reached in one transaction (epipe/prov/store.py). Inode events say what
else changes the graph: a move gives the nodes at and below the moved inode their new
place; a deletion marks a node deleted (it stays, with its last place). A truncation of the
log or of the namespace rebuilds the graph from the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import psycopg

from epipe import events as ev
from epipe.events import Event
from epipe.fs.reader import NamespaceReader
from epipe.prov import graph, rebuild, store
from epipe.prov.graph import Op
from epipe.sink import Rejected, Rejection

log = logging.getLogger(__name__)


class ProvenanceSink:
    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._conn = connect()
        self._reader = NamespaceReader(self._conn)
        self._held, self._seen = store.state(self._conn)
        self._reset()

    def _reset(self) -> None:
        self._ops: list[Op] = []
        self._moved: set[int] = set()
        self._deleted: dict[int, datetime] = {}
        self._xids: set[int] = set()
        self._last: tuple[int, int] | None = None
        self._rebuild = self._held is None  # no graph yet: made from the log at once

    def add(self, event: Event) -> None:
        if event.snapshot:  # a backfill's rows: the graph is rebuilt from the log instead
            if event.type == ev.TABLE_TRUNCATED and _RESYNC & set(event.data["tables"]):
                self._rebuild = True
                self._last = event.position
            return
        if self._held is not None and event.position <= self._held:
            return  # applied before a crash: the graph holds it already
        if event.type == ev.HEARTBEAT:
            return
        self._last = event.position
        if event.xid:
            self._xids.add(event.xid)
        if event.type == ev.PROV_OP:
            if self._seen is not None and self._seen.saw(event.xid):
                return  # the last rebuild read this operation from the log
            try:
                self._ops.append(graph.op_of(event.data["op"]))
            except ValueError as exc:
                raise Rejected(str(exc)) from None
        elif event.type == ev.INODE_MOVED and event.inode_id is not None:
            self._moved.add(event.inode_id)
        elif event.type == ev.INODE_DELETED and event.inode_id is not None:
            self._deleted[event.inode_id] = datetime.fromisoformat(event.committed_at)
        elif event.type == ev.TABLE_TRUNCATED and _RESYNC & set(event.data["tables"]):
            self._rebuild = True

    def flush(self) -> list[Rejection]:
        try:
            at = self._last or self._held or (0, 0)
            if self._rebuild:
                log.info("provenance: building the lineage graph from the operation log")
                self._seen = rebuild.rebuild(self._conn, at)
                self._held = at
            elif self._last is not None:
                self._apply(self._last)
                self._held = self._last
            return []
        finally:
            self._reset()

    def _apply(self, at: tuple[int, int]) -> None:
        delta = graph.fold(self._ops)
        found, _ = self._reader.read_after(
            self._xids, lambda: store.locate(self._conn, delta, self._moved)
        )
        store.apply(self._conn, delta, found, self._moved, self._deleted, at)

    def close(self) -> None:
        self._conn.close()


# the tables whose truncation (a resynchronisation) the graph follows by a rebuild
_RESYNC = {"prov_ops", "inodes"}
