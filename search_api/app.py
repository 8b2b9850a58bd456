"""The application factory: `create_app(settings)`; no work happens at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from psycopg_pool import ConnectionPool

from epipe.db.server import database_dsn, utc_session
from epipe.settings import Settings, load_settings
from epipe.wiring import open_index_store
from search_api import problems
from search_api.middleware import BodyLimit, Measure
from search_api.routes import files, ops, provenance, search
from search_api.services import Services
from search_api.waits import PositionFeed

DESCRIPTION = """Search the files of your projects by free text, place, metadata and JSON
annotations; read and write annotations; follow the pipeline.

Every call but /healthz and /metrics needs `Authorization: Bearer <token>` (`epipe token
create USER`). A caller sees only files of projects they belong to; anything else is answered
exactly as a file that does not exist. Writes return a consistency token: pass it as
`after=<token>&wait_ms=N` to a search to read your write. Errors are RFC 9457 problem+json."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = database_dsn(settings)
        pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=16,
            open=True,
            kwargs={"autocommit": True},
            configure=utc_session,  # as epipe.db.server.connect: times leave in UTC
            name="epipe-api",
        )
        services = Services(settings, pool, open_index_store(settings).reader())
        waits = PositionFeed(
            services.positions,
            max_waits=settings.api_max_waits,
            max_waits_per_caller=settings.api_max_waits_per_caller,
        )
        services.waits = waits
        provenance_waits = PositionFeed(
            services.provenance_positions,
            max_waits=settings.api_max_waits,
            max_waits_per_caller=settings.api_max_waits_per_caller,
            view="provenance graph",
        )
        services.provenance_waits = provenance_waits
        registry = CollectorRegistry()
        registry.register(ops.PipelineCollector(services))
        services.registry = registry
        app.state.services = services
        app.state.requests = Counter(
            "epipe_http_requests", "API requests", ["route", "status"], registry=registry
        )
        app.state.latency = Histogram(
            "epipe_http_request_seconds",
            "API latency",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        waiting = Gauge("epipe_api_waits", "read-your-writes waits in progress", registry=registry)
        waiting.set_function(lambda: waits.waiting + provenance_waits.waiting)
        try:
            yield
        finally:
            await waits.close()
            await provenance_waits.close()
            pool.close()

    # No trailing-slash redirects: Starlette builds them from the Host header.
    app = FastAPI(
        title="epipe",
        version=version("epipe"),
        description=DESCRIPTION,
        lifespan=lifespan,
        redirect_slashes=False,
    )
    problems.install(app)
    app.include_router(search.router)
    app.include_router(files.router)
    app.include_router(provenance.router)
    app.include_router(ops.router)

    def metrics() -> tuple[Any, Any] | None:
        state = app.state
        return (state.requests, state.latency) if hasattr(state, "requests") else None

    app.add_middleware(BodyLimit, limit=settings.api_max_body_bytes)
    app.add_middleware(Measure, metrics=metrics)  # outermost: sees BodyLimit's answers too

    return app
