"""Decoding of pgoutput messages (protocol versions 1 and 2, without streaming): pure.

`decode(payload)` turns one message of the logical replication stream into a small
immutable value. Column values stay text (`str`), NULL is `None`, and a TOASTed value
the update did not change is the `UNCHANGED` marker, never a placeholder string.
Reference: PostgreSQL, "Logical Replication Message Formats".
"""

from __future__ import annotations

from collections.abc import Callable
from struct import Struct
from struct import error as StructError
from typing import NamedTuple

from epipe.errors import EpipeError

_I16 = Struct(">h")
_I32 = Struct(">i")
_U32 = Struct(">I")
_U64 = Struct(">Q")
_I64 = Struct(">q")
_BEGIN = Struct(">QqI")  # final LSN, commit timestamp, xid
_COMMIT = Struct(">BQQq")  # flags, commit LSN, end LSN, commit timestamp

TRUNCATE_CASCADE = 1
TRUNCATE_RESTART_IDENTITY = 2


class DecodeError(EpipeError):
    """A payload that is not a pgoutput message this decoder understands."""


class _Unchanged:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED = _Unchanged()  # an unchanged TOASTed column: the value is not in the stream

Value = str | bytes | None | _Unchanged


class Begin(NamedTuple):
    final_lsn: int  # LSN of the transaction's commit record
    commit_ts: int  # microseconds since 2000-01-01 UTC
    xid: int


class Commit(NamedTuple):
    flags: int
    commit_lsn: int
    end_lsn: int  # end of the commit record: the position to confirm
    commit_ts: int


class Origin(NamedTuple):
    commit_lsn: int
    name: str


class Column(NamedTuple):
    is_key: bool
    name: str
    type_oid: int
    type_mod: int


class Relation(NamedTuple):
    oid: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[Column, ...]


class Type(NamedTuple):
    oid: int
    namespace: str
    name: str


class Insert(NamedTuple):
    relation_oid: int
    new: tuple[Value, ...]


class Update(NamedTuple):
    relation_oid: int
    old_kind: str | None  # 'K' key columns, 'O' whole old row, None: not sent
    old: tuple[Value, ...] | None
    new: tuple[Value, ...]


class Delete(NamedTuple):
    relation_oid: int
    old_kind: str  # 'K' or 'O'
    old: tuple[Value, ...]


class Truncate(NamedTuple):
    options: int  # TRUNCATE_CASCADE | TRUNCATE_RESTART_IDENTITY
    relation_oids: tuple[int, ...]


class Message(NamedTuple):
    transactional: bool
    lsn: int
    prefix: str
    content: bytes


Decoded = Begin | Commit | Origin | Relation | Type | Insert | Update | Delete | Truncate | Message


def decode(payload: bytes) -> Decoded:
    """One pgoutput message -> its value; DecodeError for anything else."""
    if not payload:
        raise DecodeError("empty pgoutput message")
    try:
        handler = _HANDLERS[payload[0]]
    except KeyError:
        raise DecodeError(
            f"unsupported pgoutput message type {chr(payload[0])!r} (streaming and two-phase "
            "messages are not enabled by epipe)"
        ) from None
    try:
        return handler(payload)
    except (IndexError, ValueError, StructError) as exc:
        raise DecodeError(f"malformed pgoutput {chr(payload[0])!r} message: {exc}") from None


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(0, pos)
    return buf[pos:end].decode(), end + 1


def _tuple(buf: bytes, pos: int) -> tuple[tuple[Value, ...], int]:
    (count,) = _I16.unpack_from(buf, pos)
    pos += 2
    values: list[Value] = []
    append = values.append
    for _ in range(count):
        kind = buf[pos]
        pos += 1
        if kind == 0x74:  # 't' text
            (size,) = _I32.unpack_from(buf, pos)
            pos += 4
            append(buf[pos : pos + size].decode())
            pos += size
        elif kind == 0x6E:  # 'n' null
            append(None)
        elif kind == 0x75:  # 'u' unchanged TOAST
            append(UNCHANGED)
        elif kind == 0x62:  # 'b' binary
            (size,) = _I32.unpack_from(buf, pos)
            pos += 4
            append(bytes(buf[pos : pos + size]))
            pos += size
        else:
            raise DecodeError(f"unknown tuple column kind {chr(kind)!r}")
    return tuple(values), pos


