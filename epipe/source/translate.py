"""Translation of decoded pgoutput messages into domain events: pure, no I/O.

`Translator` keeps only what the protocol makes it keep (relations seen, the transaction
being read); `feed(message)` returns the events that message yields, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from struct import Struct
from struct import error as StructError
from typing import Any, NamedTuple

import orjson

from epipe import events as ev
from epipe import jsonvalue
from epipe.events import Event
from epipe.fs.model import KINDS
from epipe.lsn import lsn_to_str
from epipe.source import pgoutput as pg

try:  # the compiled twin of Table.parse_python, built by `make install` (hatch_build.py)
    from epipe.source._tuples import parse as _compiled_parse
except ImportError:  # no compiler where epipe was installed: the same, in Python
    _compiled_parse = None  # type: ignore[assignment]

COMPILED = _compiled_parse is not None

_I16 = Struct(">h").unpack_from
_I32 = Struct(">i").unpack_from
_U32 = Struct(">I").unpack_from

CAPTURED = ("inodes", "xattrs", "prov_ops")
READ = "epipe.prov.read"  # the prefix of a read's message (migration 0015)
_EPOCH_2000 = datetime(2000, 1, 1, tzinfo=UTC)
_MOVE_COLUMNS = ("parent_id", "name")


def timestamptz(text: str) -> str:
    """PostgreSQL's text timestamp -> ISO 8601 ('2026-11-26 18:13:52.03+00' -> '…T…+00:00')."""
    if len(text) < 19 or not text[0].isdigit():
        return text  # 'infinity' and the like stay as they are
    iso = text[:10] + "T" + text[11:]
    return iso + ":00" if iso[-3] in "+-" else iso


def _timestamp(text: str) -> str:
    return text.replace(" ", "T", 1)


# Text output of a type -> the JSON value in events, from `str` (what `pgoutput.decode`
# and SQL give) and from `bytes` (what the fast path slices out of the payload).
CONVERTERS: dict[int, Callable[[str], Any]] = {
    16: lambda v: v == "t",
    20: int,
    21: int,
    23: int,
    26: int,  # int8, int2, int4, oid
    700: float,
    701: float,
    114: jsonvalue.load,  # json, jsonb: any value PostgreSQL holds, never an error
    3802: jsonvalue.load,
    1184: timestamptz,
    1114: _timestamp,
}
RAW_CONVERTERS: dict[int, Callable[[bytes], Any]] = {
    16: lambda v: v == b"t",
    20: int,
    21: int,
    23: int,
    26: int,  # int() takes bytes too
    700: float,
    701: float,
    114: jsonvalue.load,
    3802: jsonvalue.load,
    1184: lambda v: timestamptz(v.decode()),
    1114: lambda v: _timestamp(v.decode()),
}
# per table: columns whose events spell a code out ("kind" 'f' -> "file")
_OVERRIDES: dict[tuple[str, str], tuple[Callable[[str], Any], Callable[[bytes], Any]]] = {
    ("inodes", "kind"): (lambda v: KINDS.get(v, v), lambda v: KINDS.get(v.decode(), "?")),
}


def _text(value: str) -> str:
    return value


def read_event(lsn: int, content: bytes) -> Event:
    """A read, recorded as a non-transactional message: a `prov.op` event at the message's
    own position, keyed by that position until it is logged. Content that is not a read's
    goes on as it is: the provenance consumer dead-letters it."""
    try:
        row = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        row = {"content": content.decode(errors="replace"), "error": str(exc)}
    if not isinstance(row, dict):
        row = {"content": row}
    inode = row.get("inode_id")
    at = row.get("at")
    data = {"op": {**row, "id": None, "op": "read", "detail": None, "lsn": lsn_to_str(lsn)}}
    return Event(
        ev.PROV_OP,
        lsn,
        0,
        0,
        at if isinstance(at, str) else "",
        inode if isinstance(inode, int) and not isinstance(inode, bool) else None,
        data,
    )


def _code(oid: int) -> int:
    """How the compiled parse converts a column of this type (_tuples.c): the converters
    above, or 'c' to call the column's converter."""
    if oid in (20, 21, 23, 26):
        return ord("i")
    if oid == 16:
        return ord("b")
    if oid == 1184:
        return ord("z")
    return ord("c") if oid in RAW_CONVERTERS else ord("s")  # the rest: bytes.decode


