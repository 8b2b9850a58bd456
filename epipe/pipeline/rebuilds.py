"""RebuildRequests: `epipe reindex` asking a running pipeline to rebuild its view.

A request is a row of `epipe_index_requests`: submitted by the CLI, taken by the consumer
that owns the view (between two batches), its progress written as it goes, finished with
an error or none. Taking is one atomic UPDATE, so two consumer processes never both serve
one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class Request:
    id: int
    started_at: datetime | None
    finished_at: datetime | None
    done: int
    total: int | None
    error: str | None


class RebuildRequests:
    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def submit(self) -> int:
        row = self._conn.execute(
            "INSERT INTO epipe_index_requests DEFAULT VALUES RETURNING id"
        ).fetchone()
        assert row is not None
        return int(row[0])

    def get(self, request: int) -> Request:
        row = self._conn.execute(
            "SELECT id, started_at, finished_at, done, total, error FROM epipe_index_requests "
            "WHERE id = %s",
            [request],
        ).fetchone()
        assert row is not None, f"no rebuild request {request}"
        return Request(*row)

    def take(self) -> int | None:
        """The oldest request nobody serves yet, now marked started; None if there is none."""
        row = self._conn.execute(
            "UPDATE epipe_index_requests SET started_at = now() WHERE id = (SELECT id FROM "
            "epipe_index_requests WHERE finished_at IS NULL AND started_at IS NULL "
            "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
        ).fetchone()
        return None if row is None else int(row[0])

    def progress(self, request: int, done: int, total: int) -> None:
        self._conn.execute(
            "UPDATE epipe_index_requests SET done = %s, total = %s WHERE id = %s",
            [done, total, request],
        )

    def finish(self, request: int, error: str | None = None) -> None:
        self._conn.execute(
            "UPDATE epipe_index_requests SET finished_at = now(), error = %s WHERE id = %s",
            [error, request],
        )

    def withdraw(self, request: int, reason: str) -> bool:
        """End a request nobody took; False if a consumer took it meanwhile."""
        cur = self._conn.execute(
            "UPDATE epipe_index_requests SET finished_at = now(), error = %s "
            "WHERE id = %s AND started_at IS NULL",
            [reason, request],
        )
        return cur.rowcount > 0
