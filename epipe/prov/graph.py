"""From provenance operations to changes of the lineage graph: pure, no I/O.

The graph has two kinds of nodes, apps and file-system entries (keyed by inode id, so a
move keeps lineage), and two kinds of edges: an app's *inputs* (entries it read) and its
*outputs* (entries it created, wrote, made or annotated). Edges are aggregated: one per
(app, role, inode) with its first and last time, its count and the operations seen.
`fold` turns a batch of operations into the additions to make; the store merges them
(`first` = min, `last` = max, counts add, sets unite), so folding a log in any split gives
the same graph as folding it whole — what `epipe verify` checks against a rebuild.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

INPUT, OUTPUT = "input", "output"
# A move keeps lineage (nodes are inodes) and a deletion marks a node: neither is an edge.
# Removing an annotation changes what the file says, not where it came from.
ROLES: Mapping[str, str] = {
    "read": INPUT,
    "create": OUTPUT,
    "write": OUTPUT,
    "mkdir": OUTPUT,
    "setxattr": OUTPUT,
}
OPS = ("create", "mkdir", "read", "write", "move", "delete", "setxattr", "rmxattr")


class Op(NamedTuple):
    """One row of the operation log (`prov_ops`)."""

    id: int
    at: datetime
    inode_id: int
    parent_id: int | None
    user_id: int
    op: str
    app_id: str | None
    name: str


def op_of(row: Mapping[str, Any]) -> Op:
    """A `prov.op` event's row as an `Op`; ValueError naming what is wrong."""
    try:
        at = row["at"]
        op = Op(
            id=int(row["id"]),
            at=at if isinstance(at, datetime) else datetime.fromisoformat(at),
            inode_id=int(row["inode_id"]),
            parent_id=None if row.get("parent_id") is None else int(row["parent_id"]),
            user_id=int(row["user_id"]),
            op=str(row["op"]),
            app_id=None if row.get("app_id") is None else str(row["app_id"]),
            name=str(row["name"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed provenance operation {dict(row)!r}: {exc!r}") from None
    if op.at.tzinfo is None:
        raise ValueError(f"provenance operation {op.id}: time {row['at']!r} has no time zone")
    if op.op not in OPS:
        raise ValueError(f"provenance operation {op.id}: unknown op {op.op!r}")
    return op


@dataclass
class Span:
    """When something was seen, how often, and (for edges) by which operations."""

    first: datetime
    last: datetime
    count: int = 0
    kinds: set[str] = field(default_factory=set)  # edges: the ops; apps: unused

    def add(self, at: datetime, kind: str) -> None:
        self.first = min(self.first, at)
        self.last = max(self.last, at)
        self.count += 1
        self.kinds.add(kind)


@dataclass
class Delta:
    """What a batch adds to the graph."""

    apps: dict[str, Span] = field(default_factory=dict)  # app id -> its operations
    users: dict[str, set[int]] = field(default_factory=dict)  # app id -> user ids
    edges: dict[tuple[str, str, int], Span] = field(default_factory=dict)  # (app, role, inode)
    deleted: dict[int, datetime] = field(default_factory=dict)  # inode -> its delete op's time
    named: dict[int, tuple[int | None, str]] = field(
        default_factory=dict
    )  # inode -> (parent, name)

    @property
    def nodes(self) -> set[int]:
        """The inodes the batch's edges touch."""
        return {inode for _, _, inode in self.edges}

    def __bool__(self) -> bool:
        return bool(self.apps or self.deleted)


def fold(ops: Iterable[Op]) -> Delta:
    out = Delta()
    for op in ops:
        out.named[op.inode_id] = (op.parent_id, op.name)  # the latest: ops come in order
        if op.op == "delete":
            out.deleted[op.inode_id] = max(op.at, out.deleted.get(op.inode_id, op.at))
        if op.app_id is None:
            continue  # the log keeps it (history); lineage is about applications
        out.apps.setdefault(op.app_id, Span(op.at, op.at)).add(op.at, op.op)
        out.users.setdefault(op.app_id, set()).add(op.user_id)
        role = ROLES.get(op.op)
        if role is not None:
            key = (op.app_id, role, op.inode_id)
            out.edges.setdefault(key, Span(op.at, op.at)).add(op.at, op.op)
    return out


def merge(a: Span, b: Span) -> Span:
    """Two spans of the same app or edge as one (the order of the batches does not matter)."""
    return Span(min(a.first, b.first), max(a.last, b.last), a.count + b.count, a.kinds | b.kinds)