class Table(NamedTuple):
    """A relation as the translator needs it: names and a converter per column."""

    name: str
    columns: tuple[str, ...]
    converters: tuple[Callable[[str], Any], ...]
    raw_converters: tuple[Callable[[bytes], Any], ...]
    codes: bytes  # per column, for the compiled parse

    @classmethod
    def of(cls, name: str, columns: Sequence[tuple[str, int]]) -> Table:
        plain, raw, codes = [], [], []
        for column, oid in columns:
            override = _OVERRIDES.get((name, column))
            plain.append(override[0] if override else CONVERTERS.get(oid, _text))
            raw.append(override[1] if override else RAW_CONVERTERS.get(oid, bytes.decode))
            codes.append(ord("c") if override else _code(oid))
        return cls(name, tuple(c for c, _ in columns), tuple(plain), tuple(raw), bytes(codes))

    def row(self, values: Sequence[pg.Value]) -> tuple[dict[str, Any], list[str]]:
        """Column values -> (row dict, names of unchanged TOASTed columns left out)."""
        out: dict[str, Any] = {}
        unchanged: list[str] = []
        for name, convert, value in zip(self.columns, self.converters, values, strict=False):
            if value is None:
                out[name] = None
            elif value is pg.UNCHANGED:
                unchanged.append(name)
            elif isinstance(value, str):
                out[name] = convert(value)
            else:  # binary format is never requested; keep bytes as hex rather than fail
                out[name] = value.hex()  # type: ignore[union-attr]
        return out, unchanged

    def parse(self, buf: bytes, pos: int) -> tuple[dict[str, Any], list[str], int]:
        """The fast path: a pgoutput TupleData at `pos` straight into a row dict (what
        `row(pgoutput.decode(...))` gives, without the intermediate tuple of strings);
        compiled where `make install` built it, else `parse_python`."""
        if _compiled_parse is None:
            return self.parse_python(buf, pos)
        return _compiled_parse(
            buf, pos, self.name, self.columns, self.codes, self.raw_converters, pg.DecodeError
        )

    def parse_python(self, buf: bytes, pos: int) -> tuple[dict[str, Any], list[str], int]:
        """`parse`'s definition, which the compiled one is held equal to."""
        (count,) = _I16(buf, pos)
        if count != len(self.columns):
            raise pg.DecodeError(f"{self.name}: {count} columns in a tuple of {len(self.columns)}")
        pos += 2
        out: dict[str, Any] = {}
        unchanged: list[str] = []
        length = _I32
        for name, convert in zip(self.columns, self.raw_converters):  # noqa: B905 - counted
            kind = buf[pos]
            if kind == 0x74:  # 't'
                start = pos + 5
                pos = start + length(buf, pos + 1)[0]
                out[name] = convert(buf[start:pos])
            elif kind == 0x6E:  # 'n'
                out[name] = None
                pos += 1
            elif kind == 0x75:  # 'u'
                unchanged.append(name)
                pos += 1
            else:
                raise pg.DecodeError(f"unexpected tuple column kind {chr(kind)!r}")
        if pos > len(buf):
            raise pg.DecodeError(f"{self.name}: tuple runs past the end of the message")
        return out, unchanged, pos


def xattr_key(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "inode_id": row.get("inode_id"),
        "namespace": row.get("namespace"),
        "name": row.get("name"),
    }


