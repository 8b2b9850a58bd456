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

from epipe.lsn import lsn_from_str

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
    """One row of the operation log (`prov_ops`), or a read not logged yet: its message's
    WAL position `lsn` keys it until the provenance consumer writes it (migration 0015)."""

    id: int | None
    at: datetime
    inode_id: int
    parent_id: int | None
    user_id: int
    op: str
    app_id: str | None
    name: str
    lsn: int | None = None


def op_of(row: Mapping[str, Any]) -> Op:
    """A `prov.op` event's row as an `Op`; ValueError naming what is wrong."""
    try:
        at = row["at"]
        lsn = row.get("lsn")
        op = Op(
            id=None if lsn is not None else int(row["id"]),
            at=at if isinstance(at, datetime) else datetime.fromisoformat(at),
            inode_id=int(row["inode_id"]),
            parent_id=None if row.get("parent_id") is None else int(row["parent_id"]),
            user_id=int(row["user_id"]),
            op=str(row["op"]),
            app_id=None if row.get("app_id") is None else str(row["app_id"]),
            name=str(row["name"]),
            lsn=None if lsn is None else lsn_from_str(str(lsn)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed provenance operation {dict(row)!r}: {exc!r}") from None
    if op.at.tzinfo is None:
        raise ValueError(
            f"provenance operation {op.id or row.get('lsn')}: time {row['at']!r} has no time zone"
        )
    if op.op not in OPS:
        raise ValueError(f"provenance operation {op.id}: unknown op {op.op!r}")
    if op.lsn is not None:  # a message: not yet checked by the log's table
        _check_message(op, str(row["lsn"]))
    return op


def _check_message(op: Op, lsn: str) -> None:
    """What the log (prov_ops) would refuse, refused before it is written, so one bad
    message is a dead letter rather than a batch that cannot commit."""
    where = f"provenance message at {lsn}"
    if op.op != "read":
        raise ValueError(f"{where}: only reads are messages, got {op.op!r}")
    for name, value, bits in (("inode_id", op.inode_id, 63), ("user_id", op.user_id, 31)):
        if not -(2**bits) <= value < 2**bits:
            raise ValueError(f"{where}: {name} {value} is out of range")
    if op.parent_id is not None and not -(2**63) <= op.parent_id < 2**63:
        raise ValueError(f"{where}: parent_id {op.parent_id} is out of range")
    if op.app_id is not None and not 1 <= len(op.app_id.encode(errors="replace")) <= 255:
        raise ValueError(f"{where}: app id must be 1 to 255 bytes")
    if "\x00" in op.name or "\x00" in (op.app_id or ""):
        raise ValueError(f"{where}: a name or app id holds a NUL character")


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
