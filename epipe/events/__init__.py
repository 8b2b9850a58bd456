"""Domain events: the one value that crosses every stage (source -> bus -> sinks).

An event is about one row change of the metadata database (or a pipeline signal). Its
`lsn` is the commit LSN of its transaction and `seq` its position inside that transaction,
so (lsn, seq) orders all events; `schemas/events/README.md` states the guarantee.
"""

from __future__ import annotations

from typing import Any, NamedTuple

SCHEMA_VERSION = 1

INODE_CREATED = "inode.created"
INODE_UPDATED = "inode.updated"
INODE_MOVED = "inode.moved"
INODE_DELETED = "inode.deleted"
XATTR_SET = "xattr.set"
XATTR_REMOVED = "xattr.removed"
PROV_OP = "prov.op"
TABLE_TRUNCATED = "table.truncated"
HEARTBEAT = "heartbeat"

TYPES = (
    INODE_CREATED,
    INODE_UPDATED,
    INODE_MOVED,
    INODE_DELETED,
    XATTR_SET,
    XATTR_REMOVED,
    PROV_OP,
    TABLE_TRUNCATED,
    HEARTBEAT,
)


class Event(NamedTuple):
    """One domain event. `data` holds the row data, keyed as in the JSON form."""

    type: str
    lsn: int  # commit LSN of the transaction (a heartbeat: a position all before it is sent)
    seq: int  # position inside the transaction, from 0
    xid: int  # transaction id (0 for heartbeats)
    committed_at: str  # ISO 8601 commit time
    inode_id: int | None  # the inode it is about; None for heartbeats and truncations
    data: dict[str, Any]
    snapshot: bool = False  # True when produced by a backfill rather than the change stream
    # Where the bus delivered it from (a Kafka 'topic:partition'; '' in process): not part of
    # the event's JSON. A view that counts (the lineage graph) keeps its position per part.
    part: str = ""

    @property
    def position(self) -> tuple[int, int]:
        """Total order of events: (commit LSN, sequence in the transaction)."""
        return (self.lsn, self.seq)
