"""Where the pipeline stands: slot, retained WAL, consumers' positions and lag, dead letters;
who is behind a token, and waiting until nobody is."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from epipe.lsn import lsn_from_str, lsn_to_str
from epipe.pipeline.store import ConsumerPosition, PipelineStore
from epipe.source.slot import slot_state


@dataclass(frozen=True)
class Lag:
    """A consumer that has not applied a token yet."""

    consumer: str
    applied_lsn: int
    lag_bytes: int  # from its position to the token
    lag_seconds: float  # age of the last change it applied

    def as_json(self) -> dict[str, Any]:
        return {
            "consumer": self.consumer,
            "applied": lsn_to_str(self.applied_lsn),
            "lag_bytes": self.lag_bytes,
            "lag_seconds": round(self.lag_seconds, 3),
        }


def status(conn: psycopg.Connection, slot: str) -> dict[str, Any]:
    """Everything `epipe status` shows, as JSON-ready values."""
    current = current_lsn(conn)
    state = slot_state(conn, slot)
    slot_info: dict[str, Any] | None = None
    retained = 0
    if state is not None:
        retained = max(0, current - state.restart_lsn) if state.restart_lsn else 0
        confirmed = state.confirmed_lsn
        slot_info = {
            "name": slot,
            "active": state.active,
            "pid": state.active_pid,
            "restart_lsn": lsn_to_str(state.restart_lsn) if state.restart_lsn else None,
            "confirmed_lsn": lsn_to_str(confirmed) if confirmed else None,
            "wal_status": state.wal_status,
            "lag_bytes": max(0, current - confirmed) if confirmed else None,
        }
    store = PipelineStore.on(conn)
    dead = store.dead_letter_counts()
    problems = store.problems()
    consumers = []
    for position in store.positions():
        lag = _lag(position, current)
        consumers.append(
            {
                "name": position.name,
                "applied_lsn": lsn_to_str(position.applied_lsn),
                "lag_bytes": lag.lag_bytes,
                "lag_seconds": round(lag.lag_seconds, 3),
                "updated_at": position.updated_at.isoformat(),
                "dead_letters": dead.get(position.name, 0),
                "waiting": problems.get(position.name),
            }
        )
    return {
        "current_lsn": lsn_to_str(current),
        "slot": slot_info,
        "retained_wal_bytes": retained,
        "consumers": consumers,
        "dead_letters": sum(dead.values()),
        "running": running(conn, slot),
    }


def current_lsn(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    return lsn_from_str(row[0])


def lags(conn: psycopg.Connection, token: int, *, serving_search: bool = False) -> list[Lag]:
    """Every consumer's distance to `token` (only those serving search, if asked); a
    consumer at or past the token has no lag."""
    positions = PipelineStore.on(conn).positions(serving_search=serving_search)
    return [_lag(position, token) for position in positions]


def _lag(position: ConsumerPosition, token: int) -> Lag:
    behind = max(0, token - position.applied_lsn)
    return Lag(position.name, position.applied_lsn, behind, position.lag_seconds if behind else 0.0)


def running(conn: psycopg.Connection, slot: str) -> list[str]:
    """Work that is not over whatever the positions say: a backfill of the slot (its rows are
    still to come) and an index rebuild in progress (the index is being refilled)."""
    out = [
        f"backfill of {state.relation} running"
        for state in PipelineStore.on(conn).backfill(slot)
        if not state.done
    ]
    rebuilds = conn.execute(
        "SELECT id FROM epipe_index_requests WHERE started_at IS NOT NULL "
        "AND finished_at IS NULL ORDER BY id"
    ).fetchall()
    out.extend(f"index rebuild {request} running" for (request,) in rebuilds)
    return out


def behind(conn: psycopg.Connection, slot: str, token: int) -> list[str]:
    """Who has not yet applied `token`, and what still runs: 'slot <name>', consumer names,
    backfills and rebuilds (empty: all is done)."""
    return running(conn, slot) + _positions_behind(conn, slot, token)


def _positions_behind(conn: psycopg.Connection, slot: str, token: int) -> list[str]:
    out = []
    state = slot_state(conn, slot)
    if state is None or state.confirmed_lsn is None:
        out.append(f"slot {slot} (missing)")
    elif state.confirmed_lsn < token:
        out.append(f"slot {slot} at {lsn_to_str(state.confirmed_lsn)}")
    out.extend(
        f"{lag.consumer} at {lsn_to_str(lag.applied_lsn)}"
        for lag in lags(conn, token)
        if lag.lag_bytes
    )
    return out


def wait(
    conn: psycopg.Connection, slot: str, token: int | None, timeout: float, poll: float = 0.02
) -> tuple[int, list[str]]:
    """Block until every consumer has applied `token` (default: the current end of the WAL)
    and no backfill or rebuild runs. Returns the token and who is still behind (empty on
    success)."""
    target = current_lsn(conn) if token is None else token
    deadline = time.monotonic() + timeout
    goal = target
    while True:
        busy = running(conn, slot)
        if busy:  # what they still emit lies past the token: wait for it too
            goal = max(goal, current_lsn(conn))
        lagging = busy + _positions_behind(conn, slot, goal)
        if not lagging or time.monotonic() >= deadline:
            return target, lagging
        time.sleep(poll)
