"""Replaying an event stream into a model of the tables, to compare with the database."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from epipe import events as ev
from epipe.events import Event
from epipe.events.codec import decode
from epipe.fs.model import KINDS

InodeKey = int
XattrKey = tuple[int, str, str]


def read_events(path: Path) -> list[Event]:
    """The events of the complete lines of an events file (a last line without its newline
    is a write a kill interrupted: the sink cuts it off at its next open)."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    complete = raw[: raw.rfind(b"\n") + 1]
    return [decode(line) for line in complete.splitlines() if line.strip()]


class Model:
    """inodes: id -> (parent_id, name, kind, size); xattrs: key -> value; prov: op ids."""

    def __init__(self) -> None:
        self.inodes: dict[InodeKey, tuple[Any, ...]] = {}
        self.xattrs: dict[XattrKey, Any] = {}
        self.prov: set[int] = set()

    def apply(self, event: Event) -> None:
        data = event.data
        if event.type in (ev.INODE_CREATED, ev.INODE_UPDATED, ev.INODE_MOVED):
            row = data["inode"]
            self.inodes[row["id"]] = (row["parent_id"], row["name"], row["kind"], row["size"])
        elif event.type == ev.INODE_DELETED:
            self.inodes.pop(data["inode"]["id"], None)
        elif event.type == ev.XATTR_SET:
            x = data["xattr"]
            key = (x["inode_id"], x["namespace"], x["name"])
            if "value" in x:
                self.xattrs[key] = x["value"]
            else:  # unchanged: keep what we have
                assert key in self.xattrs, f"unchanged value of an unknown xattr {key}"
        elif event.type == ev.XATTR_REMOVED:
            x = data["xattr"]
            self.xattrs.pop((x["inode_id"], x["namespace"], x["name"]), None)
        elif event.type == ev.PROV_OP:
            # a read's message is a row only once the provenance consumer logs it: the
            # model follows the rows changes write (reads: tests of that consumer)
            if data["op"].get("lsn") is None:
                self.prov.add(data["op"]["id"])
        elif event.type == ev.TABLE_TRUNCATED:
            tables: dict[str, dict[Any, Any] | set[int]] = {
                "inodes": self.inodes,
                "xattrs": self.xattrs,
                "prov_ops": self.prov,
            }
            for table in data["tables"]:
                tables[table].clear()

    @classmethod
    def of(cls, events: list[Event]) -> Model:
        model = cls()
        for event in events:
            model.apply(event)
        return model

    @classmethod
    def from_database(cls, conn: psycopg.Connection) -> Model:
        model = cls()
        for id_, parent, name, kind, size in conn.execute(
            "SELECT id, parent_id, name, kind, size FROM inodes"
        ):
            model.inodes[id_] = (parent, name, KINDS[kind], size)
        for inode_id, namespace, name, value in conn.execute(
            "SELECT inode_id, namespace, name, value::text FROM xattrs"
        ):
            model.xattrs[(inode_id, namespace, name)] = json.loads(value)
        model.prov = {row[0] for row in conn.execute("SELECT id FROM prov_ops WHERE lsn IS NULL")}
        return model

    def differences(self, other: Model) -> list[str]:
        out = []
        pairs: tuple[tuple[str, dict[Any, Any], dict[Any, Any]], ...] = (
            ("inode", self.inodes, other.inodes),
            ("xattr", self.xattrs, other.xattrs),
        )
        for label, mine, theirs in pairs:
            for key in mine.keys() | theirs.keys():
                if mine.get(key) != theirs.get(key):
                    out.append(f"{label} {key}: {mine.get(key)!r} != {theirs.get(key)!r}")
        missing = other.prov - self.prov
        extra = self.prov - other.prov
        if missing or extra:
            out.append(f"prov ops: {len(missing)} missing, {len(extra)} extra")
        return out[:20]
