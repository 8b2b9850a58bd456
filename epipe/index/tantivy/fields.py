"""What the structures searches filter and sort on hold for each document, compared with
the document (for `epipe verify`: the stored JSON alone says nothing about them).

Per chunk of documents (`within`: a set of ids), in a few searches:
- fast columns (sorts, size and time ranges): one search ordered by the field gives each
  document's value as the sort key;
- terms (kind, ext, owner, group, project, ancestors, annotations): one search per distinct
  value in the chunk; the documents it finds must be exactly those that hold the value;
- path: one search for the chunk's paths must find every document of the chunk.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

import tantivy

from epipe.index.document import MAX_TEXT_BYTES, Document, leaves
from epipe.index.tantivy.document import ids

_FAST: dict[str, Callable[[Document], Any]] = {
    "id": lambda doc: doc["id"],
    "parent_id": lambda doc: doc["parent_id"],
    "size": lambda doc: doc["size"],
    # dates are kept to the second in fast columns, as nanoseconds
    "mtime": lambda doc: _seconds(doc["mtime"]),
    "ctime": lambda doc: _seconds(doc["ctime"]),
    "path": lambda doc: doc["path"],
    "name_sort": lambda doc: doc["name"],
}
_TERMS = ("kind", "ext", "owner", "group", "project")


def differing(
    schema: tantivy.Schema, searcher: tantivy.Searcher, expected: list[Document]
) -> dict[int, str]:
    """id -> the first field whose indexed value differs from the document's."""
    q = tantivy.Query
    if not expected:
        return {}
    within = q.const_score_query(q.term_set_query(schema, "id", [d["id"] for d in expected]), 0)
    found: dict[int, str] = {}
    for field, value_of in _FAST.items():
        result = searcher.search(within, len(expected), count=False, order_by_field=field)
        addresses = [address for _, address in result.hits]
        held = dict(zip(ids(searcher, addresses), (key for key, _ in result.hits), strict=True))
        for doc in expected:
            if held.get(doc["id"]) != value_of(doc):
                found.setdefault(doc["id"], field)
    for (field, _, value), holders in _term_groups(expected).items():
        term = q.term_query(schema, field, value)
        result = searcher.search(_both(term, within), len(expected), count=False)
        matched = set(ids(searcher, [address for _, address in result.hits]))
        for inode_id in matched ^ holders:
            found.setdefault(inode_id, field.split(".", 1)[0])
    paths = q.term_set_query(schema, "path", [doc["path"] for doc in expected])
    result = searcher.search(_both(paths, within), len(expected), count=False)
    matched = set(ids(searcher, [address for _, address in result.hits]))
    for doc in expected:
        if doc["id"] not in matched:
            found.setdefault(doc["id"], "path")
    return found


def _term_groups(expected: list[Document]) -> dict[tuple[str, str, Any], set[int]]:
    """(field, type, value) -> the ids of the documents holding it (1, 1.0 and True are
    distinct terms, equal as keys of a dict: the type tells them apart)."""
    groups: dict[tuple[str, str, Any], set[int]] = defaultdict(set)
    for doc in expected:
        values = [(field, doc[field]) for field in _TERMS]  # type: ignore[literal-required]
        values += [("ancestors", ancestor) for ancestor in doc["ancestors"]]
        values += [(f"xattrs.{k}", v) for k, v in leaves(doc["xattrs"] or {}) if _term(v)]
        for field, value in values:
            if value is not None:
                groups[(field, type(value).__name__, value)].add(doc["id"])
    return groups


def _term(value: Any) -> bool:
    """A leaf indexed as an exact term of its own type: long strings are not, nor null, and
    tantivy indexes a string that reads as a date as a date."""
    if isinstance(value, str):
        return 0 < len(value.encode()) <= MAX_TEXT_BYTES and not _date(value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and -(2**63) <= value < 2**64


def _date(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _both(a: tantivy.Query, b: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, a), (tantivy.Occur.Must, b)])


def _seconds(iso: str) -> int:
    return math.floor(datetime.fromisoformat(iso).timestamp()) * 1_000_000_000
