"""Events <-> JSON (the bytes on Kafka, the lines of an events file). Pure."""

from __future__ import annotations

from typing import Any

import orjson

from epipe.errors import EpipeError
from epipe.events import SCHEMA_VERSION, TYPES, Event
from epipe.lsn import lsn_from_str, lsn_to_str

_ENVELOPE = ("v", "type", "lsn", "seq", "xid", "committed_at", "inode_id", "snapshot")


class CodecError(EpipeError):
    """Bytes that are not an epipe event."""


def to_dict(event: Event) -> dict[str, Any]:
    """The JSON object of an event: the envelope, then the row data."""
    out: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "type": event.type,
        "lsn": lsn_to_str(event.lsn),
        "seq": event.seq,
        "xid": event.xid,
        "committed_at": event.committed_at,
        "inode_id": event.inode_id,
    }
    if event.snapshot:
        out["snapshot"] = True
    out.update(event.data)
    return out


def encode(event: Event) -> bytes:
    return orjson.dumps(to_dict(event))


def from_dict(obj: dict[str, Any]) -> Event:
    try:
        if obj["v"] != SCHEMA_VERSION:
            raise CodecError(f"event schema version {obj['v']} is not {SCHEMA_VERSION}")
        if obj["type"] not in TYPES:
            raise CodecError(f"unknown event type {obj['type']!r}")
        data = {key: value for key, value in obj.items() if key not in _ENVELOPE}
        return Event(
            obj["type"],
            lsn_from_str(obj["lsn"]),
            int(obj["seq"]),
            int(obj["xid"]),
            obj["committed_at"],
            obj["inode_id"],
            data,
            bool(obj.get("snapshot")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CodecError(f"not an epipe event: {exc!r}") from None


def decode(raw: bytes) -> Event:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"event is not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CodecError("event is not a JSON object")
    return from_dict(obj)
