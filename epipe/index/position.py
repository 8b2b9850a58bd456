"""The position an index holds, and whether a pipeline may go on writing to it.

Each generation records, after every batch it applied (and after a rebuild), the position
it is complete up to (the commit LSN of the last change, or the snapshot a rebuild read)
and the identity of the database it was built from. A consumer starting compares it with
its own recorded position: an index that cannot be opened, carries no position, is behind
or was built from another database is rebuilt (a rebuild reads one snapshot, so it is
complete up to it; the stream goes on from the slot and replays converge).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from epipe.lsn import lsn_from_str, lsn_to_str


@dataclass(frozen=True)
class Identity:
    """Which database an index was built from: the cluster's system identifier (a copy of
    the cluster keeps it, a new cluster gets another) and the database's name."""

    system: str
    database: str


@dataclass(frozen=True)
class IndexPosition:
    lsn: int
    identity: Identity

    def to_json(self) -> dict[str, Any]:
        return {"lsn": lsn_to_str(self.lsn), **asdict(self.identity)}

    @classmethod
    def from_json(cls, data: Any) -> IndexPosition | None:
        """None for anything that is not a position (an empty or damaged record)."""
        try:
            return cls(lsn_from_str(data["lsn"]), Identity(data["system"], data["database"]))
        except (TypeError, KeyError, ValueError, AttributeError):
            return None


def database_identity(conn: psycopg.Connection) -> Identity:
    row = conn.execute(
        "SELECT system_identifier::text, current_database() FROM pg_control_system()"
    ).fetchone()
    assert row is not None
    return Identity(row[0], row[1])


def recorded_position(conn: psycopg.Connection, consumer: str) -> int:
    """The position the consumer recorded as applied (0 for one that never ran)."""
    row = conn.execute(
        "SELECT applied_lsn::text FROM epipe_consumers WHERE name = %s", [consumer]
    ).fetchone()
    return 0 if row is None else lsn_from_str(row[0])


def stale_because(held: IndexPosition | None, identity: Identity, recorded: int) -> str | None:
    """Why an index holding `held` cannot serve a consumer that recorded `recorded` in the
    database `identity` (None: it can). A consumer that never applied anything starts
    from the slot's beginning (a backfill), so any index of this database serves it."""
    if held is None:
        if recorded == 0:
            return None
        return (
            "carries no position (it was removed, replaced, or made by an older epipe) "
            f"while the consumer has applied changes up to {lsn_to_str(recorded)}"
        )
    if held.identity != identity:
        return (
            f"was built from another database ({held.identity.database} of cluster "
            f"{held.identity.system}, not {identity.database} of cluster {identity.system})"
        )
    if held.lsn < recorded:
        return (
            f"holds changes up to {lsn_to_str(held.lsn)} only, but the consumer has applied "
            f"changes up to {lsn_to_str(recorded)} (an older copy?)"
        )
    return None
