"""What the structures searches filter and sort on hold for each document, compared with
the document (for `epipe verify`: the stored JSON alone says nothing about them).

Per chunk of documents (`within`: a set of ids), in a few searches:
- fast columns (sorts, size and time ranges): one search ordered by the field gives each
  document's value as the sort key;
- terms (kind, ext, artifact, owner, group, project, ancestors, annotations): one search per
  distinct value in the chunk; the documents it finds must be exactly those that hold the value;
- path: one search for the chunk's paths must find every document of the chunk;
- annotations' fast columns (`exists`, numeric ranges): per distinct key, `exists` must find
  exactly the documents with a value there; per distinct number, a range [n, n] exactly
  those holding n.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import tantivy

from epipe.index.document import MAX_TEXT_BYTES, Document, indexed_annotations, leaves
from epipe.index.tantivy.compile import FIELD, range_query
from epipe.index.tantivy.document import ids
from epipe.jsonvalue import depth

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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JSON_DEPTH = 20  # tantivy indexes no part of a JSON value nested deeper than this
_TERMS = ("kind", "ext", "artifact", "owner", "group", "project")


def differing(
    schema: tantivy.Schema,
    index: tantivy.Index,
    searcher: tantivy.Searcher,
    expected: list[Document],
) -> dict[int, str]:
    """id -> the first field whose indexed value differs from the document's."""
    q = tantivy.Query
    if not expected:
        return {}
    wanted = {doc["id"] for doc in expected}
    # annotations with a key a query cannot name are left out of the comparison
    indexed = {doc["id"]: indexed_annotations(doc["xattrs"] or {}) for doc in expected}
    odd = {i for i, held in indexed.items() if depth(held) > JSON_DEPTH or not _plain(held)}
    annotations = {i: [] if i in odd else leaves(held) for i, held in indexed.items()}
    # the chunk's id range (verify's chunks are runs of ids): cheaper than a set of ids,
    # whatever else it holds is left out of the comparison below
    low, high = min(wanted), max(wanted)
    within = q.const_score_query(
        q.range_query(schema, "id", tantivy.FieldType.Unsigned, low, high), 0.0
    )
    others = high - low + 1 - len(wanted)  # at most this many documents in range are not

    def matching(
        query: tantivy.Query, expect: int, order_by: str | None = None
    ) -> list[tuple[Any, int]]:
        """(sort key, id) of the documents of the chunk that `query` finds; up to one more
        than the `expect`ed, enough to tell that there are more."""
        # the odd documents (left out of the comparison) may be found too
        limit = expect + others + len(odd) + 1
        result = searcher.search(_both(query, within), limit, count=False, order_by_field=order_by)
        found = ids(searcher, [address for _, address in result.hits])
        return [(key, i) for (key, _), i in zip(result.hits, found, strict=True) if i in wanted]

    found: dict[int, str] = {}
    for field, value_of in _FAST.items():
        held = {i: key for key, i in matching(q.all_query(), len(wanted), field)}
        for doc in expected:
            if held.get(doc["id"]) != value_of(doc):
                found.setdefault(doc["id"], field)
    checks: list[tuple[tantivy.Query, str, set[int], set[int]]] = [
        (q.term_query(schema, field, value), field, holders, set())
        for (field, _, value), holders in _term_groups(expected, annotations).items()
    ]
    checks += _annotation_columns(index, annotations)
    paths = q.term_set_query(schema, "path", [doc["path"] for doc in expected])
    checks.append((paths, "path", wanted, set()))
    for query, field, holders, unsure in checks:
        ignored = unsure | odd if field.startswith(FIELD) else unsure
        matched = {i for _, i in matching(query, len(holders | unsure))}
        for inode_id in (matched ^ holders) - ignored:
            found.setdefault(inode_id, "xattrs" if field.startswith(FIELD) else field)
    return found