def _begin(buf: bytes) -> Begin:
    return Begin(*_BEGIN.unpack_from(buf, 1))


def _commit(buf: bytes) -> Commit:
    return Commit(*_COMMIT.unpack_from(buf, 1))


def _origin(buf: bytes) -> Origin:
    (lsn,) = _U64.unpack_from(buf, 1)
    name, _ = _string(buf, 9)
    return Origin(lsn, name)


def _relation(buf: bytes) -> Relation:
    (oid,) = _U32.unpack_from(buf, 1)
    namespace, pos = _string(buf, 5)
    name, pos = _string(buf, pos)
    identity = chr(buf[pos])
    (count,) = _I16.unpack_from(buf, pos + 1)
    pos += 3
    columns = []
    for _ in range(count):
        flags = buf[pos]
        column, pos = _string(buf, pos + 1)
        type_oid, type_mod = _U32.unpack_from(buf, pos)[0], _I32.unpack_from(buf, pos + 4)[0]
        pos += 8
        columns.append(Column(bool(flags & 1), column, type_oid, type_mod))
    return Relation(oid, namespace, name, identity, tuple(columns))


def _type(buf: bytes) -> Type:
    (oid,) = _U32.unpack_from(buf, 1)
    namespace, pos = _string(buf, 5)
    name, _ = _string(buf, pos)
    return Type(oid, namespace, name)


def _insert(buf: bytes) -> Insert:
    (oid,) = _U32.unpack_from(buf, 1)
    if buf[5] != 0x4E:  # 'N'
        raise DecodeError("insert without a new tuple")
    new, _ = _tuple(buf, 6)
    return Insert(oid, new)


def _update(buf: bytes) -> Update:
    (oid,) = _U32.unpack_from(buf, 1)
    pos = 5
    old_kind: str | None = None
    old: tuple[Value, ...] | None = None
    if buf[pos] in (0x4B, 0x4F):  # 'K' key or 'O' old row
        old_kind = chr(buf[pos])
        old, pos = _tuple(buf, pos + 1)
    if buf[pos] != 0x4E:
        raise DecodeError("update without a new tuple")
    new, _ = _tuple(buf, pos + 1)
    return Update(oid, old_kind, old, new)


def _delete(buf: bytes) -> Delete:
    (oid,) = _U32.unpack_from(buf, 1)
    if buf[5] not in (0x4B, 0x4F):
        raise DecodeError("delete without an old tuple")
    old, _ = _tuple(buf, 6)
    return Delete(oid, chr(buf[5]), old)


def _truncate(buf: bytes) -> Truncate:
    (count,) = _I32.unpack_from(buf, 1)
    options = buf[5]
    oids = tuple(_U32.unpack_from(buf, 6 + 4 * i)[0] for i in range(count))
    return Truncate(options, oids)


def _message(buf: bytes) -> Message:
    flags = buf[1]
    (lsn,) = _U64.unpack_from(buf, 2)
    prefix, pos = _string(buf, 10)
    (size,) = _I32.unpack_from(buf, pos)
    content = bytes(buf[pos + 4 : pos + 4 + size])
    if len(content) != size:
        raise DecodeError("logical message shorter than its length")
    return Message(bool(flags & 1), lsn, prefix, content)


_HANDLERS: dict[int, Callable[[bytes], Decoded]] = {
    ord("B"): _begin,
    ord("C"): _commit,
    ord("O"): _origin,
    ord("R"): _relation,
    ord("Y"): _type,
    ord("I"): _insert,
    ord("U"): _update,
    ord("D"): _delete,
    ord("T"): _truncate,
    ord("M"): _message,
}
