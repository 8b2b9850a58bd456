"""TantivyIndex: the embedded search index, on disk under EPIPE_HOME/index.

Generations live in `g<N>/` directories; the symlink `current` names the live one and is
replaced atomically when a rebuild finishes. One process writes (the index consumer);
any number read, each reopening when `current` moves.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import tantivy

from epipe.db.migrate import schemas_dir
from epipe.index.document import MAX_TEXT_BYTES, Document, annotation_text
from epipe.index.engine import EngineError, Hit, Page
from epipe.search.query import Predicate, QueryError, SearchQuery

_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .build()
)
_PARSER_SPECIAL = set('+-&|!(){}[]^"~*?:\\/ \t\n<>=')
_SORT_FIELDS = {"name": "name_sort", "path": "path", "size": "size", "mtime": "mtime"}
WRITER_HEAP = 128_000_000


def tokens(text: str) -> list[str]:
    """The terms tantivy's default tokenizer makes of `text` (free text never goes through
    the query parser)."""
    return list(_ANALYZER.analyze(text))


def build_schema() -> tantivy.Schema:
    spec = json.loads((schemas_dir() / "index" / "tantivy-fields.json").read_text())
    builder = tantivy.SchemaBuilder()
    for field in spec["fields"]:
        name, kind = field["name"], field["type"]
        stored = field.get("stored", False)
        if kind == "unsigned":
            builder.add_unsigned_field(
                name,
                stored=stored,
                indexed=field.get("indexed", False),
                fast=field.get("fast", False),
            )
        elif kind == "date":
            builder.add_date_field(
                name,
                stored=stored,
                indexed=field.get("indexed", False),
                fast=field.get("fast", False),
            )
        elif kind == "text":
            builder.add_text_field(
                name,
                stored=stored,
                fast=field.get("fast", False),
                tokenizer_name=field["tokenizer"],
            )
        elif kind == "json":
            builder.add_json_field(
                name,
                stored=stored,
                fast=field.get("fast", False),
                tokenizer_name=field["tokenizer"],
                expand_dots_enabled=field.get("expand_dots", False),
            )
        elif kind == "bytes":
            builder.add_bytes_field(name, stored=stored, indexed=False, fast=False)
        else:
            raise EngineError(f"tantivy-fields.json: unknown field type {kind!r}")
    return builder.build()


class TantivyStore:
    """The generations under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.schema = build_schema()

    @property
    def _link(self) -> Path:
        return self.root / "current"

    def current_generation(self) -> str | None:
        try:
            return os.readlink(self._link)
        except OSError:
            return None

    def current(self, *, writable: bool) -> TantivyIndex:
        generation = self.current_generation()
        if generation is None:
            generation, index = self.new_generation()
            index.close()
            self.activate(generation)
        try:
            return TantivyIndex(
                self.root / generation, self.schema, writable=writable, generation=generation
            )
        except EngineError:
            if self.current_generation() == generation:
                raise
            return self.current(writable=writable)  # swapped meanwhile: open the new one

    def new_generation(self) -> tuple[str, TantivyIndex]:
        self.root.mkdir(parents=True, exist_ok=True)
        existing = [int(p.name[1:]) for p in self.root.glob("g*") if p.name[1:].isdigit()]
        generation = f"g{max(existing, default=0) + 1}"
        path = self.root / generation
        path.mkdir()
        return generation, TantivyIndex(path, self.schema, writable=True, generation=generation)

    def activate(self, generation: str) -> None:
        """Point `current` at `generation` (atomic rename). The generation it replaces stays
        until the next swap, for readers that resolved the link just before; older ones go
        (a reader holding one open keeps its files)."""
        previous = self.current_generation()
        temporary = self.root / f".current-{os.getpid()}"
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(generation)
        os.replace(temporary, self._link)
        for old in self.root.glob("g*"):
            if old.name not in (generation, previous) and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def discard(self, generation: str) -> None:
        if generation != self.current_generation():
            shutil.rmtree(self.root / generation, ignore_errors=True)


