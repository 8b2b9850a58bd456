"""Request and response bodies of the API, with the examples /docs shows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from epipe.prov.artifacts import KINDS
from epipe.search.query import MAX_LIMIT, Sort


class SearchRequest(BaseModel):
    """A search; the same fields as query parameters of GET /v1/search or as a POST body."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(
        None,
        max_length=1000,
        description="free text over names, paths and annotations; every word must match",
        examples=["bicycle rain"],
    )
    under: str | None = Field(
        None,
        max_length=8192,
        description="only below this directory",
        examples=["/Projects/cars/images"],
    )
    type: Literal["file", "dir"] | None = Field(None, examples=["file"])
    ext: str | None = Field(None, max_length=255, examples=["jpg"])
    artifact: str | None = Field(
        None,
        max_length=32,
        description=f"artifact kind from the name: {', '.join(KINDS)} (docs/provenance.md)",
        examples=["model"],
    )
    owner: str | None = Field(None, max_length=32, examples=["alice"])
    size_min: int | None = Field(None, ge=0, lt=2**63, examples=[100000])
    size_max: int | None = Field(None, ge=0, lt=2**63)
    modified_after: datetime | None = Field(None, examples=["2026-01-01T00:00:00Z"])
    modified_before: datetime | None = None
    xattr: list[str] = Field(
        default_factory=list,
        max_length=20,
        description="annotation predicates: PATH OP VALUE (= != > >= < <=) or PATH exists",
        examples=[["labels.objects.bicycle>3", "labels.camera=front"]],
    )
    sort: Sort = Field(
        "score",
        description="score (relevance; path without q), name, "
        "path, size, mtime; '-' for descending",
    )
    limit: int = Field(20, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(
        None, max_length=2000, description="next_cursor of the previous page"
    )


class SearchParams(SearchRequest):
    """The query parameters of GET /v1/search (beside them: after, wait_ms)."""

    model_config = ConfigDict(extra="ignore")


class SearchHit(BaseModel):
    path: str = Field(examples=["/Projects/cars/images/train/20240317_left_00005/frame_0031.jpg"])
    name: str
    type: Literal["file", "dir"]
    size: int
    owner: str
    modified: datetime
    xattrs: dict[str, Any] = Field(examples=[{"labels": {"objects": {"bicycle": 4}}}])
    score: float | None


class SearchResponse(BaseModel):
    hits: list[SearchHit]
    total: int = Field(description="matching files the caller may see")
    next_cursor: str | None = Field(
        description="pass as cursor for the next page; null on the last"
    )
    took_ms: float


class TokenResponse(BaseModel):
    token: str = Field(
        description="consistency token (commit position): pass as after= to read your write",
        examples=["0/1B5FCD0"],
    )


class XattrsResponse(BaseModel):
    path: str
    xattrs: dict[str, Any]


class FileEntry(BaseModel):
    id: int
    path: str
    name: str
    type: Literal["file", "dir"]
    size: int
    mode: int
    owner: str
    group: str
    modified: datetime
    changed: datetime


class ListResponse(BaseModel):
    path: str
    entries: list[FileEntry]
    next_cursor: str | None


class ProvenanceOp(BaseModel):
    at: datetime
    user: str | None = Field(examples=["alice"])
    app_id: str | None = Field(examples=["train-001"])
    op: Literal["create", "mkdir", "read", "write", "move", "delete", "setxattr", "rmxattr"]
    name: str = Field(description="the entry's name after the operation")
    detail: dict[str, Any] | None = Field(
        examples=[{"size": 1024}], description="size written, a move's old name, xattr named"
    )


class FileHistory(BaseModel):
    path: str
    ops: list[ProvenanceOp]
    next_offset: int | None = Field(
        description="pass as offset for the next page; null on the last"
    )


class FileNode(BaseModel):
    id: str = Field(examples=["file:4711"])
    type: Literal["file"]
    path: str
    artifact: str | None = Field(examples=["model"], description="model, dataset, notebook, image")
    deleted: bool


class AppNode(BaseModel):
    id: str = Field(examples=["app:train-001"])
    type: Literal["app"]
    app_id: str


class LineageEdge(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: str = Field(alias="from", examples=["file:4711"])
    to: str = Field(examples=["app:train-001"])
    op: Literal["read", "wrote"]


class LineageGraph(BaseModel):
    root: str
    nodes: list[FileNode | AppNode]
    edges: list[LineageEdge]
    truncated: bool = Field(description="true when the graph was cut at 1,000 nodes")


class FootprintFile(FileNode):
    count: int = Field(description="operations of this kind by the app on the file")
    first_at: datetime
    last_at: datetime
    ops: list[str] = Field(examples=[["read"]])


class AppFootprint(BaseModel):
    app_id: str
    inputs: list[FootprintFile]
    outputs: list[FootprintFile]