class Translator:
    """Decoded pgoutput messages in, domain events out."""

    def __init__(self, captured: Sequence[str] = CAPTURED) -> None:
        self._captured = frozenset(captured)
        self._tables: dict[int, Table] = {}
        self._names: dict[int, str] = {}
        self.xid = 0
        self.commit_lsn = 0
        self.committed_at = ""
        self.origin: str | None = None
        self.in_transaction = False
        self._seq = 0

    def feed(self, message: pg.Decoded) -> list[Event]:
        kind = type(message)
        if kind is pg.Insert:
            return self._insert(message)  # type: ignore[arg-type]
        if kind is pg.Update:
            return self._update(message)  # type: ignore[arg-type]
        if kind is pg.Delete:
            return self._delete(message)  # type: ignore[arg-type]
        if kind is pg.Begin:
            self._begin(message)  # type: ignore[arg-type]
        elif kind is pg.Commit:
            self.in_transaction = False
            self.origin = None
        elif kind is pg.Relation:
            self._relation(message)  # type: ignore[arg-type]
        elif kind is pg.Truncate:
            return self._truncate(message)  # type: ignore[arg-type]
        elif kind is pg.Origin:
            self.origin = message.name  # type: ignore[union-attr]
        elif kind is pg.Message:
            return self._message(message)  # type: ignore[arg-type]
        return []  # Type carries no row data

    def _message(self, message: pg.Message) -> list[Event]:
        if message.transactional or message.prefix != READ:
            return []
        return [read_event(message.lsn, message.content)]

    def next_seq(self) -> int:
        seq = self._seq
        self._seq += 1
        return seq

    def event(
        self, type_: str, inode_id: int | None, data: dict[str, Any], snapshot: bool = False
    ) -> Event:
        return Event(
            type_,
            self.commit_lsn,
            self.next_seq(),
            self.xid,
            self.committed_at,
            inode_id,
            data,
            snapshot,
        )

    # -- protocol messages -------------------------------------------------------------------

    def _begin(self, message: pg.Begin) -> None:
        committed_at = _EPOCH_2000 + timedelta(microseconds=message.commit_ts)
        self.begin(message.xid, message.final_lsn, committed_at.isoformat())

    def begin(self, xid: int, commit_lsn: int, committed_at: str) -> None:
        """A transaction starts: its events carry these, in sequence from 0."""
        self.in_transaction = True
        self.xid = xid
        self.commit_lsn = commit_lsn
        self.committed_at = committed_at
        self._seq = 0

    def _relation(self, message: pg.Relation) -> None:
        self._names[message.oid] = message.name
        if message.name in self._captured and message.namespace == "public":
            self._tables[message.oid] = Table.of(
                message.name, [(c.name, c.type_oid) for c in message.columns]
            )
        else:
            self._tables.pop(message.oid, None)

    def _truncate(self, message: pg.Truncate) -> list[Event]:
        tables = [self._tables[oid].name for oid in message.relation_oids if oid in self._tables]
        if not tables:
            return []
        return [
            self.event(
                ev.TABLE_TRUNCATED,
                None,
                {
                    "tables": tables,
                    "cascade": bool(message.options & pg.TRUNCATE_CASCADE),
                    "restart_identity": bool(message.options & pg.TRUNCATE_RESTART_IDENTITY),
                },
            )
        ]

    # -- row changes -------------------------------------------------------------------------

    def _insert(self, message: pg.Insert) -> list[Event]:
        table = self._tables.get(message.relation_oid)
        if table is None:
            return []
        row, _ = table.row(message.new)
        return self.inserted(table.name, row)

    def inserted(self, table: str, row: dict[str, Any]) -> list[Event]:
        """The events of a row inserted into `table`."""
        if table == "prov_ops" and row.get("lsn") is not None:
            return []  # a read the provenance consumer logged: its message was the event
        return [self.created(table, row)]

    def created(self, table: str, row: dict[str, Any], snapshot: bool = False) -> Event:
        """The event of a row that appeared (an insert, or a row read by a backfill)."""
        if table == "inodes":
            return self.event(ev.INODE_CREATED, row.get("id"), {"inode": row}, snapshot)
        if table == "xattrs":
            return self.event(ev.XATTR_SET, row.get("inode_id"), {"xattr": row}, snapshot)
        return self.event(ev.PROV_OP, row.get("inode_id"), {"op": row}, snapshot)

    def feed_raw(self, payload: bytes) -> list[Event]:
        """Like `feed(decode(payload))`, but row changes go straight from bytes to events
        (the hot path: no intermediate tuple of strings)."""
        kind = payload[0]
        if kind not in (0x49, 0x55, 0x44):  # Insert, Update, Delete
            return self.feed(pg.decode(payload))
        try:
            table = self._tables.get(_U32(payload, 1)[0])
            if table is None:
                return []
            tag = payload[5]
            if kind == 0x49:
                if tag != 0x4E:
                    raise pg.DecodeError("insert without a new tuple")
                return self.inserted(table.name, table.parse(payload, 6)[0])
            if kind == 0x44:
                if tag not in (0x4B, 0x4F):
                    raise pg.DecodeError("delete without an old tuple")
                return self.deleted(table.name, table.parse(payload, 6)[0])
            pos, old, old_kind = 5, None, None
            if tag in (0x4B, 0x4F):
                old_kind = chr(tag)
                old, _, pos = table.parse(payload, 6)
            if payload[pos] != 0x4E:
                raise pg.DecodeError("update without a new tuple")
            new, unchanged, _ = table.parse(payload, pos + 1)
            return self.updated(table.name, old_kind, old, new, unchanged)
        except (IndexError, ValueError, StructError) as exc:
            raise pg.DecodeError(f"malformed pgoutput {chr(kind)!r} message: {exc}") from None

    def _update(self, message: pg.Update) -> list[Event]:
        table = self._tables.get(message.relation_oid)
        if table is None:
            return []
        new, unchanged = table.row(message.new)
        old = table.row(message.old)[0] if message.old is not None else None
        return self.updated(table.name, message.old_kind, old, new, unchanged)

    def updated(
        self,
        table: str,
        old_kind: str | None,
        old: dict[str, Any] | None,
        new: dict[str, Any],
        unchanged: list[str],
    ) -> list[Event]:
        if unchanged and old is not None and old_kind == "O":
            for name in unchanged:  # merge: the old row has the value the update kept
                if name in old:
                    new[name] = old[name]
            unchanged = [name for name in unchanged if name not in old]
        if table == "inodes":
            return self._inode_update(old, old_kind, new, unchanged)
        if table == "xattrs":
            return self._xattr_update(old, new, unchanged)
        return []  # provenance rows are history: corrections are not provenance events

    def _inode_update(
        self,
        old: dict[str, Any] | None,
        old_kind: str | None,
        new: dict[str, Any],
        unchanged: list[str],
    ) -> list[Event]:
        if old is not None and old.get("id") != new.get("id"):
            return [
                self.event(ev.INODE_DELETED, old.get("id"), {"inode": old}),
                self.event(ev.INODE_CREATED, new.get("id"), {"inode": new}),
            ]
        data: dict[str, Any] = {"inode": new}
        if unchanged:
            data["unchanged"] = unchanged
        if old is None or old_kind != "O":
            data["changed"] = None  # the old row is not in the stream: unknown
            return [self.event(ev.INODE_UPDATED, new.get("id"), data)]
        data["changed"] = [name for name, value in new.items() if old.get(name) != value]
        if any(old.get(name) != new.get(name) for name in _MOVE_COLUMNS):
            data.update(
                old_parent_id=old.get("parent_id"),
                old_name=old.get("name"),
                new_parent_id=new.get("parent_id"),
                new_name=new.get("name"),
            )
            return [self.event(ev.INODE_MOVED, new.get("id"), data)]
        return [self.event(ev.INODE_UPDATED, new.get("id"), data)]

    def _xattr_update(
        self, old: dict[str, Any] | None, new: dict[str, Any], unchanged: list[str]
    ) -> list[Event]:
        out = []
        if old is not None and xattr_key(old) != xattr_key(new):
            out.append(self.event(ev.XATTR_REMOVED, old.get("inode_id"), {"xattr": xattr_key(old)}))
        data: dict[str, Any] = {"xattr": new}
        if unchanged:
            data["unchanged"] = unchanged
        out.append(self.event(ev.XATTR_SET, new.get("inode_id"), data))
        return out

    def _delete(self, message: pg.Delete) -> list[Event]:
        table = self._tables.get(message.relation_oid)
        if table is None:
            return []
        return self.deleted(table.name, table.row(message.old)[0])

    def deleted(self, table: str, old: dict[str, Any]) -> list[Event]:
        """The events of a row deleted from `table` (`old`: its key, or all of it)."""
        if table == "inodes":
            return [self.event(ev.INODE_DELETED, old.get("id"), {"inode": old})]
        if table == "xattrs":
            return [self.event(ev.XATTR_REMOVED, old.get("inode_id"), {"xattr": xattr_key(old)})]
        return []