class TantivyIndex:
    def __init__(
        self, path: Path, schema: tantivy.Schema, *, writable: bool, generation: str = ""
    ) -> None:
        self.path = path
        self.generation = generation
        self.schema = schema
        try:
            self._index = tantivy.Index(schema, str(path), reuse=True)
            self._writer = self._index.writer(WRITER_HEAP, 1) if writable else None
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot open the tantivy index at {path}: {exc}") from None

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, docs: list[Document]) -> list[tuple[int, str]]:
        writer = self._need_writer()
        self.delete(doc["id"] for doc in docs)
        rejected = []
        for doc in docs:
            try:
                writer.add_document(self._document(doc))
            except (ValueError, TypeError, OverflowError) as exc:
                rejected.append((doc["id"], f"tantivy refused the document: {exc}"))
        return rejected

    # Deletes go through schema-aware queries: delete_documents_by_term would make a signed
    # term of a Python int and match nothing in these unsigned fields.
    def delete(self, ids: Iterable[int], version: int | None = None) -> None:
        self._delete_where("id", list(ids))  # one writer, in order: no version needed

    def _delete_where(self, field: str, values: list[int]) -> None:
        if values:
            self._need_writer().delete_documents_by_query(
                tantivy.Query.term_set_query(self.schema, field, values)
            )

    def delete_all(self) -> None:
        self._need_writer().delete_all_documents()

    def commit(self) -> None:
        self._need_writer().commit()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.wait_merging_threads()
            self._writer = None

    def _need_writer(self) -> Any:
        if self._writer is None:
            raise EngineError("this tantivy index was opened read-only")
        return self._writer

    def _document(self, doc: Document) -> tantivy.Document:
        out = tantivy.Document()
        out.add_unsigned("id", doc["id"])
        if doc["parent_id"] is not None:
            out.add_unsigned("parent_id", doc["parent_id"])
        for ancestor in doc["ancestors"]:
            out.add_unsigned("ancestors", ancestor)
        out.add_text("name", doc["name"])
        out.add_text("name_sort", doc["name"])
        out.add_text("path", doc["path"])
        out.add_text("path_text", doc["path"])
        for field in ("kind", "ext", "owner", "group"):
            out.add_text(field, doc[field])
        if doc["project"] is not None:
            out.add_text("project", doc["project"])
        out.add_unsigned("size", doc["size"])
        out.add_date("mtime", datetime.fromisoformat(doc["mtime"]))
        out.add_date("ctime", datetime.fromisoformat(doc["ctime"]))
        source = orjson.dumps(doc)
        if doc["xattrs"]:  # no string can be too long to index in a short document
            xattrs = doc["xattrs"] if len(source) <= MAX_TEXT_BYTES else _indexable(doc["xattrs"])
            out.add_json("xattrs", xattrs)
            out.add_text("annotation_text", annotation_text(doc["xattrs"]))
        out.add_unsigned("version", doc["version"])
        out.add_bytes("source", source)
        return out

    # -- reads -------------------------------------------------------------------------------

    def _searcher(self) -> Any:
        self._index.reload()
        return self._index.searcher()

    def search(self, query: SearchQuery) -> Page:
        searcher = self._searcher()
        compiled = self._compile(query, searcher)
        if compiled is None:
            return Page([], 0)
        sort = query.sort if query.sort != "score" or query.text else "path"
        kwargs: dict[str, Any] = {}
        if sort != "score":
            field = _SORT_FIELDS[sort.lstrip("-")]
            kwargs = {
                "order_by_field": field,
                "order": tantivy.Order.Desc if sort.startswith("-") else tantivy.Order.Asc,
            }
        result = searcher.search(compiled, query.limit, count=True, offset=query.offset, **kwargs)
        hits = []
        for key, address in result.hits:
            doc = orjson.loads(searcher.doc(address)["source"][0])
            hits.append(Hit(doc, float(key) if sort == "score" else None))
        return Page(hits, result.count or 0)

    def get(self, ids: Iterable[int]) -> dict[int, Document]:
        wanted = list(ids)
        if not wanted:
            return {}
        searcher = self._searcher()
        query = tantivy.Query.term_set_query(self.schema, "id", wanted)
        result = searcher.search(query, len(wanted), count=False)
        docs = (orjson.loads(searcher.doc(a)["source"][0]) for _, a in result.hits)
        return {doc["id"]: doc for doc in docs}

    def scan(self, batch: int = 5_000) -> Iterator[list[Document]]:
        searcher = self._searcher()
        after = -1
        while True:
            query = (
                tantivy.Query.all_query()
                if after < 0
                else tantivy.Query.range_query(
                    self.schema, "id", tantivy.FieldType.Unsigned, after, None, include_lower=False
                )
            )
            result = searcher.search(
                query, batch, count=False, order_by_field="id", order=tantivy.Order.Asc
            )
            docs = [orjson.loads(searcher.doc(a)["source"][0]) for _, a in result.hits]
            if not docs:
                return
            yield docs
            after = docs[-1]["id"]

    def count(self) -> int:
        return int(self._searcher().num_docs)

    # -- query translation -------------------------------------------------------------------

    def _compile(self, query: SearchQuery, searcher: Any) -> Any | None:
        """The tantivy query of `query`, or None when nothing can match."""
        schema, q = self.schema, tantivy.Query
        must: list[Any] = []
        if query.text:
            words = tokens(query.text)
            if not words:
                raise QueryError("q", "has no searchable words")
            for word in words:
                must.append(
                    q.boolean_query(
                        [
                            (tantivy.Occur.Should, q.term_query(schema, field, word))
                            for field in ("name", "path_text", "annotation_text")
                        ]
                    )
                )
        if query.under not in (None, "/"):
            directory = searcher.search(q.term_query(schema, "path", query.under), 1, count=False)
            if not directory.hits:
                return None
            ids = searcher.fast_field_values("id", [directory.hits[0][1]])
            must.append(q.term_query(schema, "ancestors", ids[0]))
        for field, value in (("kind", query.type), ("ext", query.ext), ("owner", query.owner)):
            if value is not None:
                must.append(q.term_query(schema, field, value.lower() if field == "ext" else value))
        if query.size_min is not None or query.size_max is not None:
            must.append(
                q.range_query(
                    schema, "size", tantivy.FieldType.Unsigned, query.size_min, query.size_max
                )
            )
        if query.modified_after is not None or query.modified_before is not None:
            must.append(
                q.range_query(
                    schema,
                    "mtime",
                    tantivy.FieldType.Date,
                    query.modified_after,
                    query.modified_before,
                )
            )
        for predicate in query.xattr:
            must.append(self._predicate(predicate))
        if query.projects is not None:
            if not query.projects:
                return None
            must.append(q.term_set_query(schema, "project", sorted(query.projects)))
        if not must:
            return q.all_query()
        return q.boolean_query([(tantivy.Occur.Must, m) for m in must])

    def _predicate(self, predicate: Predicate) -> Any:
        q, schema = tantivy.Query, self.schema
        path = "xattrs." + ".".join(predicate.keys)
        exists = q.exists_query(path, json_subpaths=True)
        value = predicate.value
        if predicate.op == "exists" or (predicate.op == "!=" and value is None):
            return exists
        if value is None:  # = null: the key is absent
            return q.boolean_query(
                [(tantivy.Occur.Must, q.all_query()), (tantivy.Occur.MustNot, exists)]
            )
        if predicate.op in ("=", "!="):
            term = q.term_query(schema, path, value)
            if predicate.op == "=":
                return term
            return q.boolean_query([(tantivy.Occur.Must, exists), (tantivy.Occur.MustNot, term)])
        # Numeric ranges on JSON keys only go through the query parser: escape the path.
        field = "xattrs." + ".".join(_escape(k) for k in predicate.keys)
        try:
            return self._index.parse_query(f"{field}:{predicate.op}{_number(value)}")
        except ValueError as exc:
            raise QueryError(f"xattr {predicate.text!r}", f"not a valid range: {exc}") from None


def _escape(key: str) -> str:
    return "".join("\\" + c if c in _PARSER_SPECIAL else c for c in key)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryError("xattr", f"a range needs a number, got {value!r}")
    text = repr(value)
    if "e" in text or "E" in text or "inf" in text or "nan" in text:
        raise QueryError("xattr", f"number {value!r} is out of range for a comparison")
    return text


def _indexable(xattrs: dict[str, Any]) -> Any:
    """Strings longer than MAX_TEXT_BYTES stay in the source but are not indexed as terms."""
    if isinstance(xattrs, dict):
        return {
            k: _indexable(v)
            for k, v in xattrs.items()
            if not (isinstance(v, str) and len(v.encode()) > MAX_TEXT_BYTES)
        }
    if isinstance(xattrs, list):
        return [
            _indexable(v)
            for v in xattrs
            if not (isinstance(v, str) and len(v.encode()) > MAX_TEXT_BYTES)
        ]
    return xattrs
