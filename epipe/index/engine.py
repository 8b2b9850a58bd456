"""The port the index sink writes to and searches read from, with two adapters:
`TantivyIndex` (embedded) and `ElasticsearchIndex` (scale-out). Both pass
tests/contract/test_index_contract.py.

Errors: an adapter raises EngineError when its engine fails (each translates its library's
exceptions in one place, its `map_exceptions`), QueryError for a query that cannot be run
as written; a document the engine refuses is returned by `upsert`, not raised."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from epipe.errors import EpipeError
from epipe.index.document import Document, without_annotations
from epipe.index.position import IndexPosition
from epipe.search.query import SearchQuery

RUN = "epipe run"  # the roles that write to an index, as the writer lock names them
REINDEX = "epipe reindex"


class EngineError(EpipeError):
    """The search engine failed (unreachable, corrupt, refused the whole request)."""


class IndexBusy(EpipeError):
    """Another process holds the index's writer lock."""

    def __init__(self, role: str, pid: str, path: Path) -> None:
        self.role, self.pid, self.path = role, pid, path
        super().__init__(f"the index is being written by {role} (pid {pid}; lock {path})")


@dataclass(frozen=True)
class Hit:
    doc: Document
    score: float | None
    key: Any = None  # the sort key (engine-specific): with the id, where a cursor resumes


@dataclass(frozen=True)
class Page:
    hits: list[Hit]
    total: int


class SearchIndex(Protocol):
    def upsert(self, docs: list[Document]) -> list[tuple[int, str]]:
        """Add or replace documents; the ids the engine refused, with its reason."""

    def delete(self, ids: Iterable[int], version: int | None = None) -> None:
        """Remove documents; `version` (the deleting change's LSN) lets an engine refuse a
        later write of an older version."""

    def delete_below(self, dirs: Iterable[int]) -> None:
        """Remove every document below these directories (whose ancestors name one), as
        the index holds them: a document whose ancestors a pending move has not rewritten
        yet is not reached."""

    def delete_all(self) -> None: ...

    def commit(self) -> None:
        """Make every change durable and searchable."""

    def search(self, query: SearchQuery) -> Page: ...

    def get(self, ids: Iterable[int]) -> dict[int, Document]: ...

    def scan(self, batch: int = 5_000, *, under: int | None = None) -> Iterator[list[Document]]:
        """Every document as of the last commit (`under`: those below the directory with
        this id), in id order."""

    def count(self) -> int: ...

    def check_fields(self, expected: list[Document]) -> dict[int, str]:
        """The documents among `expected` (each as the database makes it) whose values in
        the structures searches filter and sort on differ from it: id -> the field."""

    def close(self) -> None: ...

    @property
    def generation(self) -> str:
        """The generation this index writes to and reads from."""


class WriterLock(Protocol):
    exclusive: bool  # holding it proves that no other process writes to the store

    def release(self) -> None: ...

    def __enter__(self) -> WriterLock: ...

    def __exit__(self, *exc: object) -> None: ...


class IndexStore(Protocol):
    """Generations of an index: the current one, and a new one to rebuild into and then
    swap in atomically (readers never see a half-built index)."""

    def current(self, *, writable: bool) -> SearchIndex: ...

    def current_generation(self) -> str | None: ...

    def hold_writer(self, role: str) -> WriterLock:
        """The right to write to the store (raises IndexBusy while another process holds
        it); taking it removes generations an interrupted rebuild left behind."""

    def position(self, generation: str) -> IndexPosition | None:
        """What `generation` recorded with `record_position` (None: nothing readable)."""

    def record_position(self, generation: str, position: IndexPosition) -> None: ...

    def reader(self) -> SearchIndex:
        """A read-only index that always answers from the current generation, following
        every swap (for long-lived readers such as the API)."""
        ...

    def new_generation(self) -> tuple[str, SearchIndex]: ...

    def activate(self, generation: str) -> None: ...

    def discard(self, generation: str) -> None:
        """Remove a generation that will never be activated (a failed rebuild)."""


def upsert_files(index: SearchIndex, docs: list[Document]) -> list[tuple[int, str]]:
    """`index.upsert(docs)`, except that a document the engine refuses is written again
    without its annotations (named in `skipped`): the file stays searchable by name, path and
    metadata. The refusals, with the engine's reason."""
    refused = index.upsert(docs)
    if not refused:
        return refused
    ids = {inode_id for inode_id, _ in refused}
    bare = [without_annotations(doc) for doc in docs if doc["id"] in ids and doc["xattrs"]]
    kept = {doc["id"] for doc in bare} - {inode_id for inode_id, _ in index.upsert(bare)}
    return [
        (inode_id, f"{reason}; indexed without its annotations" if inode_id in kept else reason)
        for inode_id, reason in refused
    ]
