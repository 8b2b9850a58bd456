"""RebuildRequests: `epipe reindex` asking a running pipeline to rebuild its view.

A request is a row of `epipe_index_requests`: submitted by the CLI, taken by the consumer
that owns the view (between two batches), its progress written as it goes, finished with
an error or none. The consumer serving a request holds a session advisory lock on it: two
consumer processes never both serve one request, and a request whose server died (its
session ended, the lock with it) is taken up again by the next consumer to look, while the
waiting `epipe reindex` sees at once that nobody serves it any more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

_LOCKS = 0x45504950  # high half of the advisory lock keys ('EPIP'); the low half: the id


def _key(request: int) -> int:
    return (_LOCKS << 32) | (request & 0x7FFFFFFF)


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
        """The oldest unfinished request nobody serves (never taken, or taken by a process
        that died), now marked started and locked by this session; None if there is none."""
        open_requests = self._conn.execute(
            "SELECT id FROM epipe_index_requests WHERE finished_at IS NULL ORDER BY id"
        ).fetchall()
        for (request,) in open_requests:
            if not self._lock(request):
                continue  # served by a live consumer
            row = self._conn.execute(
                "UPDATE epipe_index_requests SET started_at = now(), done = 0 "
                "WHERE id = %s AND finished_at IS NULL RETURNING id",
                [request],
            ).fetchone()
            if row is not None:
                return int(request)
            self._unlock(request)  # withdrawn meanwhile
        return None

    def served(self, request: int) -> bool:
        """Whether a live consumer serves `request` now (holds its lock)."""
        row = self._conn.execute(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND classid = %s::bigint::oid AND objid = %s::bigint::oid AND objsubid = 1)",
            [_LOCKS, _key(request) & 0xFFFFFFFF],
        ).fetchone()
        return bool(row and row[0])

    def _lock(self, request: int) -> bool:
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [_key(request)]).fetchone()
        return bool(row and row[0])

    def _unlock(self, request: int) -> None:
        self._conn.execute("SELECT pg_advisory_unlock(%s)", [_key(request)])

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
        self._unlock(request)

    def withdraw(self, request: int, reason: str) -> bool:
        """End a request nobody serves; False if a consumer took it meanwhile."""
        if not self._lock(request):
            return False
        try:
            cur = self._conn.execute(
                "UPDATE epipe_index_requests SET finished_at = now(), error = %s "
                "WHERE id = %s AND finished_at IS NULL",
                [reason, request],
            )
        finally:
            self._unlock(request)
        return cur.rowcount > 0
