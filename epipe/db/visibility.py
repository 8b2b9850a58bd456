"""When a logged commit becomes visible.

PostgreSQL writes a transaction's commit record to the log (and logical decoding may stream
it) a moment before the committing backend makes the transaction visible to new snapshots.
A reader that takes "the log up to LSN L" and "a snapshot" as one picture must first wait
out that moment: every transaction whose commit is logged before L is visible once every
transaction that had an id when L was read has ended (`settled_position`).
"""

from __future__ import annotations

import logging
import time

import psycopg

from epipe.errors import DatabaseError
from epipe.lsn import lsn_from_str

log = logging.getLogger(__name__)
SETTLE_TIMEOUT = 600.0  # a transaction open longer than this holds a rebuild up no more


def horizon(conn: psycopg.Connection) -> str:
    """A transaction id above every transaction that has one now (a 64-bit id, as text):
    the id of a transaction begun and rolled back here. Running transactions are not all
    listed by a snapshot (those at or above its xmax are not), hence a fresh id."""
    with conn.transaction():
        row = conn.execute("SELECT pg_current_xact_id()::text").fetchone()
        assert row is not None
        raise psycopg.Rollback()
    return str(row[0])


def passed(conn: psycopg.Connection, below: str) -> bool:
    """Every transaction with an id below `below` has ended (and is visible, if committed)."""
    row = conn.execute(
        "SELECT pg_snapshot_xmin(pg_current_snapshot()) >= %s::xid8", [below]
    ).fetchone()
    return bool(row and row[0])


def settled_position(conn: psycopg.Connection, timeout: float = SETTLE_TIMEOUT) -> int:
    """The log's position now, returned once every transaction committed before it is
    visible: a snapshot taken afterwards holds every change up to it. Call outside a
    transaction (the snapshot is taken after)."""
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    position = lsn_from_str(row[0])
    # every transaction whose commit is logged before `position` has an id below this
    below = horizon(conn)
    deadline = time.monotonic() + timeout
    attempt = 0
    while not passed(conn, below):
        if attempt == 0:
            log.debug("waiting for the transactions in flight below %s to end", below)
        if time.monotonic() >= deadline:
            raise DatabaseError(
                f"a transaction begun before {below} stayed open for {timeout:.0f} s: a "
                "consistent read waits for it (end it, or try again later)"
            )
        attempt += 1
        time.sleep(min(0.05, 0.001 * attempt))
    return position
