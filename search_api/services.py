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
from epipe.pipeline.status import lags
from epipe.settings import Settings
from search_api.problems import Problem

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
        """Return once every consumer serving search has applied `token`; else 409 with the
        lag of those behind."""
        deadline = time.monotonic() + min(wait_ms, MAX_WAIT_MS) / 1000
        while True:
            with self.connection() as conn:
                serving = lags(conn, token, serving_search=True)
            behind = [lag for lag in serving if lag.lag_bytes]
            if serving and not behind:
                return
            if not serving or time.monotonic() >= deadline:  # no consumer: nothing to wait for
                detail = (
                    "no index consumer is running"
                    if not serving
                    else f"the index has not applied {lsn_to_str(token)} yet"
                )
                lag: list[dict[str, Any]] = [lag.as_json() for lag in behind]
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
