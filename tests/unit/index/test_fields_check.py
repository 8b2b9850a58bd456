"""The field check of `epipe verify` (tantivy) finds nothing wrong in an index written from
the documents themselves, whatever their annotations hold."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from epipe import jsonvalue
from epipe.index.document import Document, build
from epipe.index.tantivy import TantivyStore
from tests.json_texts import json_texts, xattr_names

_2024 = datetime(2024, 1, 1, tzinfo=UTC)
leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(-1e6, 1e6).map(float).map(round).map(float)  # whole floats: 2.0
    # 16 or 17 digits, written without an exponent: JSON text of these is read back as
    # another double by tantivy's JSON reader (epipe.index.tantivy.document.as_json)
    | st.floats(1e-4, 1e16)
    | st.text(max_size=12)
    | st.sampled_from(
        [0, 0.0, -0.0, 2, 2.0, -(2**63), -9.223372036854776e18, 2**63, 9.3e18, 5e-324]
    )
    | st.sampled_from(["2024-01-01T00:00:00Z", "2024-01-01", "", " ", "A b", "1.5", "true"])
)
keys = st.text(max_size=6) | st.sampled_from(["", ".", "a.b", "x y", "é", "\x00", "\\", "*"])
annotation_values = st.recursive(
    leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=10,
)


def document(inode_id: int, xattrs: dict[str, Any], mtime: datetime = _2024) -> Document:
    row = {
        "id": inode_id,
        "parent_id": 1,
        "name": f"f{inode_id}.jpg",
        "kind": "file",
        "size": inode_id,
        "mode": 0o644,
        "owner": "alice",
        "group": "g",
        "mtime": mtime,
        "ctime": _2024,
    }
    doc, _ = build(row, ["", f"f{inode_id}.jpg"], [1], xattrs, 1)
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(keys, annotation_values, max_size=3), min_size=1, max_size=4))
# left-out documents holding the same term as a checked one; keys past tantivy's term length
@example([{"": None, "0": False}, {"": None, "0": False}, {"0": False}])
@example([{"k" * 70_000: 1}])
@example([{"a": {"b" * 9_000: 1}}])
@example([{"a": 0.00021659939713061338, "b": 404288093852.35596}, {"c": 0.5}])
# documents with an empty string at a key (it may have a column entry) found before the one
# that must be found
@example([{"a": 0, "c": ""}, {"c": ""}, {"c": 0}])
def test_an_index_written_from_its_documents_has_no_differing_fields(
    xattrs: list[dict[str, Any]],
) -> None:
    docs = [document(i + 2, x) for i, x in enumerate(xattrs)]
    with tempfile.TemporaryDirectory() as root:
        index = TantivyStore(Path(root)).current(writable=True)
        assert index.upsert(docs) == []
        index.commit()
        try:
            assert index.check_fields(docs) == {}
        finally:
            index.close()


@pytest.mark.parametrize(
    "mtime",
    [
        datetime(1969, 12, 31, 23, 59, 59, 500_000, tzinfo=UTC),  # -0.5 s: 0 in the column
        datetime(1969, 12, 31, 23, 59, 58, 1, tzinfo=UTC),
        datetime(1900, 6, 1, 12, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        datetime(1678, 1, 2, 0, 0, 0, 999_999, tzinfo=UTC),
        datetime(1970, 1, 1, 0, 0, 0, 500_000, tzinfo=UTC),
        datetime(2261, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC),
    ],
)
def test_times_are_cut_to_the_second_as_tantivy_cuts_them(mtime: datetime) -> None:
    with tempfile.TemporaryDirectory() as root:
        index = TantivyStore(Path(root)).current(writable=True)
        try:
            assert index.upsert([document(2, {}, mtime)]) == []
            index.commit()
            assert index.check_fields([document(2, {}, mtime)]) == {}
            # and one two seconds later is seen (one later may be cut to the same second:
            # -0.5 s and 0.5 s are both 0)
            later = document(2, {}, mtime + timedelta(seconds=2))
            assert index.check_fields([later]) == {2: "mtime"}
        finally:
            index.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(xattr_names, json_texts), min_size=1, max_size=3))
def test_so_does_an_index_of_any_value_a_client_may_store(values: list[tuple[str, str]]) -> None:
    xattrs = {name: jsonvalue.load(text) for name, text in values}
    # text with lone surrogates cannot reach the database (not UTF-8; jsonb refuses \\ud800)
    assume(_utf8(xattrs))
    test_an_index_written_from_its_documents_has_no_differing_fields.hypothesis.inner_test(  # type: ignore[attr-defined]
        [xattrs]
    )


def _utf8(value: Any) -> bool:
    """No key or string of `value` holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return False
    return True
