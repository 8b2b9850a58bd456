"""Where the pipeline stands: slot, retained WAL, consumers' positions and lag, dead letters;
and waiting until every consumer has applied a token."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from epipe.lsn import lsn_from_str, lsn_to_str
from epipe.pipeline.store import PipelineStore


def status(conn: psycopg.Connection, slot: str) -> dict[str, Any]:
    """Everything `epipe status` shows, as JSON-ready values."""
    current = _current_lsn(conn)
    row = conn.execute(
        "SELECT active, active_pid, restart_lsn::text, confirmed_flush_lsn::text, wal_status "
        "FROM pg_replication_slots WHERE slot_name = %s",
        [slot],
    ).fetchone()
    slot_info: dict[str, Any] | None = None
    retained = 0
    if row is not None:
        active, pid, restart, confirmed, wal_status = row
        retained = max(0, current - lsn_from_str(restart)) if restart else 0
        slot_info = {
            "name": slot,
            "active": active,
            "pid": pid,
            "restart_lsn": restart,
            "confirmed_lsn": confirmed,
            "wal_status": wal_status,
            "lag_bytes": max(0, current - lsn_from_str(confirmed)) if confirmed else None,
        }
    store = PipelineStore.on(conn)
    dead = store.dead_letter_counts()
    now = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
    consumers = []
    for position in store.positions():
        lag_bytes = max(0, current - position.applied_lsn)
        lag_seconds = 0.0
        if lag_bytes and position.committed_at is not None:
            lag_seconds = max(0.0, (now - position.committed_at).total_seconds())
        consumers.append(
            {
                "name": position.name,
                "applied_lsn": lsn_to_str(position.applied_lsn),
                "lag_bytes": lag_bytes,
                "lag_seconds": round(lag_seconds, 3),
                "updated_at": position.updated_at.isoformat(),
                "dead_letters": dead.get(position.name, 0),
            }
        )
    return {
        "current_lsn": lsn_to_str(current),
        "slot": slot_info,
        "retained_wal_bytes": retained,
        "consumers": consumers,
        "dead_letters": sum(dead.values()),
    }


def _current_lsn(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return lsn_from_str(row[0])


def behind(conn: psycopg.Connection, slot: str, token: int) -> list[str]:
    """Who has not yet applied `token`: 'slot <name>' and consumer names (empty: all have)."""
    out = []
    row = conn.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", [slot]
    ).fetchone()
    if row is None or row[0] is None:
        out.append(f"slot {slot} (missing)")
    elif lsn_from_str(row[0]) < token:
        out.append(f"slot {slot} at {row[0]}")
    for position in PipelineStore.on(conn).positions():
        if position.applied_lsn < token:
            out.append(f"{position.name} at {lsn_to_str(position.applied_lsn)}")
    return out


def wait(
    conn: psycopg.Connection, slot: str, token: int | None, timeout: float, poll: float = 0.02
) -> tuple[int, list[str]]:
    """Block until every consumer has applied `token` (default: the current end of the WAL).
    Returns the token and who is still behind (empty on success)."""
    target = _current_lsn(conn) if token is None else token
    deadline = time.monotonic() + timeout
    while True:
        lagging = behind(conn, slot, target)
        if not lagging or time.monotonic() >= deadline:
            return target, lagging
        time.sleep(poll)