def _term_groups(
    expected: list[Document], annotations: dict[int, list[tuple[str, Any]]]
) -> dict[tuple[str, str, Any], set[int]]:
    """(field, kind, value) -> the ids of the documents holding it. True and 1 are distinct
    terms but equal keys of a dict: the kind tells them apart; 2 and 2.0 are one term."""
    groups: dict[tuple[str, str, Any], set[int]] = defaultdict(set)
    for doc in expected:
        values = [(field, doc[field]) for field in _TERMS]  # type: ignore[literal-required]
        values += [("ancestors", ancestor) for ancestor in doc["ancestors"]]
        values += [(f"{FIELD}.{k}", v) for k, v in annotations[doc["id"]] if _term(v)]
        for field, value in values:
            if value is not None:
                groups[(field, _kind(value), value)].add(doc["id"])
    return groups


def _annotation_columns(
    index: tantivy.Index, annotations: dict[int, list[tuple[str, Any]]]
) -> list[tuple[tantivy.Query, str, set[int], set[int]]]:
    """(query, field, the ids it must find, ids it may find or not) of the annotations'
    fast columns: `exists` per key, [n, n] per number."""
    keys: dict[str, tuple[set[int], set[int]]] = defaultdict(lambda: (set(), set()))
    numbers: dict[tuple[str, str, Any], set[int]] = defaultdict(set)
    for inode_id, pairs in annotations.items():
        for key, value in pairs:
            holders, unsure = keys[key]
            # a string too long (or empty) to index may or may not have a column entry
            (holders if _term(value) or _date(value) else unsure).add(inode_id)
            if isinstance(value, int | float) and not isinstance(value, bool) and _term(value):
                numbers[(key, "number", value)].add(inode_id)
    q = tantivy.Query
    checks = [
        (q.exists_query(f"{FIELD}.{key}", json_subpaths=False), FIELD, holders, unsure)
        for key, (holders, unsure) in keys.items()
    ]
    for (key, _, value), holders in numbers.items():
        exact = range_query(index, tuple(key.split(".")), value)
        if exact is not None:
            checks.append((exact, FIELD, holders, set()))
    return checks


def _term(value: Any) -> bool:
    """A leaf indexed as an exact term: long strings are not, nor null, and tantivy indexes
    a string that reads as a date as a date."""
    if isinstance(value, str):
        return 0 < len(value.encode()) <= MAX_TEXT_BYTES and not _date(value)
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int) and -(2**63) <= value < 2**64


def _plain(xattrs: Any) -> bool:
    """Whether every key and number in the annotations is one a query finds as the document
    holds it: no empty key part (`{"": {"a": 1}}` is not the path `a`), no backslash (an
    escape to tantivy), none of the bytes tantivy separates and ends JSON paths with, no
    path longer than MAX_TEXT_BYTES (tantivy leaves out a term past 65,530 bytes); no -0.0
    (the term 0, outside the range [0, 0]) and no float from 2^53 up (tantivy keeps an
    integral float as an integer only within 64 bits)."""
    stack: list[tuple[Any, int]] = [(xattrs, 0)]
    while stack:
        item, path_bytes = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if not all(key.split(".")) or any(c in key for c in "\\\x00\x01"):
                    return False
                below = path_bytes + len(key.encode()) + 1
                if below > MAX_TEXT_BYTES:
                    return False
                stack.append((value, below))
        elif isinstance(item, list):
            stack.extend((value, path_bytes) for value in item)
        elif isinstance(item, float) and (
            abs(item) >= 2**53 or (item == 0 and math.copysign(1.0, item) < 0)
        ):
            return False
    return True


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, int | float) else "str"


def _date(text: Any) -> bool:
    if not isinstance(text, str):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _both(a: tantivy.Query, b: tantivy.Query) -> tantivy.Query:
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, a), (tantivy.Occur.Must, b)])


def _seconds(iso: str) -> int:
    """The column's value: tantivy cuts a time to the second towards zero (1969-12-31
    23:59:59.5 is 0, not -1), in whole microseconds (a double has too few bits in 2261)."""
    since = datetime.fromisoformat(iso) - _EPOCH
    micros = (since.days * 86_400 + since.seconds) * 1_000_000 + since.microseconds
    whole = abs(micros) // 1_000_000
    return (whole if micros >= 0 else -whole) * 1_000_000_000
