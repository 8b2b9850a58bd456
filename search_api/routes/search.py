"""GET and POST /v1/search."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from epipe.accounts import Caller
from epipe.fs.paths import normalise
from epipe.index.engine import Hit, Page
from epipe.lsn import lsn_from_str
from epipe.search.query import SearchQuery, parse_predicate
from search_api import scope
from search_api.cursors import CursorSigner, signer
from search_api.models import SearchHit, SearchParams, SearchRequest, SearchResponse
from search_api.problems import Problem, responses
from search_api.services import CallerDep, Services, ServicesDep
from search_api.waits import After, WaitMs, unless_gone

router = APIRouter(prefix="/v1", tags=["search"])
Signer = Annotated[CursorSigner, Depends(signer)]
EXAMPLE = {
    "q": "rain",
    "under": "/Projects/cars/images",
    "type": "file",
    "xattr": ["labels.objects.bicycle>3"],
    "sort": "-size",
    "limit": 10,
}


STATUSES = responses(400, 401, 409, 413, 429, 503)


@router.get("/search", response_model=SearchResponse, summary="Search files", responses=STATUSES)
async def search_get(
    request: Annotated[SearchParams, Query()],
    caller: CallerDep,
    services: ServicesDep,
    cursors: Signer,
    http: Request,
    after: After = None,
    wait_ms: WaitMs = 0,
) -> SearchResponse:
    """Free text, place, metadata and annotation predicates over the files of the caller's
    projects; `xattr` repeats (`?xattr=labels.objects.bicycle>3&xattr=labels.camera=front`)."""
    return await run(request, caller, services, cursors, http, after, wait_ms)


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="Search files (JSON body)",
    responses=STATUSES,
)
async def search_post(
    request: Annotated[
        SearchRequest,
        Body(
            openapi_examples={
                "bicycles": {"summary": "more than three bicycles, largest first", "value": EXAMPLE}
            }
        ),
    ],
    caller: CallerDep,
    services: ServicesDep,
    cursors: Signer,
    http: Request,
    after: After = None,
    wait_ms: WaitMs = 0,
) -> SearchResponse:
    """The search of GET /v1/search, with the query as a JSON body."""
    return await run(request, caller, services, cursors, http, after, wait_ms)


async def run(
    request: SearchRequest,
    caller: Caller,
    services: Services,
    cursors: CursorSigner,
    http: Request,
    after: str | None,
    wait_ms: int,
) -> SearchResponse:
    started = time.perf_counter()
    if after is not None:
        try:
            token = lsn_from_str(after)
        except ValueError:
            raise Problem(400, f"after: not a token: {after!r}") from None
    fingerprint = _fingerprint(request)
    under = normalise(request.under) if request.under else None
    searched = scope.search_under(under, caller)
    query = SearchQuery(
        text=request.q,
        under=None if searched is scope.OUTSIDE else searched,
        type=request.type,
        ext=request.ext,
        artifact=request.artifact,
        owner=request.owner,
        size_min=request.size_min,
        size_max=request.size_max,
        modified_after=request.modified_after,
        modified_before=request.modified_before,
        xattr=tuple(parse_predicate(text) for text in request.xattr),
        sort=request.sort,
        limit=request.limit,
        projects=None if caller.superuser else caller.projects,
    )
    if request.cursor:
        last = cursors.decode(request.cursor, fingerprint, query.effective_sort)
        query = dataclasses.replace(query, after=last)
    if after is not None:
        assert services.waits is not None
        await unless_gone(http, services.waits.wait_applied(caller.user_id, token, wait_ms))
    if searched is scope.OUTSIDE:  # answered as a missing directory, without looking it up
        page = Page([], 0)
    else:
        page = await run_in_threadpool(services.index.search, query)
    more = len(page.hits) == request.limit
    return SearchResponse(
        hits=[_hit(hit) for hit in page.hits],
        total=page.total,
        next_cursor=cursors.encode(fingerprint, page.hits[-1].key, page.hits[-1].doc["id"])
        if more and page.hits
        else None,
        took_ms=round((time.perf_counter() - started) * 1000, 3),
    )


def _hit(hit: Hit) -> SearchHit:
    doc = hit.doc
    return SearchHit(
        path=doc["path"],
        name=doc["name"],
        type=doc["kind"],
        size=doc["size"],
        owner=doc["owner"],
        modified=datetime.fromisoformat(doc["mtime"]),
        xattrs=doc["xattrs"],
        score=hit.score,
    )


def _fingerprint(request: SearchRequest) -> str:
    """Which query a cursor belongs to (every field but the cursor and the page size)."""
    fields = request.model_dump(mode="json", exclude={"cursor", "limit"})
    return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]
