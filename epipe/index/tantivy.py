"""TantivyIndex: the embedded search index, on disk under EPIPE_HOME/index.

Generations live in `g<N>/` directories; the symlink `current` names the live one and is
replaced atomically when a rebuild finishes. One process writes (the index consumer);
any number read, each reopening when `current` moves.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        if kind in ("unsigned", "date"):
            add = builder.add_unsigned_field if kind == "unsigned" else builder.add_date_field
            add(
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

    def reader(self) -> TantivyIndex:
        index = self.current(writable=False)
        index.follow = self
        return index

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
        self.follow: TantivyStore | None = None  # set on a reader that follows swaps
        try:
            self._index = tantivy.Index(schema, str(path), reuse=True)
            self._writer = self._index.writer(WRITER_HEAP, 1) if writable else None
        except (OSError, ValueError) as exc:
            if "schema does not match" in str(exc):
                raise EngineError(
                    f"the tantivy index at {path} has the fields of another epipe version: "
                    "run `epipe reindex` to build one with the current fields"
                ) from None
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
        out.add_text("name_sort", doc["name"])
        out.add_text("path", doc["path"])
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
        words = annotation_text(doc["xattrs"]) if doc["xattrs"] else ""
        out.add_text("text", f"{doc['name']} {doc['path']} {words}")
        out.add_unsigned("version", doc["version"])
        out.add_bytes("source", source)
        return out

    # -- reads -------------------------------------------------------------------------------

    def _searcher(self) -> Any:
        if self.follow is not None and self.follow.current_generation() != self.generation:
            latest = self.follow.current(writable=False)  # a rebuild swapped generations
            self._index, self.path, self.generation = latest._index, latest.path, latest.generation
        self._index.reload()
        return self._index.searcher()

    def search(self, query: SearchQuery) -> Page:
        """Hits in (sort key, id) order: ties are broken by id, so pages and cursors are
        deterministic. tantivy orders by one key only, so a window of hits is fetched in its
        order and ordered exactly here; when the page ends inside a group of equal keys that
        may reach past the window, the window widens and, for a large group, the group is
        also read apart in id order (`_Ties`), whichever settles the page first."""
        searcher = self._searcher()
        compiled = self._compile(query, searcher)
        if compiled is None:
            return Page([], 0)
        sort = query.effective_sort
        descending = sort == "score" or sort.startswith("-")
        kwargs: dict[str, Any] = {}
        if sort != "score":
            kwargs = {
                "order_by_field": _SORT_FIELDS[sort.lstrip("-")],
                "order": tantivy.Order.Desc if descending else tantivy.Order.Asc,
            }
        after = query.after
        need = query.offset + query.limit
        # Relevance ties are common and costly to settle; a wide first window costs little.
        window = first = max(2 * need, 1024 if sort == "score" else 64)
        ties: _Ties | None = None
        while True:
            result = searcher.search(compiled, window, count=True, **kwargs)
            entries = _ordered(searcher, result.hits, descending)
            if after is not None:
                entries = [e for e in entries if _beyond(e, after, descending)]
            if len(result.hits) < window:
                break  # every match is in the window
            end = result.hits[-1][0]
            if len(entries) >= need and _strictly(end, entries[need - 1][0], descending):
                break
            if after is None or not _strictly(after[0], end, descending):
                above = [e for e in entries if e[0] != end]
                in_window = sum(1 for k, _ in result.hits if k == end)
                if ties is None or ties.key != end:
                    lowest = after[1] if after is not None and after[0] == end else None
                    share = in_window / max(result.count or 0, window)  # of matches, at least
                    ties = _Ties(self, searcher, compiled, sort, end, lowest, share)
                sample = [e[1] for e in entries if e[0] == end]
                # A small group at the window's end is found sooner by widening the window.
                large = in_window * 2 >= window or len(sample) >= need - len(above)
                if sort != "score" or large or window > first:
                    tied = ties.read(need - len(above), sample, len(result.hits) - in_window)
                    if tied is not None and len(above) + len(tied) == need:
                        entries = above + tied
                        break
            window *= 4  # the page reaches past the window's last key
        hits = [
            Hit(
                orjson.loads(searcher.doc(address)["source"][0]),
                float(key) if sort == "score" else None,
                key,
            )
            for key, _, address in entries[query.offset : need]
        ]
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
        """The tantivy query of `query`, or None when nothing can match. Only the words are
        scored; every other clause is a filter adding 0 (as Elasticsearch's filter context)."""
        schema, q, occur = self.schema, tantivy.Query, tantivy.Occur
        scored: list[Any] = []
        filters: list[Any] = []
        if query.text:
            words = tokens(query.text)
            if not words:
                raise QueryError("q", "has no searchable words")
            scored.extend(q.term_query(schema, "text", word) for word in words)
        if query.under not in (None, "/"):
            directory = searcher.search(q.term_query(schema, "path", query.under), 1, count=False)
            if not directory.hits:
                return None
            ids = searcher.fast_field_values("id", [directory.hits[0][1]])
            filters.append(q.term_query(schema, "ancestors", ids[0]))
        for field, value in (("kind", query.type), ("ext", query.ext), ("owner", query.owner)):
            if value is not None:
                filters.append(
                    q.term_query(schema, field, value.lower() if field == "ext" else value)
                )
        if query.size_min is not None or query.size_max is not None:
            filters.append(
                q.range_query(
                    schema, "size", tantivy.FieldType.Unsigned, query.size_min, query.size_max
                )
            )
        if query.modified_after is not None or query.modified_before is not None:
            filters.append(
                q.range_query(
                    schema,
                    "mtime",
                    tantivy.FieldType.Date,
                    _clamp(query.modified_after),
                    _clamp(query.modified_before),
                )
            )
        filters.extend(self._predicate(predicate) for predicate in query.xattr)
        if query.projects is not None:
            if not query.projects:
                return None
            # A disjunction of terms: measured faster than a term set on a million files.
            filters.append(
                q.boolean_query(
                    [
                        (occur.Should, q.term_query(schema, "project", project))
                        for project in sorted(query.projects)
                    ]
                )
            )
        clauses = scored + [q.const_score_query(f, 0.0) for f in filters]
        if not clauses:
            return q.all_query()
        return q.boolean_query([(occur.Must, clause) for clause in clauses])

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


def _ordered(
    searcher: Any, hits: list[tuple[Any, Any]], descending: bool
) -> list[tuple[Any, int, Any]]:
    """(key, id, address) by key (descending or not), ties by id ascending."""
    ids = searcher.fast_field_values("id", [address for _, address in hits])
    entries = sorted(
        zip((k for k, _ in hits), ids, (a for _, a in hits), strict=True), key=lambda e: e[1]
    )
    entries.sort(key=lambda e: e[0], reverse=descending)  # stable: ids stay ascending in ties
    return entries


def _beyond(entry: tuple[Any, int, Any], after: tuple[Any, int], descending: bool) -> bool:
    key, inode_id, _ = entry
    last_key, last_id = after
    if key == last_key:
        return bool(inode_id > last_id)
    return bool(key < last_key if descending else key > last_key)


def _strictly(window_end: Any, key: Any, descending: bool) -> bool:
    """The window reaches past `key`: nothing outside it can still sort before."""
    return bool(window_end < key if descending else window_end > key)


class _Ties:
    """The matches whose sort key is `key`, with ids above `lowest`, in id order.

    A field's key can be searched for: one search ordered by id gives them exactly. A score
    cannot, so two ways are taken:
    - bounded: when the window holds `count` of them, the answer's ids are at most the
      `count`-th of those; one search by score among ids in (lowest, that id] holds all of
      the group there once it reaches a lower score (its limit grows until it does);
    - streamed: otherwise matches are read in id order a chunk per round (the first sized by
      the group's known share of the matches, then four times larger), re-scored by the same
      query restricted to their ids (which adds exactly 0.0 to each score), and those
      scoring `key` kept."""

    def __init__(
        self,
        index: TantivyIndex,
        searcher: Any,
        compiled: Any,
        sort: str,
        key: Any,
        lowest: int | None,
        share: float,
    ) -> None:
        self.index, self.searcher, self.compiled = index, searcher, compiled
        self.sort, self.key, self.lowest = sort, key, lowest
        self.share = share  # the group's share of all matches, as far as known
        self.found: list[tuple[Any, int, Any]] = []
        self.chunk = 0
        self.exhausted = False

    def read(self, count: int, sample: list[int], above: int) -> list[tuple[Any, int, Any]] | None:
        """The first `count` of them (fewer if there are no more); None while unknown.
        `sample`: ids of some of them (the window's, above `lowest`, ascending); `above`: at
        least as many as the matches sorting before them."""
        if self.sort != "score":
            return self._search([self._equal()], count)
        if not self.found and len(sample) >= count:
            return self._bounded(count, sample[count - 1], above)
        if len(self.found) < count and not self.exhausted:
            self.chunk = self.chunk * 4 or 2 * math.ceil(count / max(self.share, 1e-9)) + 64
            chunk = self._search([], self.chunk)
            self.exhausted = len(chunk) < self.chunk
            if chunk:
                self.lowest = chunk[-1][1]
                scores = self._scores([inode_id for _, inode_id, _ in chunk])
                self.found += [(self.key, i, a) for _, i, a in chunk if scores.get(i) == self.key]
        if len(self.found) >= count or self.exhausted:
            return self.found[:count]
        return None

    def _bounded(self, count: int, highest: int, above: int) -> list[tuple[Any, int, Any]]:
        q = tantivy.Query
        ids = q.range_query(
            self.index.schema,
            "id",
            tantivy.FieldType.Unsigned,
            self.lowest,
            highest,
            include_lower=self.lowest is None,
        )
        bounded = q.boolean_query(
            [
                (tantivy.Occur.Must, self.compiled),
                (tantivy.Occur.Must, q.const_score_query(ids, 0.0)),
            ]
        )
        limit = above + 16 * count + 1024  # a retry costs a pass; a longer list, little
        while True:
            result = self.searcher.search(bounded, limit, count=False)
            if len(result.hits) < limit or result.hits[-1][0] != self.key:
                break
            limit *= 4
        addresses = [address for score, address in result.hits if score == self.key]
        group = sorted(
            zip(self.searcher.fast_field_values("id", addresses), addresses, strict=True)
        )
        return [(self.key, inode_id, address) for inode_id, address in group[:count]]

    def _search(self, extra: list[Any], limit: int) -> list[tuple[Any, int, Any]]:
        """Matches (with `extra` clauses) above `lowest`, in id order."""
        q, schema = tantivy.Query, self.index.schema
        must = [self.compiled, *extra]
        if self.lowest is not None:
            must.append(
                q.range_query(
                    schema, "id", tantivy.FieldType.Unsigned, self.lowest, None, include_lower=False
                )
            )
        result = self.searcher.search(
            q.boolean_query([(tantivy.Occur.Must, m) for m in must]),
            limit,
            count=False,
            order_by_field="id",
            order=tantivy.Order.Asc,
        )
        return [(self.key, inode_id, address) for inode_id, address in result.hits]

    def _scores(self, ids: list[int]) -> dict[int, float]:
        q = tantivy.Query
        only = q.const_score_query(q.term_set_query(self.index.schema, "id", ids), 0.0)
        scored = self.searcher.search(
            q.boolean_query([(tantivy.Occur.Must, self.compiled), (tantivy.Occur.Must, only)]),
            len(ids),
            count=False,
        )
        addresses = [address for _, address in scored.hits]
        return dict(
            zip(
                self.searcher.fast_field_values("id", addresses),
                (score for score, _ in scored.hits),
                strict=True,
            )
        )

    def _equal(self) -> Any:
        """Matches whose sort field holds `key` (as a sorted search returns it)."""
        q, schema, field, key = tantivy.Query, self.index.schema, self.sort.lstrip("-"), self.key
        if field == "size":
            return q.range_query(schema, "size", tantivy.FieldType.Unsigned, key, key)
        if field == "mtime":  # keys of dates are nanoseconds since the epoch
            when = _EPOCH + timedelta(microseconds=key // 1000)
            return q.range_query(schema, "mtime", tantivy.FieldType.Date, when, when)
        return q.term_query(schema, _SORT_FIELDS[field], key)


def _clamp(when: datetime | None) -> datetime | None:
    """tantivy stores dates between 1677 and 2262; no file has a time outside them."""
    if when is None:
        return None
    return min(max(when, tantivy.MIN_DATETIME), tantivy.MAX_DATETIME)


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
