"""What an Elasticsearch generation says about itself, beyond its documents: the position
it holds (in its mapping's `_meta`, written after each batch: one small cluster-state
update) and the values its doc values hold for each document (for `epipe verify`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from epipe.index.document import Document
from epipe.index.position import IndexPosition

_META = "epipe_position"
# doc values of the fields searches filter and sort on; dates are left out (their doc
# values are rounded to milliseconds: comparing them needs the engine's rounding)
_FIELDS: dict[str, Callable[[Document], list[Any]]] = {
    "id": lambda doc: [doc["id"]],
    "parent_id": lambda doc: [] if doc["parent_id"] is None else [doc["parent_id"]],
    "size": lambda doc: [doc["size"]],
    "kind": lambda doc: [doc["kind"]],
    "ext": lambda doc: [doc["ext"]],
    "artifact": lambda doc: [] if doc["artifact"] is None else [doc["artifact"]],
    "owner": lambda doc: [doc["owner"]],
    "group": lambda doc: [doc["group"]],
    "project": lambda doc: [] if doc["project"] is None else [doc["project"]],
    "path": lambda doc: [doc["path"]],
    "ancestors": lambda doc: sorted(set(doc["ancestors"])),
}


def read_position(client: Elasticsearch, index: str) -> IndexPosition | None:
    try:
        mapping = client.indices.get_mapping(index=index)
    except NotFoundError:
        return None
    meta = mapping.get(index, {}).get("mappings", {}).get("_meta", {})
    return IndexPosition.from_json(meta.get(_META))


def write_position(client: Elasticsearch, index: str, position: IndexPosition) -> None:
    client.indices.put_mapping(index=index, meta={_META: position.to_json()})


def differing(client: Elasticsearch, index: str, expected: list[Document]) -> dict[int, str]:
    """id -> the first field whose doc values differ from the document's."""
    if not expected:
        return {}
    result = client.search(
        index=index,
        query={"ids": {"values": [str(doc["id"]) for doc in expected]}},
        docvalue_fields=[{"field": name} for name in _FIELDS],
        source=False,
        size=len(expected),
    )
    held = {int(hit["_id"]): hit.get("fields", {}) for hit in result["hits"]["hits"]}
    found: dict[int, str] = {}
    for doc in expected:
        values = held.get(doc["id"])
        if values is None:
            continue  # missing: the comparison of documents reports it
        for field, value_of in _FIELDS.items():
            if sorted(values.get(field, [])) != value_of(doc):
                found[doc["id"]] = field
                break
    return found


class SharedWriter:
    """Elasticsearch has no lock a process holds: live writers are found by the database
    (the slot is active, the index consumer reported lately)."""

    exclusive = False

    def release(self) -> None:
        pass

    def __enter__(self) -> SharedWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
