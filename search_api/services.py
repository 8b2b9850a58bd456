"""What request handlers share: the connection pool, the index, the caller."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

import psycopg
from fastapi import Depends, Header, Request
from prometheus_client import CollectorRegistry
from psycopg_pool import ConnectionPool

from epipe.accounts import Caller, caller_of
from epipe.index.engine import SearchIndex
from epipe.pipeline.store import ConsumerPosition, PipelineStore
from epipe.settings import Settings
from search_api.problems import Problem
from search_api.waits import PositionFeed

PROVENANCE = "provenance"  # the consumer provenance queries read after (epipe/wiring.py)


@dataclass
class Services:
    settings: Settings
    pool: ConnectionPool
    index: SearchIndex  # follows rebuilds: IndexStore.reader()
    registry: CollectorRegistry | None = None
    waits: PositionFeed | None = None  # read-your-writes: set by the app's lifespan
    provenance_waits: PositionFeed | None = None  # the same, for provenance queries

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection() as conn:
            yield conn

    def positions(self) -> list[ConsumerPosition]:
        """The applied positions of the consumers serving search (blocking)."""
        with self.connection() as conn:
            return PipelineStore.on(conn).positions(serving_search=True)

    def provenance_positions(self) -> list[ConsumerPosition]:
        """The applied position of the provenance consumer, when it has ever run (blocking)."""
        with self.connection() as conn:
            return [p for p in PipelineStore.on(conn).positions() if p.name == PROVENANCE]


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
