"""ElasticsearchIndex: the scale-out search index, on elasticsearch-py.

Writes are whole documents with external versioning by commit LSN (`external_gte`): a write
older than what the index holds is refused by Elasticsearch and ignored here, so replays and
concurrent consumers converge; deletes carry their LSN too, so a stale write within
`index.gc_deletes` cannot resurrect a document. Generations are indices `epipe-files-<n>`
behind the alias `epipe-files`, swapped atomically after a rebuild. Annotations become typed
key/value pairs (`attrs`): the mapping never grows with user keys.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError, TransportError, helpers

from epipe.db.migrate import schemas_dir
from epipe.index.document import MAX_TEXT_BYTES, Document, annotation_text, leaves
from epipe.index.engine import EngineError, Hit, Page
from epipe.search.query import Predicate, QueryError, SearchQuery

ALIAS = "epipe-files"
TEMPLATE = "epipe-files"
_DOCUMENT_FIELDS = (
    "id",
    "parent_id",
    "name",
    "path",
    "ancestors",
    "kind",
    "ext",
    "size",
    "mode",
    "owner",
    "group",
    "project",
    "mtime",
    "ctime",
    "xattrs",
    "version",
    "skipped",
)
_SORT_FIELDS = {"name": "name.raw", "path": "path", "size": "size", "mtime": "mtime"}


def attrs(xattrs: dict[str, Any]) -> list[dict[str, Any]]:
    """Annotations as typed pairs: one {key, num|str|bool} per leaf value (pure)."""
    out = []
    for key, value in leaves(xattrs):
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
    return {key: source[key] for key in _DOCUMENT_FIELDS if key in source}


def _client(url: str) -> Elasticsearch:
    return Elasticsearch(url, request_timeout=60, retry_on_timeout=True, max_retries=3)


class ElasticsearchStore:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = _client(url)
        spec = json.loads((schemas_dir() / "index" / "elasticsearch-template.json").read_text())
        try:
            self.client.indices.put_index_template(
                name=TEMPLATE,
                index_patterns=spec["index_patterns"],
                priority=spec["priority"],
                template=spec["template"],
                version=spec["version"],
            )
        except (ApiError, TransportError) as exc:
            raise EngineError(
                f"EPIPE_ES_URL: cannot install the index template at {url}: {exc}"
            ) from None

    def _generations(self) -> list[str]:
        try:
            found = self.client.indices.get(index=f"{ALIAS}-*", expand_wildcards="open")
        except NotFoundError:
            return []
        return sorted(found.keys(), key=lambda name: int(name.rsplit("-", 1)[1]))

    def current_generation(self) -> str | None:
        try:
            found = self.client.indices.get_alias(name=ALIAS)
        except NotFoundError:
            return None
        return next(iter(found.keys()), None)

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
        try:
            self.client.indices.create(index=name)
        except (ApiError, TransportError) as exc:
            raise EngineError(f"cannot create index {name}: {exc}") from None
        return name, ElasticsearchIndex(self.client, name)

    def activate(self, generation: str) -> None:
        """Move the alias in one atomic request, then drop older generations."""
        actions: list[dict[str, Any]] = [
            {"add": {"index": generation, "alias": ALIAS, "is_write_index": True}}
        ]
        current = self.current_generation()
        if current and current != generation:
            actions.insert(0, {"remove": {"index": current, "alias": ALIAS}})
        self.client.indices.update_aliases(actions=actions)
        for name in self._generations():
            if name != generation:
                self.client.indices.delete(index=name, ignore_unavailable=True)

    def discard(self, generation: str) -> None:
        if generation != self.current_generation():
            self.client.indices.delete(index=generation, ignore_unavailable=True)


class ElasticsearchIndex:
    def __init__(self, client: Elasticsearch, name: str) -> None:
        self.client = client
        self.name = name

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
        try:
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
        except TransportError as exc:
            raise EngineError(f"Elasticsearch bulk request failed: {exc}") from None
        return rejected

    def delete_all(self) -> None:
        self._delete_by_query({"match_all": {}})

    def _delete_by_query(self, query: dict[str, Any]) -> None:
        try:
            self.client.delete_by_query(
                index=self.name, query=query, conflicts="proceed", refresh=True, slices="auto"
            )
        except (ApiError, TransportError) as exc:
            raise EngineError(f"Elasticsearch delete_by_query failed: {exc}") from None

    def commit(self) -> None:
        try:
            self.client.indices.refresh(index=self.name)
        except (ApiError, TransportError) as exc:
            raise EngineError(f"Elasticsearch refresh failed: {exc}") from None

    def close(self) -> None:
        pass  # the store owns the client

    # -- reads -------------------------------------------------------------------------------

    def search(self, query: SearchQuery) -> Page:
        compiled = self._compile(query)
        if compiled is None:
            return Page([], 0)
        sort_name = query.effective_sort
        sort: list[Any] = ["_score", {"id": "asc"}]
        if sort_name != "score":
            field = _SORT_FIELDS[sort_name.lstrip("-")]
            sort = [{field: "desc" if sort_name.startswith("-") else "asc"}, {"id": "asc"}]
        extra: dict[str, Any] = {}
        if query.after is not None:
            extra["search_after"] = list(query.after)
        try:
            result = self.client.search(
                index=self.name,
                query=compiled,
                sort=sort,
                from_=query.offset,
                size=query.limit,
                track_total_hits=True,
                **extra,
            )
        except ApiError as exc:
            raise EngineError(f"Elasticsearch search failed: {exc}") from None
        hits = [
            Hit(document(h["_source"]), h.get("_score"), h["sort"][0])
            for h in result["hits"]["hits"]
        ]
        return Page(hits, int(result["hits"]["total"]["value"]))

    def get(self, ids: Iterable[int]) -> dict[int, Document]:
        wanted = [str(i) for i in ids]
        if not wanted:
            return {}
        found = self.client.mget(index=self.name, ids=wanted)
        return {int(d["_id"]): document(d["_source"]) for d in found["docs"] if d.get("found")}

    def scan(self, batch: int = 5_000) -> Iterator[list[Document]]:
        after: list[Any] | None = None
        while True:
            result = self.client.search(
                index=self.name,
                query={"match_all": {}},
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
        return int(self.client.count(index=self.name)["count"])

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
                        "fields": ["name", "path.text", "annotation_text"],
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
        for field, value in (("kind", query.type), ("ext", query.ext), ("owner", query.owner)):
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


def _bounds(low: Any, high: Any) -> dict[str, Any]:
    return {k: v for k, v in (("gte", low), ("lte", high)) if v is not None}


def _nested(query: dict[str, Any]) -> dict[str, Any]:
    return {"nested": {"path": "attrs", "query": query}}


def _predicate(predicate: Predicate) -> dict[str, Any]:
    key = ".".join(predicate.keys)
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
