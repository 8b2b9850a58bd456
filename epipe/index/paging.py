"""Keyset paging, the same in every engine (pure).

Hits go in (sort key, id) order: the key descending for relevance and `-field` sorts,
ascending otherwise, and equal keys always by id ascending, so pages and cursors are
deterministic. A cursor is the (key, id) of the last hit seen; the next page holds what
sorts after it. Each engine names its own sort fields (`fields`: sort name -> field).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from epipe.search.query import SearchQuery

Cursor = tuple[Any, int]  # (sort key, id)
T = TypeVar("T")


@dataclass(frozen=True)
class Order:
    field: str | None  # the engine's sort field; None: relevance
    descending: bool

    @property
    def by_score(self) -> bool:
        return self.field is None


def order_of(query: SearchQuery, fields: Mapping[str, str]) -> Order:
    """How `query`'s hits are sorted, in the engine whose sort fields are `fields`."""
    sort = query.effective_sort
    if sort == "score":
        return Order(None, descending=True)
    return Order(fields[sort.lstrip("-")], descending=sort.startswith("-"))


def in_order(entries: Iterable[tuple[Any, int, T]], descending: bool) -> list[tuple[Any, int, T]]:
    """(key, id, …) entries by key (descending or not), equal keys by id ascending."""
    ordered = sorted(entries, key=lambda entry: entry[1])
    ordered.sort(key=lambda entry: entry[0], reverse=descending)  # stable: ids stay ascending
    return ordered


def beyond(key: Any, inode_id: int, after: Cursor, descending: bool) -> bool:
    """The hit (key, id) sorts after the cursor `after`."""
    last_key, last_id = after
    if key == last_key:
        return inode_id > last_id
    return bool(key < last_key if descending else key > last_key)


def strictly_past(key: Any, other: Any, descending: bool) -> bool:
    """`key` sorts strictly after `other`: no entry with key `other` or before it can sort
    after `key` (a window ending at `key` holds every hit up to `other`)."""
    return bool(key < other if descending else key > other)
