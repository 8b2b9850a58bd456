"""TantivyIndex: one generation of the embedded index — writes, reads and search."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

import tantivy

from epipe.index.document import Document
from epipe.index.engine import EngineError, Hit, Page
from epipe.index.paging import order_of
from epipe.index.tantivy.compile import compile_query
from epipe.index.tantivy.document import as_json, stored, to_tantivy
from epipe.index.tantivy.errors import map_exceptions, refused_queries
from epipe.index.tantivy.fields import differing
from epipe.index.tantivy.keyset import page_entries
from epipe.index.tantivy.schema import SORT_FIELDS
from epipe.search.query import SearchQuery

if TYPE_CHECKING:
    from epipe.index.tantivy.store import TantivyStore

WRITER_HEAP = 128_000_000


class TantivyIndex:
    def __init__(
        self, path: Path, schema: tantivy.Schema, *, writable: bool, generation: str = ""
    ) -> None:
        self.path = path
        self.generation = generation
        self.schema = schema
        self.follow: TantivyStore | None = None  # set on a reader that follows swaps
        with self._failing("open"):
            try:
                self._index = tantivy.Index(schema, str(path), reuse=True)
            except (OSError, ValueError) as exc:
                if "schema does not match" not in str(exc):
                    raise
                raise EngineError(
                    f"the tantivy index at {path} has the fields of another epipe version: "
                    "run `epipe reindex` to build one with the current fields"
                ) from None
            self._writer = self._index.writer(WRITER_HEAP, 1) if writable else None
            if self._writer is not None:
                # A writer killed mid-commit leaves files no commit names (a segment's `.del`
                # among them); replaying its operations would create them again, which
                # tantivy refuses. Only the writer may remove them: now, before any write.
                self._writer.garbage_collect_files()

    def _failing(self, action: str) -> AbstractContextManager[None]:
        return map_exceptions(f"{action} the tantivy index at {self.path}")

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, docs: list[Document]) -> list[tuple[int, str]]:
        writer = self._need_writer()
        self.delete(doc["id"] for doc in docs)
        rejected = []
        with self._failing("write to"):
            for doc in docs:
                try:
                    text = as_json(doc)
                    if text is None:
                        writer.add_document(to_tantivy(doc))
                    else:
                        writer.add_json(text)
                except (ValueError, TypeError, OverflowError) as exc:
                    rejected.append((doc["id"], f"tantivy refused the document: {exc}"))
        return rejected

    # Deletes go through schema-aware queries: delete_documents_by_term would make a signed
    # term of a Python int and match nothing in these unsigned fields.
    def delete(self, ids: Iterable[int], version: int | None = None) -> None:
        wanted = list(ids)  # one writer, in order: no version needed
        if wanted:
            writer = self._need_writer()
            with self._failing("delete from"):
                writer.delete_documents_by_query(
                    tantivy.Query.term_set_query(self.schema, "id", wanted)
                )

    def delete_below(self, dirs: Iterable[int]) -> None:
        wanted = list(dirs)
        if wanted:
            writer = self._need_writer()
            with self._failing("delete from"):
                writer.delete_documents_by_query(
                    tantivy.Query.term_set_query(self.schema, "ancestors", wanted)
                )

    def delete_all(self) -> None:
        writer = self._need_writer()
        with self._failing("empty"):
            writer.delete_all_documents()

    def commit(self) -> None:
        writer = self._need_writer()
        with self._failing("commit"):
            writer.commit()

    def close(self) -> None:
        if self._writer is not None:
            with self._failing("close"):
                self._writer.wait_merging_threads()
            self._writer = None

    def _need_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            raise EngineError("this tantivy index was opened read-only")
        return self._writer

    # -- reads -------------------------------------------------------------------------------

    def _searcher(self) -> tantivy.Searcher:
        if self.follow is not None and self.follow.current_generation() != self.generation:
            latest = self.follow.current(writable=False)  # a rebuild swapped generations
            self._index, self.path, self.generation = latest._index, latest.path, latest.generation
        with self._failing("read"):
            self._index.reload()
            return self._index.searcher()

    def search(self, query: SearchQuery) -> Page:
        """Hits in (sort key, id) order: ties are broken by id, so pages and cursors are
        deterministic (epipe.index.paging; tantivy orders by one key only: keyset.py)."""
        searcher = self._searcher()
        with self._failing("search"), refused_queries(query):
            compiled = compile_query(query, self.schema, self._index, searcher)
            if compiled is None:
                return Page([], 0)
            order = order_of(query, SORT_FIELDS)
            entries, total = page_entries(self.schema, searcher, compiled, query, order)
            hits = [
                Hit(stored(searcher, address), float(key) if order.by_score else None, key)
                for key, _, address in entries
            ]
        return Page(hits, total)

    def get(self, ids: Iterable[int]) -> dict[int, Document]:
        wanted = list(ids)
        if not wanted:
            return {}
        searcher = self._searcher()
        with self._failing("read"):
            query = tantivy.Query.term_set_query(self.schema, "id", wanted)
            result = searcher.search(query, len(wanted), count=False)
            docs = [stored(searcher, address) for _, address in result.hits]
        return {doc["id"]: doc for doc in docs}

    def scan(self, batch: int = 5_000, *, under: int | None = None) -> Iterator[list[Document]]:
        searcher = self._searcher()
        after = -1
        while True:
            with self._failing("read"):
                parts = (
                    []
                    if under is None
                    else [tantivy.Query.term_query(self.schema, "ancestors", under)]
                )
                if after >= 0:
                    parts.append(
                        tantivy.Query.range_query(
                            self.schema,
                            "id",
                            tantivy.FieldType.Unsigned,
                            after,
                            None,
                            include_lower=False,
                        )
                    )
                query = (
                    tantivy.Query.all_query()
                    if not parts
                    else parts[0]
                    if len(parts) == 1
                    else tantivy.Query.boolean_query([(tantivy.Occur.Must, q) for q in parts])
                )
                result = searcher.search(
                    query, batch, count=False, order_by_field="id", order=tantivy.Order.Asc
                )
                docs = [stored(searcher, address) for _, address in result.hits]
            if not docs:
                return
            yield docs
            after = docs[-1]["id"]

    def count(self) -> int:
        searcher = self._searcher()
        with self._failing("read"):
            return searcher.num_docs

    def check_fields(self, expected: list[Document]) -> dict[int, str]:
        searcher = self._searcher()
        with self._failing("read"):
            return differing(self.schema, self._index, searcher, expected)
