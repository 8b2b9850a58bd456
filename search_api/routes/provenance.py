"""GET /v1/provenance/files, /v1/provenance/apps/{app_id} and /v1/lineage: the lineage graph
the provenance consumer keeps, within the caller's projects (epipe/prov/query.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from epipe.accounts import Caller
from epipe.errors import FsError
from epipe.lsn import lsn_from_str
from epipe.prov import query
from search_api.models import AppFootprint, FileHistory, LineageGraph
from search_api.problems import Problem, responses
from search_api.services import CallerDep, Services, ServicesDep
from search_api.waits import After, WaitMs, unless_gone

router = APIRouter(tags=["provenance"])
PathParam = Annotated[
    str,
    Query(max_length=8192, description="absolute path", examples=["/Projects/demo/models/m.pb"]),
]
STATUSES = responses(400, 401, 404, 409, 429, 503)


def scope_of(caller: Caller) -> query.Scope:
    return query.Scope(None if caller.superuser else caller.projects)


async def applied(
    services: Services, caller: Caller, http: Request, after: str | None, wait_ms: int
) -> None:
    """Return once the provenance graph holds `after` (409 with the lag after `wait_ms`)."""
    if after is None:
        return
    try:
        token = lsn_from_str(after)
    except ValueError:
        raise Problem(400, f"after: not a token: {after!r}") from None
    assert services.provenance_waits is not None
    await unless_gone(http, services.provenance_waits.wait_applied(caller.user_id, token, wait_ms))


@router.get(
    "/v1/provenance/files",
    response_model=FileHistory,
    summary="A file's operation history",
    responses=STATUSES,
)
async def file_history(
    path: PathParam,
    caller: CallerDep,
    services: ServicesDep,
    http: Request,
    offset: Annotated[int, Query(ge=0, lt=2**31, description="operations to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: After = None,
    wait_ms: WaitMs = 0,
) -> dict[str, Any]:
    """Who (user, app) created, read, changed, moved or deleted the file, and when; in the
    order they happened, a page at a time (`next_offset`)."""
    await applied(services, caller, http, after, wait_ms)

    def read() -> dict[str, Any]:
        with services.connection() as conn:
            return query.history(conn, path, scope_of(caller), offset=offset, limit=limit)

    return await run_in_threadpool(read)


@router.get(
    "/v1/provenance/apps/{app_id}",
    response_model=AppFootprint,
    summary="An app's inputs and outputs",
    responses=STATUSES,
)
async def app_footprint(
    app_id: Annotated[str, Path(max_length=255, description="application id")],
    caller: CallerDep,
    services: ServicesDep,
    http: Request,
    after: After = None,
    wait_ms: WaitMs = 0,
) -> dict[str, Any]:
    """The files the app read (inputs) and created, wrote or annotated (outputs), with
    counts and first and last times; only files of the caller's projects."""
    await applied(services, caller, http, after, wait_ms)

    def read() -> dict[str, Any]:
        with services.connection() as conn:
            return query.app(conn, app_id, scope_of(caller))

    try:
        return await run_in_threadpool(read)
    except FsError as exc:
        if exc.code != "ENOENT":
            raise
        raise Problem(404, f"no such app: {app_id}") from None


@router.get("/v1/lineage", response_model=LineageGraph, summary="Lineage", responses=STATUSES)
async def lineage(
    path: PathParam,
    caller: CallerDep,
    services: ServicesDep,
    http: Request,
    direction: Annotated[
        query.Direction,
        Query(description="upstream: what it was made from; downstream: what was made from it"),
    ] = query.UPSTREAM,
    depth: Annotated[
        int, Query(ge=1, le=query.MAX_DEPTH, description="app generations to follow")
    ] = 3,
    after: After = None,
    wait_ms: WaitMs = 0,
) -> dict[str, Any]:
    """The apps and files the file came from (upstream) or that came from it (downstream):
    `{"root", "nodes", "edges", "truncated"}`, edges following the data (file -read-> app
    -wrote-> file). Files outside the caller's projects are absent."""
    await applied(services, caller, http, after, wait_ms)

    def read() -> dict[str, Any]:
        with services.connection() as conn:
            found = query.lineage(conn, path, scope_of(caller), direction=direction, depth=depth)
            return found.as_json()

    return await run_in_threadpool(read)
