"""ProvenanceSink: keeps the lineage graph (epipe/prov) from `prov.op` events.

Each batch folds its operations into graph changes (pure, epipe/prov/graph.py), reads where
the touched inodes are now in a snapshot that holds the batch, and merges everything with
the position it reached on each part of the stream (a Kafka partition) in one transaction
(epipe/prov/store.py): an event at or before its part's position is in the graph already.
Inode events say what else changes the graph: a move gives the nodes at and below the moved
inode their new place; a deletion marks a node deleted (it stays, with its last place). A
truncation of the log or of the namespace rebuilds the graph from the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import NamedTuple

import psycopg

from epipe import events as ev
from epipe.events import Event
from epipe.fs.reader import NamespaceReader
from epipe.prov import graph, rebuild, store
from epipe.prov.graph import Op
from epipe.prov.snapshot import Snapshot
from epipe.sink import Rejected, Rejection

log = logging.getLogger(__name__)


class ProvenanceSink:
    def __init__(self, connect: Callable[[], psycopg.Connection]) -> None:
        self._conn = connect()
        self._reader = NamespaceReader(self._conn)
        self._held, self._seen = store.state(self._conn)
        self._reset()

    def _reset(self) -> None:
        self._ops: list[_Pending] = []
        self._moved: set[int] = set()
        self._deleted: dict[int, datetime] = {}
        self._xids: set[int] = set()
        self._reached: dict[str, store.Position] = {}  # part -> its last event in the batch
        self._rebuild = self._held is None  # no graph yet: made from the log at once

    def add(self, event: Event) -> None:
        if event.snapshot:  # a backfill's rows: the graph is rebuilt from the log instead
            if event.type == ev.TABLE_TRUNCATED and _RESYNC & set(event.data["tables"]):
                self._rebuild = True
                self._reach(event)
            return
        # A read's message (no transaction) is logged once by its own position, whatever
        # the part or the last rebuild: never skipped here (migration 0015).
        read = event.type == ev.PROV_OP and event.xid == 0
        if self._held is not None and not read:
            if self._held.holds(event.part, event.position):
                return  # applied before a crash: the graph holds it already
            if event.part == store.IN_PROCESS and self._held.parts:
                # fed by Kafka before: which of its events were applied is known per
                # partition only, so the graph is made again from the log
                self._rebuild = True
        if event.type == ev.HEARTBEAT:
            return
        self._reach(event)
        if event.xid:
            self._xids.add(event.xid)
        if event.type == ev.PROV_OP:
            if not read and self._seen is not None and self._seen.saw(event.xid):
                return  # the last rebuild read this operation from the log
            try:
                op = graph.op_of(event.data["op"])
            except ValueError as exc:
                raise Rejected(str(exc)) from None
            self._ops.append(_Pending(op, event.part, event.position, event.xid))
        elif event.type == ev.INODE_MOVED and event.inode_id is not None:
            self._moved.add(event.inode_id)
        elif event.type == ev.INODE_DELETED and event.inode_id is not None:
            self._deleted[event.inode_id] = datetime.fromisoformat(event.committed_at)
        elif event.type == ev.TABLE_TRUNCATED and _RESYNC & set(event.data["tables"]):
            self._rebuild = True

    def _reach(self, event: Event) -> None:
        last = self._reached.get(event.part)
        if last is None or last < event.position:
            self._reached[event.part] = event.position

    def flush(self) -> list[Rejection]:
        try:
            if self._rebuild:
                log.info("provenance: building the lineage graph from the operation log")
                # the batch's events are committed: a rebuild now reads them all
                at = max(self._reached.values(), default=None)
                if at is None:
                    at = self._held.floor if self._held is not None else (0, 0)
                # the batch's reads are logged first: the rebuild reads them from the log
                with self._conn.transaction():
                    store.log_reads(self._conn, [p.op for p in self._ops])
                self._seen = rebuild.rebuild(self._conn, at)
                self._held = store.Held(at, {})
            elif self._reached:
                self._apply()
                assert self._held is not None  # no graph: a rebuild, above
                floor = self._reached.get(store.IN_PROCESS, self._held.floor)
                parts = self._held.parts | {
                    p: at for p, at in self._reached.items() if p != store.IN_PROCESS
                }
                self._held = store.Held(floor, parts)
            return []
        finally:
            self._reset()

    def _apply(self) -> None:
        ops = [p.op for p in self._ops]
        touched = graph.fold(ops)  # operations applied before among them too: only located
        found, gone = self._reader.read_after(
            self._xids, lambda: store.locate(self._conn, touched, self._moved)
        )
        # Kafka orders nothing between topics: a node's deletion (epipe.fs) may have been
        # applied before the operation that made it (epipe.prov), so a node gone already is
        # deleted; when, its deletion's event says if it comes later (the earlier time wins).
        now = datetime.now(UTC)
        deleted = {i: touched.deleted.get(i, now) for i in gone} | self._deleted
        with self._conn.transaction():
            # What the graph holds is read again, its parts locked: after a rebalance, the
            # member that held a part before may have applied events this one gets again.
            parts = {p for p in self._reached if p != store.IN_PROCESS}
            held, self._seen = store.holding(self._conn, parts)
            fresh = store.log_reads(self._conn, ops)
            new = [p.op for p in self._ops if p.new(held, self._seen, fresh)]
            delta = touched if len(new) == len(ops) else graph.fold(new)  # all new, usually
            store.apply(self._conn, delta, found, self._moved, deleted, self._reached)
        self._held = held

    def close(self) -> None:
        self._conn.close()


class _Pending(NamedTuple):
    """An operation of the batch and where it came from."""

    op: Op
    part: str
    position: store.Position
    xid: int

    def new(self, held: store.Held, seen: Snapshot | None, logged: set[int]) -> bool:
        """Not in the graph yet: a read its message logged now, a change beyond what its
        part holds and not read by the last rebuild."""
        if self.op.lsn is not None:
            return self.op.lsn in logged
        if held.holds(self.part, self.position):
            return False
        return seen is None or not seen.saw(self.xid)


# the tables whose truncation (a resynchronisation) the graph follows by a rebuild
_RESYNC = {"prov_ops", "inodes"}
