"""Annotations and metadata of files, through the namespace layer (so the same checks,
tokens and provenance apply as on the command line)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from epipe.errors import FsError
from epipe.fs.model import Actor, Entry
from epipe.fs.namespace import Namespace
from epipe.fs.paths import join_path, split_path
from epipe.fs.xattrs import parse_value
from epipe.index.document import project_of
from search_api.models import FileEntry, ListResponse, TokenResponse, XattrsResponse
from search_api.problems import Problem, responses
from search_api.scope import require_within_projects
from search_api.services import CallerDep, ServicesDep

router = APIRouter(prefix="/v1/files", tags=["files"])
PathParam = Annotated[
    str,
    Query(max_length=8192, description="absolute path", examples=["/Projects/cars/images/a.jpg"]),
]
NameParam = Annotated[
    str,
    Query(
        max_length=300,
        description="xattr name: labels (user namespace) or system.NAME",
        examples=["labels"],
    ),
]
AppHeader = Annotated[
    str | None,
    Header(alias="X-Epipe-App", max_length=255, description="application id, for provenance"),
]


@contextmanager
def namespace(services: Any, caller: Any, app: str | None, path: str) -> Iterator[Namespace]:
    """The namespace as the caller, for an operation on `path`. A path outside the caller's
    projects is EACCES at once, before the database is asked anything (so it costs what a
    missing one costs); a refusal inside a project the caller belongs to is 403; anywhere
    else EACCES answers 404 like a missing file."""
    require_within_projects(path, caller)
    with services.connection() as conn:
        try:
            yield Namespace(conn, Actor(caller.user, app))
        except FsError as exc:
            if exc.code == "EACCES" and project_of(exc.path) in caller.projects:
                raise Problem(
                    403,
                    f"your role in project {project_of(exc.path)} does not allow this: {exc.path}",
                ) from None
            raise


READS = responses(400, 401, 404, 503)
WRITES = responses(400, 401, 403, 404, 503)


@router.get("/xattrs", response_model=XattrsResponse, summary="Read annotations", responses=READS)
def get_xattrs(
    path: PathParam,
    caller: CallerDep,
    services: ServicesDep,
    name: Annotated[str | None, Query(max_length=300)] = None,
    app: AppHeader = None,
) -> XattrsResponse:
    with namespace(services, caller, app, path) as ns:
        return XattrsResponse(path=path, xattrs=ns.getxattr(path, name))


async def json_text(request: Request) -> str:
    """The body as text, parsed by the namespace layer as on the command line: it names the
    limit a value breaks, where FastAPI's parser reads 1e-400 as 0 and gives up on deep
    nesting or long numbers without saying why."""
    try:
        return (await request.body()).decode()
    except UnicodeDecodeError:
        raise Problem(400, "the body is not UTF-8") from None


VALUE_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"title": "Value"},
            "examples": {
                "labels": {"summary": "object counts", "value": {"objects": {"bicycle": 4}}}
            },
        }
    },
}


@router.put(
    "/xattrs",
    response_model=TokenResponse,
    summary="Set an annotation",
    openapi_extra={"requestBody": VALUE_BODY},
    responses=WRITES,
)
def put_xattr(
    path: PathParam,
    name: NameParam,
    caller: CallerDep,
    services: ServicesDep,
    text: Annotated[str, Depends(json_text)],
    app: AppHeader = None,
) -> TokenResponse:
    """Set xattr NAME of PATH to the JSON body: any JSON value, at most 64 KiB, nested at most
    64 levels, integers within 64 bits, other numbers within a double's range."""
    with namespace(services, caller, app, path) as ns:
        return TokenResponse(token=ns.setxattr(path, name, parse_value(text, path=path)).token)


@router.delete(
    "/xattrs", response_model=TokenResponse, summary="Remove an annotation", responses=WRITES
)
def delete_xattr(
    path: PathParam,
    name: NameParam,
    caller: CallerDep,
    services: ServicesDep,
    app: AppHeader = None,
) -> TokenResponse:
    with namespace(services, caller, app, path) as ns:
        return TokenResponse(token=ns.rmxattr(path, name).token)


@router.get(
    "/stat",
    response_model=FileEntry,
    summary="Metadata of a file or directory",
    responses=READS,
)
def stat(
    path: PathParam, caller: CallerDep, services: ServicesDep, app: AppHeader = None
) -> FileEntry:
    with namespace(services, caller, app, path) as ns:
        parts = split_path(path)
        return _entry(ns.stat(path), join_path(parts))


@router.get("/list", response_model=ListResponse, summary="Entries of a directory", responses=READS)
def list_dir(
    path: PathParam,
    caller: CallerDep,
    services: ServicesDep,
    cursor: Annotated[
        str | None, Query(max_length=300, description="name to continue after")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    app: AppHeader = None,
) -> ListResponse:
    """In name order, `limit` at a time; a file lists as itself."""
    with namespace(services, caller, app, path) as ns:
        base = join_path(split_path(path))
        target = ns.stat(path)
        entries = ns.ls(path, after=cursor, limit=limit)
    if target.kind == "file":
        return ListResponse(path=base, entries=[_entry(target, base)], next_cursor=None)
    listed = [_entry(e, f"{base.rstrip('/')}/{e.name}") for e in entries]
    more = len(entries) == limit
    return ListResponse(path=base, entries=listed, next_cursor=entries[-1].name if more else None)


def _entry(entry: Entry, path: str) -> FileEntry:
    return FileEntry(
        id=entry.id,
        path=path,
        name=entry.name,
        type=entry.kind,
        size=entry.size,
        mode=entry.mode,
        owner=entry.owner,
        group=entry.group,
        modified=entry.mtime,
        changed=entry.ctime,
    )
