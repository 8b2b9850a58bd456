"""Translation of Debezium's change events into domain events: pure, no I/O.

Debezium's Postgres connector (pgoutput) gives one JSON envelope per row change (`before`,
`after`, `source`, `op`), transaction markers (`status` BEGIN / END) and logical messages
(`op` "m"). `EnvelopeTranslator.feed(value)` returns the events one value yields, in order.

Positions. Debezium names each change by its own WAL position (`source.lsn`), not by its
transaction's commit, which the built-in source uses and every consumer orders by. What it
does give, in commit order: each transaction's END, whose id carries the end of its commit
record (`txId:lsn`: the position the built-in source confirms), and `source.sequence`, whose
first element is the end of the commit before. So the events of a transaction get the
position just past the previous commit (or message): greater than every position given
before, smaller than the end of their own commit, equal inside the transaction. The
`position` (every change committed before it has been fed) moves at each END and at each
non-transactional message, which Debezium delivers between transactions. A snapshot's rows
(`op` "r") form one group; its last row moves the position to the snapshot's, where
Debezium's stream then starts (what committed before it is in the snapshot's rows).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from epipe import events as ev
from epipe import jsonvalue
from epipe.events import Event
from epipe.fs.model import KINDS
from epipe.source import SourceError
from epipe.source.translate import CAPTURED, READ, Translator, read_event

POSITION = "epipe.position"  # the prefix of the messages the source writes to learn positions
MESSAGES = (READ, POSITION)
UNAVAILABLE = "__debezium_unavailable_value"  # an unchanged TOASTed value, left out
_JSON = frozenset({("xattrs", "value"), ("prov_ops", "detail")})
_TIMES = frozenset({("inodes", "mtime"), ("inodes", "ctime"), ("prov_ops", "at")})
_SNAPSHOT = "snapshot"  # the key of the group of a snapshot's rows


class EnvelopeError(SourceError):
    """A Debezium record epipe cannot read (not the JSON envelope it configured)."""


def row(table: str, values: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """Debezium's column values -> (the row as the built-in source gives it, names of
    unchanged TOASTed columns left out)."""
    out: dict[str, Any] = {}
    unchanged: list[str] = []
    for name, value in (values or {}).items():
        if value == UNAVAILABLE:
            unchanged.append(name)
        elif value is None:
            out[name] = None
        elif (table, name) in _JSON and isinstance(value, str):
            out[name] = jsonvalue.load(value)  # jsonb arrives as its text
        elif (table, name) in _TIMES and isinstance(value, str) and value.endswith("Z"):
            out[name] = zoned(value)
        elif table == "inodes" and name == "kind":
            out[name] = KINDS.get(value, value)
        else:
            out[name] = value
    return out, unchanged


def zoned(text: str) -> str:
    """Debezium's UTC time ('…T10:37:19.272640Z') as PostgreSQL writes it, which the
    built-in source passes on ('…T10:37:19.27264+00:00'): the same value, the same text."""
    head, dot, fraction = text[:-1].partition(".")
    fraction = fraction.rstrip("0")
    return head + (dot + fraction if fraction else "") + "+00:00"


def _lsn(value: object, what: str) -> int:
    try:
        lsn: int = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise EnvelopeError(f"Debezium event: {what} is not a position: {value!r}") from None
    if lsn < 0:
        raise EnvelopeError(f"Debezium event: {what} is not a position: {value!r}")
    return lsn


class EnvelopeTranslator:
    def __init__(
        self,
        position: int,
        captured: Sequence[str] = CAPTURED,
        *,
        resync: bool = False,
        last: int = 0,
    ) -> None:
        self.position = position  # every change committed before it has been fed
        self.snapshot_done = False  # a change of the stream (not of a snapshot) was fed
        # a snapshot begins with a truncation of the captured tables: consumers that applied
        # changes may hold rows deleted while nothing streamed (as the built-in backfill)
        self._resync = resync
        self._captured = frozenset(captured)
        self._rows = Translator(captured)  # builds a row change's events
        self._last = max(position, last)  # the greatest position given to events
        self._group: object = None  # the transaction (txId) whose events are being fed

    @property
    def last(self) -> int:
        """The greatest position given to events (with `position`, where to start again)."""
        return self._last

    @property
    def in_transaction(self) -> bool:
        return self._group is not None

    def feed(self, value: str | bytes | None) -> list[Event]:
        if value is None:
            return []  # a tombstone: the delete before it said it all
        try:
            envelope = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"Debezium event is not JSON: {exc}") from None
        if not isinstance(envelope, dict):
            raise EnvelopeError(f"Debezium event is not an object: {str(value)[:80]!r}")
        return self.envelope(envelope)

    def envelope(self, envelope: dict[str, Any]) -> list[Event]:
        """The events of one parsed change event (or marker, or message)."""
        status = envelope.get("status")
        if status is not None:
            return self._transaction(status, envelope.get("id"))
        op = envelope.get("op")
        source = envelope.get("source")
        if op is None or not isinstance(source, dict):
            return []  # a heartbeat
        if op == "m":
            return self._message(envelope.get("message"), source)
        table = source.get("table")
        if table not in self._captured or source.get("schema") != "public":
            return []
        snapshot = source.get("snapshot") not in (None, False, "false")
        first = self._start(source, snapshot)
        rows = self._rows
        if op == "c":
            return rows.inserted(table, row(table, envelope.get("after"))[0])
        if op == "r":
            after = row(table, envelope.get("after"))[0]
            events = [*first, rows.created(table, after, snapshot=True)]
            if source.get("snapshot") == "last":
                # the snapshot holds every commit before its position: the stream goes on there
                self._moved(_lsn(source.get("lsn"), "the snapshot's source.lsn"))
                self._group = None
            return events
        if op == "u":
            new, unchanged = row(table, envelope.get("after"))
            before = envelope.get("before")
            old = row(table, before)[0] if before else None
            # inodes log their whole old row (REPLICA IDENTITY FULL); other tables their key
            kind = None if old is None else "O" if table == "inodes" else "K"
            return rows.updated(table, kind, old, new, unchanged)
        if op == "d":
            return rows.deleted(table, row(table, envelope.get("before"))[0])
        if op == "t":
            data = {"tables": [table], "cascade": False, "restart_identity": False}
            return [rows.event(ev.TABLE_TRUNCATED, None, data)]
        raise EnvelopeError(f"Debezium event: unknown op {op!r}")

    def _transaction(self, status: object, id_: object) -> list[Event]:
        if status == "END":
            _, _, lsn = str(id_).partition(":")
            self._moved(_lsn(lsn, "a transaction's END"))
        elif status != "BEGIN":
            raise EnvelopeError(f"Debezium transaction marker: unknown status {status!r}")
        self._group = None
        return []

    def _moved(self, position: int) -> None:
        self.position = max(self.position, position)
        self.snapshot_done = True

    def _start(self, source: dict[str, Any], snapshot: bool) -> list[Event]:
        """The first change of a transaction (or of a snapshot) gives the group its position;
        a resynchronising snapshot's first events are the truncation of the tables."""
        group = _SNAPSHOT if snapshot else source.get("txId")
        if group == self._group and group is not None:
            return []
        previous = 0
        sequence = source.get("sequence")
        if isinstance(sequence, str):
            try:
                first = orjson.loads(sequence)[0]
                previous = _lsn(first, "source.sequence") if first is not None else 0
            except (orjson.JSONDecodeError, IndexError, TypeError, KeyError):
                previous = 0
        lsn = max(self.position, previous, self._last) + 1
        self._last = lsn
        self._group = group
        if not snapshot:
            self.snapshot_done = True
        ts = source.get("ts_ms")
        committed_at = (
            datetime.fromtimestamp(ts / 1000, UTC).isoformat()
            if isinstance(ts, int) and 0 <= ts < 253402300800000
            else ""
        )
        xid = source.get("txId")
        self._rows.begin(xid if isinstance(xid, int) else 0, lsn, committed_at)
        if not (snapshot and self._resync):
            return []
        data = {"tables": sorted(self._captured), "cascade": False, "restart_identity": False}
        return [self._rows.event(ev.TABLE_TRUNCATED, None, data, snapshot=True)]

    def _message(self, message: object, source: dict[str, Any]) -> list[Event]:
        if source.get("txId") is not None or not isinstance(message, dict):
            return []  # transactional messages are not epipe's
        lsn = _lsn(source.get("lsn"), "a message's source.lsn")
        self._moved(lsn)  # delivered between transactions: all before it is in
        self._last = max(self._last, lsn)
        if message.get("prefix") != READ:
            return []
        try:
            content = base64.b64decode(str(message.get("content") or ""), validate=True)
        except (binascii.Error, ValueError):
            content = str(message.get("content")).encode()
        return [read_event(lsn, content)]
