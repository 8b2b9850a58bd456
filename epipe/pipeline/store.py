"""PipelineStore: the pipeline's own state in the metadata database (migration 0004).

Consumer positions, dead letters and backfill progress. One store per thread: it owns one
autocommit connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from epipe.db.server import connect
from epipe.events import Event
from epipe.events.codec import to_dict
from epipe.lsn import lsn_from_str, lsn_to_str


@dataclass(frozen=True)
class ConsumerPosition:
    name: str
    applied_lsn: int
    committed_at: datetime | None
    updated_at: datetime
    serves_search: bool
    lag_seconds: float  # age of the last applied change's commit (0 when nothing is behind)


@dataclass(frozen=True)
class BackfillState:
    relation: str
    last_key: list[Any] | None
    rows: int
    done: bool
    resync: bool = False  # begins with a truncation of its relations


class PipelineStore:
    def __init__(self, dsn: str) -> None:
        self._conn = connect(dsn)

    @classmethod
    def on(cls, conn: psycopg.Connection) -> PipelineStore:
        store = cls.__new__(cls)
        store._conn = conn
        return store

    @property
    def connection(self) -> psycopg.Connection:
        return self._conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PipelineStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consumers ---------------------------------------------------------------------------

    def register(self, consumer: str, *, serves_search: bool = False) -> None:
        self._conn.execute(
            "INSERT INTO epipe_consumers (name, serves_search) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET serves_search = EXCLUDED.serves_search",
            [consumer, serves_search],
        )

    def record_position(self, consumer: str, lsn: int, committed_at: str | None) -> None:
        """The consumer (a group of one part) has applied everything up to `lsn`."""
        self.record_parts(consumer, {"": (lsn, committed_at)}, frozenset({""}))

    def record_parts(
        self,
        consumer: str,
        held: Mapping[str, tuple[int, str | None]],
        parts: frozenset[str],
    ) -> None:
        """A member of the group `consumer` has applied everything of each part of `held` up
        to its position; the group's position becomes the least over all its `parts` (none
        while a part has no position yet). In one transaction; positions never move back.
        Two members recording at once each see the other's last committed parts: the group's
        position is then too low for a moment, never too high."""
        with self._conn.transaction():
            if held:
                with self._conn.cursor() as cur:
                    cur.executemany(
                        """INSERT INTO epipe_consumer_parts AS p
                               (consumer, part, applied_lsn, committed_at)
                           VALUES (%s, %s, %s::pg_lsn, %s)
                           ON CONFLICT (consumer, part) DO UPDATE SET
                               applied_lsn = greatest(p.applied_lsn, EXCLUDED.applied_lsn),
                               committed_at = CASE WHEN EXCLUDED.applied_lsn >= p.applied_lsn
                                                   THEN EXCLUDED.committed_at
                                                   ELSE p.committed_at END,
                               updated_at = now()""",
                        [(consumer, part, lsn_to_str(lsn), at) for part, (lsn, at) in held.items()],
                    )
            self._conn.execute(
                """INSERT INTO epipe_consumers AS c (name, applied_lsn, committed_at, updated_at)
                   SELECT %(name)s, least.applied_lsn, least.committed_at, now()
                   FROM (SELECT coalesce(p.applied_lsn, '0/0') AS applied_lsn, p.committed_at
                         FROM unnest(%(parts)s::text[]) AS e (part)
                         LEFT JOIN epipe_consumer_parts p
                                ON p.consumer = %(name)s AND p.part = e.part
                         ORDER BY p.applied_lsn NULLS FIRST LIMIT 1) AS least
                   ON CONFLICT (name) DO UPDATE SET
                       applied_lsn = greatest(c.applied_lsn, EXCLUDED.applied_lsn),
                       committed_at = CASE WHEN EXCLUDED.applied_lsn >= c.applied_lsn
                                           THEN EXCLUDED.committed_at ELSE c.committed_at END,
                       updated_at = now()""",
                {"name": consumer, "parts": sorted(parts)},
            )

    def set_problem(self, consumer: str, problem: str | None) -> None:
        """Why `consumer` waits (None: it does not)."""
        self._conn.execute(
            "UPDATE epipe_consumers SET problem = %s WHERE name = %s", [problem, consumer]
        )

    def problems(self) -> dict[str, str]:
        """Why each waiting consumer waits."""
        rows = self._conn.execute(
            "SELECT name, problem FROM epipe_consumers WHERE problem IS NOT NULL"
        ).fetchall()
        return dict(rows)

    def positions(self, *, serving_search: bool = False) -> list[ConsumerPosition]:
        """Every consumer's position (only those that serve search, with `serving_search`);
        lag in seconds is measured against the database's clock."""
        rows = self._conn.execute(
            "SELECT name, applied_lsn::text, committed_at, updated_at, serves_search, "
            "coalesce(extract(epoch FROM now() - committed_at), 0)::float8 "
            "FROM epipe_consumers WHERE serves_search OR NOT %s ORDER BY name",
            [serving_search],
        ).fetchall()
        return [
            ConsumerPosition(name, lsn_from_str(lsn), at, updated, serves, max(0.0, age))
            for name, lsn, at, updated, serves, age in rows
        ]

    def forget(self, consumer: str) -> bool:
        self._conn.execute("DELETE FROM epipe_consumer_parts WHERE consumer = %s", [consumer])
        cur = self._conn.execute("DELETE FROM epipe_consumers WHERE name = %s", [consumer])
        return cur.rowcount > 0

    # -- counters (for /metrics) -------------------------------------------------------------

    def add_counts(self, stage: str, events_in: int, events_out: int) -> None:
        self._conn.execute(
            """INSERT INTO epipe_stage_counters AS c (stage, events_in, events_out)
               VALUES (%s, %s, %s)
               ON CONFLICT (stage) DO UPDATE SET events_in = c.events_in + EXCLUDED.events_in,
                   events_out = c.events_out + EXCLUDED.events_out, updated_at = now()""",
            [stage, events_in, events_out],
        )

    def counters(self) -> dict[str, tuple[int, int]]:
        rows = self._conn.execute(
            "SELECT stage, events_in, events_out FROM epipe_stage_counters"
        ).fetchall()
        return {stage: (events_in, events_out) for stage, events_in, events_out in rows}

    # -- dead letters ------------------------------------------------------------------------

    def dead_letter(
        self, consumer: str, reason: str, event: Event | None = None, raw: bytes | None = None
    ) -> None:
        self._conn.execute(
            "INSERT INTO epipe_dead_letters (consumer, lsn, seq, event, raw, reason) "
            "VALUES (%s, %s::pg_lsn, %s, %s, %s, %s)",
            [
                consumer,
                lsn_to_str(event.lsn) if event else None,
                event.seq if event else None,
                Jsonb(to_dict(event)) if event else None,
                raw.hex() if raw is not None else None,
                reason,
            ],
        )

    def dead_letter_counts(self) -> dict[str, int]:
        return dict(
            self._conn.execute(
                "SELECT consumer, count(*) FROM epipe_dead_letters GROUP BY consumer"
            ).fetchall()
        )

    def recent_dead_letters(self, limit: int = 5) -> list[tuple[str, str | None, str]]:
        """(consumer, position, reason) of the latest dead letters, newest first."""
        return self._conn.execute(
            "SELECT consumer, lsn::text, reason FROM epipe_dead_letters ORDER BY id DESC LIMIT %s",
            [limit],
        ).fetchall()

    # -- backfill ----------------------------------------------------------------------------

    def start_backfill(self, slot: str, relations: list[str], *, resync: bool = False) -> None:
        """(Re)start the backfill of `relations` into `slot`, from their first row; `resync`:
        it begins with a truncation of them."""
        with self._conn.transaction():
            self._conn.execute("DELETE FROM epipe_backfills WHERE slot = %s", [slot])
            for position, relation in enumerate(relations):
                self._conn.execute(
                    "INSERT INTO epipe_backfills (slot, relation, position, resync) "
                    "VALUES (%s, %s, %s, %s)",
                    [slot, relation, position, resync],
                )

    def backfill(self, slot: str) -> list[BackfillState]:
        rows = self._conn.execute(
            "SELECT relation, last_key, rows, done, resync FROM epipe_backfills WHERE slot = %s "
            "ORDER BY position",
            [slot],
        ).fetchall()
        return [BackfillState(*row) for row in rows]

    def save_backfill(
        self, slot: str, relation: str, last_key: list[Any], rows: int, done: bool
    ) -> None:
        self._conn.execute(
            "UPDATE epipe_backfills SET last_key = %s, rows = rows + %s, done = %s, "
            "finished_at = CASE WHEN %s THEN now() END WHERE slot = %s AND relation = %s",
            [Jsonb(last_key), rows, done, done, slot, relation],
        )
