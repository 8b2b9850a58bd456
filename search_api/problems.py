"""Errors as RFC 9457 problem+json: what failed and which part of the request, never a
stack trace. A file outside the caller's projects is answered exactly as a missing one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from epipe.errors import AccountError, DatabaseError, FsError
from epipe.index.engine import EngineError
from epipe.search.query import QueryError

log = logging.getLogger("search_api")
MEDIA_TYPE = "application/problem+json"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    429: "Too Many Requests",
    499: "Client Closed Request",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "example": "about:blank"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "what failed; a 400 names the part first"},
        "part": {"type": "string", "description": "the malformed part of a query (400)"},
    },
}
WHY = {
    400: "a malformed request; `detail` names the offending part",
    401: "no bearer token, or not a valid one",
    403: "your role in the file's project does not allow this",
    404: "no such file or attribute (or one outside your projects)",
    409: "`after` was not applied within `wait_ms`, or the file exists already",
    413: "the request body is larger than the server takes (EPIPE_API_MAX_BODY_BYTES)",
    429: "too many read-your-writes waits at once, yours or in total; retry after Retry-After",
    503: "the metadata database or the search index is unavailable",
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The problem answers a route really gives, for its OpenAPI entry (FastAPI's own 422 is
    never given: validation errors are 400, and `install` leaves 422 out of the OpenAPI)."""
    return {
        status: {
            "description": f"{TITLES[status]}: {WHY[status]}",
            "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}},
        }
        for status in statuses
    }


class Problem(Exception):
    def __init__(
        self, status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra
        super().__init__(detail)


def response(
    status: int, detail: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = {**(headers or {}), **({"WWW-Authenticate": "Bearer"} if status == 401 else {})}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def fs_problem(exc: FsError) -> Problem:
    """POSIX errors of the namespace layer as HTTP answers. EACCES is answered like ENOENT:
    asking about another project's file must look like asking about a missing file."""
    if exc.code in ("ENOENT", "EACCES", "ENOTDIR"):
        return Problem(404, f"no such file or directory: {exc.path}")
    if exc.code == "ENODATA":
        return Problem(404, f"no such attribute: {exc.detail or exc.path}")
    if exc.code == "EEXIST":
        return Problem(409, f"already exists: {exc.path}")
    if exc.code in ("EINVAL", "EISDIR", "ENOTEMPTY"):
        return Problem(400, f"{exc.code}: {exc.path}" + (f" ({exc.detail})" if exc.detail else ""))
    return Problem(500, "the file system failed")


def install(app: FastAPI) -> None:
    document_statuses(app)

    @app.exception_handler(Problem)
    async def problem(_: Request, exc: Problem) -> JSONResponse:
        return response(exc.status, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {}
        location = " ".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        detail = f"{location}: {first.get('msg', 'invalid')}"
        return response(
            400,
            detail,
            invalid=[
                {"part": " ".join(str(p) for p in e.get("loc", ())), "message": e.get("msg")}
                for e in errors[:10]
            ],
        )

    @app.exception_handler(QueryError)
    async def bad_query(_: Request, exc: QueryError) -> JSONResponse:
        return response(400, str(exc), part=exc.part)

    @app.exception_handler(FsError)
    async def fs_error(_: Request, exc: FsError) -> JSONResponse:
        translated = fs_problem(exc)
        return response(translated.status, translated.detail)

    @app.exception_handler(AccountError)
    async def account(_: Request, exc: AccountError) -> JSONResponse:
        return response(400, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return response(exc.status_code, str(exc.detail))

    @app.exception_handler(DatabaseError)
    @app.exception_handler(EngineError)
    async def unavailable(_: Request, exc: Exception) -> JSONResponse:
        log.error("backend unavailable: %s", exc)
        return response(503, "the metadata database or the search index is unavailable")

    @app.exception_handler(Exception)
    async def crash(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return response(500, "unexpected error (logged on the server)")


def document_statuses(app: FastAPI) -> None:
    """The OpenAPI without the 422 FastAPI adds to every route with parameters: this API
    answers validation errors with 400 (each route lists its statuses with `responses`)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
        for unused in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(unused, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
