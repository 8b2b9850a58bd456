"""ElasticsearchIndex: the scale-out search index, on elasticsearch-py.

Writes are whole documents with external versioning by commit LSN (`external_gte`): a write
older than what the index holds is refused by Elasticsearch and ignored here, so replays and
concurrent consumers converge; deletes carry their LSN too, so a stale write within
`index.gc_deletes` cannot resurrect a document. Generations are indices `epipe-files-<n>`
behind the alias `epipe-files`, swapped atomically after a rebuild. Annotations become typed
key/value pairs (`attrs`): the mapping never grows with user keys. Free text is split into
the words of epipe.search.words by the template's analyzer `epipe_words` (as tantivy splits
it) and scores by field boosts alone (boolean similarity), never BM25, whose statistics span
every project.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError, helpers

from epipe.db.migrate import schemas_dir
from epipe.index import elasticsearch_meta, scoring
from epipe.index.document import (
    FIELDS,
    MAX_TEXT_BYTES,
    Document,
    annotation_text,
    indexed_annotations,
    leaves,
)
from epipe.index.engine import EngineError, Hit, Page
from epipe.index.paging import order_of
from epipe.index.position import IndexPosition
from epipe.search.query import Predicate, QueryError, SearchQuery

ALIAS = "epipe-files"
TEMPLATE = "epipe-files"
SORT_FIELDS = {"name": "name.raw", "path": "path", "size": "size", "mtime": "mtime"}
# Free text: every word in some field (cross_fields, operator and), scoring the boost of the
# best field holding it (tie_breaker 0). The template gives these fields the boolean
# similarity, which scores a term its boost and reads no statistics (epipe.index.scoring),
# and the analyzer ANALYZER, which makes the words of epipe.search.words of their text; the
# query names it too, so the words of q are those of the documents (and the fields one
# group for cross_fields) on any index: one made by an older template, without it, fails.
ANALYZER = "epipe_words"
TEXT_FIELDS = [
    f"name^{scoring.NAME}",
    f"path.text^{scoring.PATH}",
    f"annotation_text^{scoring.ANNOTATIONS}",
]


@contextmanager
def map_exceptions(action: str) -> Iterator[None]:
    """Failures of Elasticsearch inside the block raise EngineError("cannot {action}: …"):
    an answer with an error status (ApiError) or none at all (TransportError: connection,
    timeout, TLS, serialization). A NotFoundError the caller expects is caught inside."""
    try:
        yield
    except (ApiError, TransportError) as exc:
        raise EngineError(f"cannot {action}: {exc}") from None


@contextmanager
def analyzer_required(index: str) -> Iterator[None]:
    """A free-text search fails on an index made by a template before version 5, which has
    no ANALYZER, with an error naming it: say what to do instead."""
    try:
        yield
    except ApiError as exc:
        if ANALYZER not in str(exc):
            raise
        raise EngineError(
            f"cannot search the index {index}: it has no analyzer {ANALYZER} (made by an "
            f"Elasticsearch template before version 5): run `epipe reindex` ({exc})"
        ) from None


def attrs(xattrs: dict[str, Any]) -> list[dict[str, Any]]:
    """Annotations as typed pairs: one {key, num|str|bool} per leaf value, the key led by
    the namespace (`user.labels.camera`, `system.acl`: Predicate.path) (pure)."""
    out = []
    for key, value in leaves(indexed_annotations(xattrs)):
        if isinstance(value, bool):
            out.append({"key": key, "bool": value})
        elif isinstance(value, int | float):
            out.append({"key": key, "num": value})
        elif isinstance(value, str):
            out.append({"key": key, "str": value})
    return out


def body(doc: Document) -> dict[str, Any]:
    """The Elasticsearch source of a document: the document, plus the indexed derivations."""
    return {**doc, "attrs": attrs(doc["xattrs"]), "annotation_text": annotation_text(doc["xattrs"])}


def document(source: dict[str, Any]) -> Document:
    """The document in an Elasticsearch source (without the indexed derivations)."""
    return cast(Document, {key: source[key] for key in FIELDS if key in source})


def _client(url: str) -> Elasticsearch:
    try:
        return Elasticsearch(url, request_timeout=60, retry_on_timeout=True, max_retries=3)
    except ValueError as exc:  # not a URL
        raise EngineError(f"EPIPE_ES_URL: {exc}") from None


class ElasticsearchStore:
    def __init__(self, url: str) -> None:
        self.client = _client(url)
        spec = json.loads((schemas_dir() / "index" / "elasticsearch-template.json").read_text())
        with map_exceptions(f"install the index template at {url} (EPIPE_ES_URL)"):
            self.client.indices.put_index_template(
                name=TEMPLATE,
                index_patterns=spec["index_patterns"],
                priority=spec["priority"],
                template=spec["template"],
                version=spec["version"],
            )

    def _generations(self) -> list[str]:
        with map_exceptions(f"list the indices {ALIAS}-*"):
            try:
                found = self.client.indices.get(index=f"{ALIAS}-*", expand_wildcards="open")
            except NotFoundError:
                return []
        return sorted(found.keys(), key=lambda name: int(name.rsplit("-", 1)[1]))

    def current_generation(self) -> str | None:
        with map_exceptions(f"read the alias {ALIAS}"):
            try:
                found = self.client.indices.get_alias(name=ALIAS)
            except NotFoundError:
                return None
        return next(iter(found.keys()), None)

    def hold_writer(self, role: str) -> elasticsearch_meta.SharedWriter:
        return elasticsearch_meta.SharedWriter()

    def position(self, generation: str) -> IndexPosition | None:
        with map_exceptions(f"read the position of {generation}"):
            return elasticsearch_meta.read_position(self.client, generation)

    def record_position(self, generation: str, position: IndexPosition) -> None:
        with map_exceptions(f"record the position of {generation}"):
            elasticsearch_meta.write_position(self.client, generation, position)

    def reader(self) -> ElasticsearchIndex:
        self.current(writable=False)  # the alias exists from here on
        return ElasticsearchIndex(self.client, ALIAS)  # moved atomically by `activate`

    def current(self, *, writable: bool) -> ElasticsearchIndex:
        generation = self.current_generation()
        if generation is None:
            generation, _ = self.new_generation()
            self.activate(generation)
        return ElasticsearchIndex(self.client, generation)

    def new_generation(self) -> tuple[str, ElasticsearchIndex]:
        existing = self._generations()
        number = int(existing[-1].rsplit("-", 1)[1]) + 1 if existing else 1
        name = f"{ALIAS}-{number}"
        with map_exceptions(f"create the index {name}"):
            self.client.indices.create(index=name)
        return name, ElasticsearchIndex(self.client, name)

    def activate(self, generation: str) -> None:
        """Move the alias in one atomic request, then drop older generations but the one it
        replaced (a consumer still writing to it finds it is no longer current and stops,
        instead of writing to an index that was deleted and made again on its write)."""
        actions: list[dict[str, Any]] = [
            {"add": {"index": generation, "alias": ALIAS, "is_write_index": True}}
        ]
        current = self.current_generation()
        if current and current != generation:
            actions.insert(0, {"remove": {"index": current, "alias": ALIAS}})
        with map_exceptions(f"move the alias {ALIAS} to {generation}"):
            self.client.indices.update_aliases(actions=actions)
        for name in self._generations():
            if name not in (generation, current):
                with map_exceptions(f"delete the old index {name}"):
                    self.client.indices.delete(index=name, ignore_unavailable=True)

    def discard(self, generation: str) -> None:
        if generation != self.current_generation():
            with map_exceptions(f"delete the index {generation}"):
                self.client.indices.delete(index=generation, ignore_unavailable=True)


class ElasticsearchIndex:
    def __init__(self, client: Elasticsearch, name: str) -> None:
        self.client = client
        self.name = name

    @property
    def generation(self) -> str:
        return self.name

    # -- writes ------------------------------------------------------------------------------

    def upsert(self, docs: list[Document]) -> list[tuple[int, str]]:
        actions = (
            {
                "_op_type": "index",
                "_index": self.name,
                "_id": str(doc["id"]),
                "version": doc["version"],
                "version_type": "external_gte",
                "_source": body(doc),
            }
            for doc in docs
        )
        return self._bulk(actions)

    def delete(self, ids: Iterable[int], version: int | None = None) -> None:
        actions = (
            {
                "_op_type": "delete",
                "_index": self.name,
                "_id": str(i),
                **({"version": version, "version_type": "external_gte"} if version else {}),
            }
            for i in ids
        )
        for inode_id, reason in self._bulk(actions):
            raise EngineError(f"Elasticsearch refused to delete {inode_id}: {reason}")

    def _bulk(self, actions: Iterable[dict[str, Any]]) -> list[tuple[int, str]]:
        rejected = []
        with map_exceptions(f"write to the index {self.name} (bulk request)"):
            for ok, item in helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=1000,
                raise_on_error=False,
                raise_on_exception=False,
            ):
                if ok:
                    continue
                ((op, result),) = item.items()
                status = result.get("status")
                if status == 409 or (op == "delete" and status == 404):
                    continue  # a newer version is there already / already gone
                reason = result.get("error", {})
                rejected.append(
                    (
                        int(result["_id"]),
                        f"Elasticsearch refused it ({status}): "
                        f"{reason.get('type')}: {reason.get('reason')}",
                    )
                )
        return rejected

    def delete_below(self, dirs: Iterable[int]) -> None:
        wanted = list(dirs)
        if wanted:
            with map_exceptions(f"delete from the index {self.name} (by ancestors)"):
                self.client.delete_by_query(
                    index=self.name,
                    query={"terms": {"ancestors": wanted}},
                    conflicts="proceed",  # a newer write of a moved-out document wins
                    refresh=False,  # searchable at the sink's commit (a refresh)
                    slices="auto",
                )

    def delete_all(self) -> None:
        with map_exceptions(f"empty the index {self.name}"):
            self.client.delete_by_query(
                index=self.name,
                query={"match_all": {}},
                conflicts="proceed",
                refresh=True,
                slices="auto",
            )

    def commit(self) -> None:
        with map_exceptions(f"refresh the index {self.name}"):
            self.client.indices.refresh(index=self.name)

    def close(self) -> None:
        pass  # the store owns the client

    # -- reads -------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> Page:
        """Hits in (sort key, id) order (epipe.index.paging), resumed by `search_after`."""
        extra: dict[str, Any] = {}
        if query.after is not None:
            extra["search_after"] = list(query.after)
        with map_exceptions(f"search the index {self.name}"), analyzer_required(self.name):
            compiled = self._compile(query)
            if compiled is None:
                return Page([], 0)
            result = self.client.search(
                index=self.name,
                query=compiled,
                sort=_sort(query),
                from_=query.offset,
                size=query.limit,
                track_total_hits=True,
                **extra,
            )
        hits = [
            Hit(document(h["_source"]), h.get("_score"), h["sort"][0])
            for h in result["hits"]["hits"]
        ]
        return Page(hits, int(result["hits"]["total"]["value"]))

    def get(self, ids: Iterable[int]) -> dict[int, Document]:
        wanted = [str(i) for i in ids]
        if not wanted:
            return {}
        with map_exceptions(f"read the index {self.name}"):
            found = self.client.mget(index=self.name, ids=wanted)
        return {int(d["_id"]): document(d["_source"]) for d in found["docs"] if d.get("found")}

    def scan(self, batch: int = 5_000, *, under: int | None = None) -> Iterator[list[Document]]:
        after: list[Any] | None = None
        query = {"match_all": {}} if under is None else {"term": {"ancestors": under}}
        while True:
            with map_exceptions(f"read the index {self.name}"):
                result = self.client.search(
                    index=self.name,
                    query=query,
                    sort=[{"id": "asc"}],
                    size=batch,
                    search_after=after,
                )
            hits = result["hits"]["hits"]
            if not hits:
                return
            yield [document(h["_source"]) for h in hits]
            after = hits[-1]["sort"]

    def count(self) -> int:
        with map_exceptions(f"count the documents of {self.name}"):
            return int(self.client.count(index=self.name)["count"])

    def check_fields(self, expected: list[Document]) -> dict[int, str]:
        with map_exceptions(f"read the doc values of {self.name}"):
            return elasticsearch_meta.differing(self.client, self.name, expected)

    # -- query translation -------------------------------------------------------------------

    def _compile(self, query: SearchQuery) -> dict[str, Any] | None:
        must: list[dict[str, Any]] = []
        filters: list[dict[str, Any]] = []
        if query.text:
            must.append(
                {
                    "multi_match": {
                        "query": query.text,
                        "operator": "and",
                        "type": "cross_fields",
                        "tie_breaker": 0.0,
                        "fields": TEXT_FIELDS,
                        "analyzer": ANALYZER,
                    }
                }
            )
        if query.under not in (None, "/"):
            found = self.client.search(
                index=self.name,
                query={"term": {"path": query.under}},
                size=1,
                source_includes=["id"],
            )
            if not found["hits"]["hits"]:
                return None
            filters.append({"term": {"ancestors": found["hits"]["hits"][0]["_source"]["id"]}})
        for field, value in (
            ("kind", query.type),
            ("ext", query.ext),
            ("artifact", query.artifact),
            ("owner", query.owner),
        ):
            if value is not None:
                filters.append({"term": {field: value.lower() if field == "ext" else value}})
        if query.size_min is not None or query.size_max is not None:
            filters.append({"range": {"size": _bounds(query.size_min, query.size_max)}})
        if query.modified_after is not None or query.modified_before is not None:
            filters.append(
                {
                    "range": {
                        "mtime": _bounds(
                            query.modified_after.isoformat() if query.modified_after else None,
                            query.modified_before.isoformat() if query.modified_before else None,
                        )
                    }
                }
            )
        filters.extend(_predicate(p) for p in query.xattr)
        if query.projects is not None:
            if not query.projects:
                return None
            filters.append({"terms": {"project": sorted(query.projects)}})
        if not must and not filters:
            return {"match_all": {}}
        return {"bool": {"must": must, "filter": filters}}


def _sort(query: SearchQuery) -> list[Any]:
    """The sort key, then the id: equal keys go by id (a cursor is (key, id))."""
    order = order_of(query, SORT_FIELDS)
    if order.field is None:
        return ["_score", {"id": "asc"}]
    return [{order.field: "desc" if order.descending else "asc"}, {"id": "asc"}]


def _bounds(low: Any, high: Any) -> dict[str, Any]:
    return {k: v for k, v in (("gte", low), ("lte", high)) if v is not None}


def _nested(query: dict[str, Any]) -> dict[str, Any]:
    return {"nested": {"path": "attrs", "query": query}}


def _predicate(predicate: Predicate) -> dict[str, Any]:
    key = ".".join(predicate.path)
    exists = _nested(
        {"bool": {"should": [{"term": {"attrs.key": key}}, {"prefix": {"attrs.key": key + "."}}]}}
    )
    value = predicate.value
    if predicate.op == "exists" or (predicate.op == "!=" and value is None):
        return exists
    if value is None:
        return {"bool": {"must_not": [exists]}}
    if isinstance(value, bool):
        match: dict[str, Any] = {"term": {"attrs.bool": value}}
    elif isinstance(value, int | float):
        if predicate.op in (">", ">=", "<", "<="):
            bound = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[predicate.op]
            return _nested(
                {
                    "bool": {
                        "filter": [
                            {"term": {"attrs.key": key}},
                            {"range": {"attrs.num": {bound: value}}},
                        ]
                    }
                }
            )
        match = {"term": {"attrs.num": value}}
    elif len(value.encode()) > MAX_TEXT_BYTES:
        raise QueryError(f"xattr {predicate.text!r}", "value too long to compare")
    else:
        match = {"term": {"attrs.str": value}}
    equal = _nested({"bool": {"filter": [{"term": {"attrs.key": key}}, match]}})
    if predicate.op == "=":
        return equal
    return {"bool": {"filter": [exists], "must_not": [equal]}}
