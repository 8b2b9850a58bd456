"""Backfill: rows that existed before the slot, brought into its stream without a gap.

Chunked, with watermarks (Netflix DBLog; Debezium's incremental snapshots): for each chunk
the source writes a low watermark into the change log, reads the next rows by key, and
writes a high watermark. While the stream is between the two, every change to a row of the
chunk drops that row from the chunk (the change is newer than the read). At the high
watermark the rows left are emitted, as `snapshot` events. So every row's last event
reflects its current state, no snapshot is held open, and the stream keeps flowing.

Progress (the last key emitted) is saved once the slot is confirmed past the chunk's high
watermark: after a crash the backfill resumes with the next chunk.

A commit is written to the change log a moment before it becomes visible to new snapshots.
A transaction whose commit precedes the low watermark in the log, yet is not visible to the
chunk's read, would have its change shown before the window and the older row emitted after
it. So the read waits until every transaction in flight when the low watermark committed is
visible: until every transaction with an id below a fresh one has ended (checked while the
stream goes on; a long transaction delays only the backfill).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from epipe import events as ev
from epipe.db.visibility import horizon, passed
from epipe.events import Event
from epipe.pipeline.store import PipelineStore
from epipe.source import pgoutput as pg
from epipe.source.translate import Table, Translator

log = logging.getLogger(__name__)

WATERMARK = "epipe.watermark"
KEYS: dict[str, tuple[str, ...]] = {
    "inodes": ("id",),
    "xattrs": ("inode_id", "namespace", "name"),
    "prov_ops": ("id",),
}
# rows per chunk; xattr values may be 64 KiB each, so their chunks are smaller
CHUNK_ROWS: dict[str, int] = {"inodes": 10_000, "xattrs": 2_000, "prov_ops": 10_000}


@dataclass
class _Step:
    """Where the next chunk of a relation starts: after `last_key` (None: at the start)."""

    relation: str
    last_key: list[Any] | None
    done: bool


@dataclass
class Chunk:
    relation: str
    id: str
    rows: dict[tuple[Any, ...], dict[str, Any]]
    last_key: list[Any] | None
    last: bool  # the relation has no rows after this chunk
    opened: bool = False
    emitted: int = 0
    end_lsn: int | None = None  # end of the high watermark's transaction, once seen
    read: int = field(default=0)
    # the read waits until every transaction below this id has ended: each that existed
    # when the low watermark committed
    horizon: str = "0"
    selected: bool = False  # the rows are read and the high watermark written
    changed: set[tuple[Any, ...]] = field(default_factory=set)  # keys changed in the window
    truncated: bool = False  # the relation was truncated in the window


def key_of(event: Event) -> tuple[str, tuple[Any, ...]] | None:
    """(relation, key) of the row a stream event is about."""
    data = event.data
    if event.type.startswith("inode."):
        return "inodes", (event.inode_id,)
    if event.type.startswith("xattr."):
        x = data["xattr"]
        return "xattrs", (x.get("inode_id"), x.get("namespace"), x.get("name"))
    if event.type == ev.PROV_OP:
        return "prov_ops", (data["op"].get("id"),)
    return None


def key_of_row(relation: str, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[k] for k in KEYS[relation])


class Backfill:
    def __init__(
        self,
        store: PipelineStore,
        source_emit: Any,
        read_conn: Any,
        slot: str,
        chunk_rows: dict[str, int] | None = None,
    ) -> None:
        self._store = store
        self._emit = source_emit  # (prefix, content) -> None: writes a logical message
        self._conn = read_conn
        self._slot = slot
        self._chunk_rows = {**CHUNK_ROWS, **(chunk_rows or {})}
        self._tables: dict[str, Table] = {}
        self.chunk: Chunk | None = None
        self._done_chunks: list[Chunk] = []  # emitted, waiting for the slot to pass them
        # where the next chunk of each relation starts
        saved = store.backfill(slot)
        self._plan = [_Step(s.relation, s.last_key, s.done) for s in saved]
        self._resync = any(s.resync for s in saved)

    # -- planning ----------------------------------------------------------------------------

    def start(self, relations: Iterable[str]) -> None:
        """Backfill `relations` from their first row. Once a consumer has applied changes it
        may hold rows deleted while nothing streamed: the backfill then resynchronises
        (truncation first); decided now and saved, so a restart decides the same."""
        relations = list(relations)
        self._resync = any(p.applied_lsn > 0 for p in self._store.positions())
        self._store.start_backfill(self._slot, relations, resync=self._resync)
        self._plan = [_Step(relation, None, False) for relation in relations]
        self._done_chunks.clear()
        self.chunk = None

    @property
    def pending(self) -> bool:
        """A chunk is to be read: the next one, or the one whose low watermark is written."""
        if self.chunk is not None:
            return not self.chunk.selected
        return any(not step.done for step in self._plan)

    def read_chunk(self) -> None:
        """Low watermark; once the transactions in flight then are visible, read the next
        chunk and write the high watermark (the stream brings both watermarks back)."""
        if self.chunk is None:
            self._open_chunk()
        chunk = self.chunk
        if chunk is None or chunk.selected or not passed(self._conn, chunk.horizon):
            return
        step = next(entry for entry in self._plan if not entry.done)
        limit = self._chunk_rows[chunk.relation]
        rows = self._select(chunk.relation, self._table(chunk.relation), step.last_key, limit)
        self._emit(WATERMARK, self._mark(chunk.id, "high"))
        chunk.rows = {key_of_row(chunk.relation, row): row for row in rows}
        chunk.last_key = list(next(reversed(chunk.rows))) if chunk.rows else step.last_key
        chunk.last, chunk.read, chunk.selected = len(rows) < limit, len(rows), True
        step.last_key, step.done = chunk.last_key, chunk.last

    def _open_chunk(self) -> None:
        step = next((entry for entry in self._plan if not entry.done), None)
        if step is None:
            return
        chunk_id = uuid.uuid4().hex
        truncate = [s.relation for s in self._plan] if self._resynchronises() else None
        if truncate:
            log.warning(
                "backfill of slot %r from the first row after consumers applied changes: "
                "every consumer resynchronising (truncation of %s, then every row)",
                self._slot,
                ", ".join(truncate),
            )
        self._emit(WATERMARK, self._mark(chunk_id, "low", truncate))
        below = horizon(self._conn)
        self.chunk = Chunk(step.relation, chunk_id, {}, step.last_key, False, horizon=below)

    def _mark(self, chunk_id: str, mark: str, truncate: list[str] | None = None) -> str:
        content: dict[str, Any] = {"slot": self._slot, "chunk": chunk_id, "mark": mark}
        if truncate:
            content["truncate"] = truncate
        return orjson.dumps(content).decode()

    def _resynchronises(self) -> bool:
        """The first chunk of a resynchronising backfill begins with a truncation of its
        relations: what was deleted while the slot did not stream (or its publication was
        gone) has no event, so consumers drop everything and take the rows again. From saved
        state alone: a restart before the first chunk was confirmed truncates again."""
        first = all(step.last_key is None and not step.done for step in self._plan)
        return first and self._resync

    def _table(self, relation: str) -> Table:
        if relation not in self._tables:
            columns = self._conn.execute(
                "SELECT attname::text, atttypid::int FROM pg_attribute WHERE attrelid = "
                "%s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                [f"public.{relation}"],
            ).fetchall()
            self._tables[relation] = Table.of(relation, columns)
        return self._tables[relation]

    def _select(
        self, relation: str, table: Table, after: list[Any] | None, limit: int
    ) -> list[dict[str, Any]]:
        keys = KEYS[relation]
        columns = ", ".join(f't."{c}"::text' for c in table.columns)
        # qualified: a bare name in ORDER BY would mean the text output column
        order = ", ".join(f"t.{k}" for k in keys)
        where = f"WHERE ({order}) > ({', '.join(['%s'] * len(keys))})" if after else ""
        rows = self._conn.execute(
            f"SELECT {columns} FROM public.{relation} t {where} ORDER BY {order} LIMIT %s",
            [*(after or []), limit],
        ).fetchall()
        return [table.row(values)[0] for values in rows]

    # -- the stream --------------------------------------------------------------------------

    def on_message(self, message: pg.Message, translator: Translator) -> list[Event]:
        """A watermark of ours opens the chunk's window, or closes it and emits the rows."""
        chunk = self.chunk
        if chunk is None or not message.transactional:
            return []
        try:
            mark = orjson.loads(message.content)
        except orjson.JSONDecodeError:
            return []
        if mark.get("slot") != self._slot or mark.get("chunk") != chunk.id:
            return []  # another tailer's, or a chunk from before a restart
        if mark.get("mark") == "low":
            chunk.opened = True
            tables = mark.get("truncate")
            if not tables:
                return []
            data = {"tables": tables, "cascade": False, "restart_identity": False}
            return [translator.event(ev.TABLE_TRUNCATED, None, data, snapshot=True)]
        if not chunk.selected:
            return []  # cannot happen: the high watermark is written after the read
        rows = [] if chunk.truncated else chunk.rows.values()
        out = [
            translator.created(chunk.relation, row, snapshot=True)
            for row in rows
            if key_of_row(chunk.relation, row) not in chunk.changed
        ]
        chunk.emitted = len(out)
        chunk.rows, chunk.changed = {}, set()
        self.chunk = None
        self._done_chunks.append(chunk)
        return out

    def observe(self, events: list[Event]) -> None:
        """Stream events inside the window drop the rows they change from the chunk."""
        chunk = self.chunk
        if chunk is None or not chunk.opened:
            return
        for event in events:
            if event.snapshot:  # our own truncation, at the low watermark
                continue
            if event.type == ev.TABLE_TRUNCATED and chunk.relation in event.data["tables"]:
                chunk.truncated = True
                continue
            found = key_of(event)
            if found is not None and found[0] == chunk.relation:
                chunk.changed.add(found[1])

    def on_commit(self, end_lsn: int) -> None:
        """The transaction just read ended at `end_lsn` (a high watermark's, perhaps)."""
        for chunk in self._done_chunks:
            if chunk.end_lsn is None:
                chunk.end_lsn = end_lsn

    def on_confirmed(self, lsn: int) -> None:
        """The slot passed `lsn`: save the progress of every chunk it covers."""
        while (
            self._done_chunks and (end := self._done_chunks[0].end_lsn) is not None and end <= lsn
        ):
            chunk = self._done_chunks.pop(0)
            if chunk.last_key is not None or chunk.last:
                self._store.save_backfill(
                    self._slot, chunk.relation, chunk.last_key or [], chunk.emitted, chunk.last
                )
