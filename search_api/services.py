"""What request handlers share: the connection pool, the index, the caller."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Header, Request
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from epipe.accounts import Caller, caller_of
from epipe.index.engine import SearchIndex
from epipe.lsn import lsn_to_str
from epipe.settings import Settings
from search_api.problems import Problem

INDEX_CONSUMER = "index"
MAX_WAIT_MS = 30_000


@dataclass
class Services:
    settings: Settings
    pool: ConnectionPool
    index: SearchIndex  # follows rebuilds: IndexStore.reader()
    registry: CollectorRegistry | None = None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    def wait_applied(self, token: int, wait_ms: int) -> None:
        """Return once every index consumer has applied `token`; else 409 with the lag."""
        deadline = time.monotonic() + min(wait_ms, MAX_WAIT_MS) / 1000
        while True:
            with self.connection() as conn:
                rows = conn.execute(
                    "SELECT name, applied_lsn::text, pg_wal_lsn_diff(%s::pg_lsn, applied_lsn), "
                    "extract(epoch FROM now() - committed_at) FROM epipe_consumers "
                    "WHERE name = %s OR name LIKE %s",
                    [lsn_to_str(token), INDEX_CONSUMER, INDEX_CONSUMER + "/%"],
                ).fetchall()
            behind = [r for r in rows if r[2] > 0]
            if rows and not behind:
                return
            if not rows or time.monotonic() >= deadline:  # no consumer: nothing to wait for
                lag: list[dict[str, Any]] = [
                    {
                        "consumer": name,
                        "applied": applied,
                        "lag_bytes": int(diff),
                        "lag_seconds": round(float(age or 0), 3),
                    }
                    for name, applied, diff, age in behind
                ]
                detail = (
                    "no index consumer is running"
                    if not rows
                    else f"the index has not applied {lsn_to_str(token)} yet"
                )
                raise Problem(409, detail, token=lsn_to_str(token), lag=lag)
            time.sleep(0.005)


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


def caller(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <token>")] = None,
) -> Caller:
    """The caller behind the bearer token; 401 without a valid one."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Problem(401, "a bearer token is required (Authorization: Bearer <token>)")
    with services(request).connection() as conn:
        found = caller_of(conn, authorization[7:].strip())
    if found is None:
        raise Problem(401, "the bearer token is not valid")
    return found


ServicesDep = Annotated[Services, Depends(services)]
CallerDep = Annotated[Caller, Depends(caller)]
