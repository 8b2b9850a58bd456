"""Keyset paging shared by the engines (pure)."""

from __future__ import annotations

import itertools

import pytest

from epipe.index.elasticsearch import SORT_FIELDS as ELASTICSEARCH_FIELDS
from epipe.index.paging import Order, beyond, in_order, order_of, strictly_past
from epipe.index.tantivy.schema import SORT_FIELDS as TANTIVY_FIELDS
from epipe.search.query import SORTS, SearchQuery


@pytest.mark.parametrize(
    ("query", "tantivy", "elasticsearch"),
    [
        (SearchQuery(text="rain"), Order(None, True), Order(None, True)),
        (SearchQuery(), Order("path", False), Order("path", False)),  # no words: path order
        (SearchQuery(sort="name"), Order("name_sort", False), Order("name.raw", False)),
        (SearchQuery(sort="-size"), Order("size", True), Order("size", True)),
        (SearchQuery(sort="-mtime", text="x"), Order("mtime", True), Order("mtime", True)),
    ],
)
def test_each_engine_sorts_by_its_own_field_in_the_same_direction(
    query: SearchQuery, tantivy: Order, elasticsearch: Order
) -> None:
    assert order_of(query, TANTIVY_FIELDS) == tantivy
    assert order_of(query, ELASTICSEARCH_FIELDS) == elasticsearch


def test_every_sort_has_a_field_in_both_engines() -> None:
    names = {sort.lstrip("-") for sort in SORTS} - {"score"}
    assert set(TANTIVY_FIELDS) == set(ELASTICSEARCH_FIELDS) == names


@pytest.mark.parametrize("descending", [False, True])
def test_equal_keys_go_by_id_ascending_whatever_the_direction(descending: bool) -> None:
    entries = [(2, 9, "a"), (1, 7, "b"), (2, 3, "c"), (1, 1, "d"), (3, 5, "e")]
    keys = [3, 2, 2, 1, 1] if descending else [1, 1, 2, 2, 3]
    ordered = in_order(entries, descending)
    assert [key for key, _, _ in ordered] == keys
    for (key, inode_id, _), (next_key, next_id, _) in itertools.pairwise(ordered):
        assert key != next_key or inode_id < next_id


@pytest.mark.parametrize(
    ("key", "inode_id", "descending", "expected"),
    [
        (5, 11, False, True),  # the same key, a higher id
        (5, 10, False, False),  # the cursor's own hit
        (5, 9, True, False),  # the same key, a lower id: before it in both directions
        (6, 1, False, True),
        (6, 1, True, False),
        (4, 99, True, True),
    ],
)
def test_a_hit_is_beyond_the_cursor_by_key_then_id(
    key: int, inode_id: int, descending: bool, expected: bool
) -> None:
    assert beyond(key, inode_id, (5, 10), descending) is expected


def test_strictly_past_excludes_an_equal_key() -> None:
    assert strictly_past(3, 2, descending=False)
    assert strictly_past(2, 3, descending=True)
    assert not strictly_past(2, 2, descending=False)
    assert not strictly_past(2, 2, descending=True)
    assert not strictly_past(1.5, 2.0, descending=False)
