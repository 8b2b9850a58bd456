"""The compiled checks of what a document's JSON text carries exactly
(epipe/index/tantivy/_plain.c) against their definitions in Python (`exact_numbers_python`,
`plain_time_python`): the same answer for any value and any text. `make install` builds the
extension: importing it here fails the test where it was not built (it is never skipped)."""

from __future__ import annotations

import string
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.index.tantivy import _plain
from epipe.index.tantivy import document as tantivy_document
from epipe.index.tantivy.document import exact_numbers_python, plain_time_python

# doubles of every kind: the edges of 2^53 digits and of 10^±22, the shortest texts of
# 17 digits, subnormals, and the values orjson writes with and without an exponent
doubles = st.one_of(
    st.floats(),
    st.floats(-1e-300, 1e-300),
    st.integers(-(2**60), 2**60).map(float),
    st.integers(-30, 30).flatmap(lambda e: st.integers(1, 10**17).map(lambda d: d * 10.0**e)),
    st.sampled_from(
        [0.1 + 0.2, 5e-324, 1e22, 1e23, 1e-22, 1e-23, 2.0**53, 2.0**53 + 2, 9007199254740993.0]
    ),
)
scalars = st.one_of(
    doubles,
    st.integers(-(2**64), 2**64),
    st.text(max_size=4),
    st.booleans(),
    st.none(),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=20,
)


@settings(max_examples=2_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_the_compiled_number_check_answers_as_its_definition(value: Any) -> None:
    assert tantivy_document.exact_numbers is not exact_numbers_python  # as_json uses it
    assert tantivy_document.plain_time is _plain.plain_time
    assert _plain.exact_numbers(value, orjson.dumps) is exact_numbers_python(value)


@settings(max_examples=2_000, deadline=None)
@given(doubles)
def test_any_double_alone_or_nested_is_judged_alike(number: float) -> None:
    for value in (number, [number], {"a": {"b": [1, number]}}):
        assert _plain.exact_numbers(value, orjson.dumps) is exact_numbers_python(value)


def test_the_number_check_walks_any_depth_and_subclasses_as_the_definition() -> None:
    deep: Any = 0.1 + 0.2
    for _ in range(sys.getrecursionlimit() * 2):  # deeper than any recursion could go
        deep = [deep]
    assert _plain.exact_numbers(deep, orjson.dumps) is exact_numbers_python(deep) is False

    class Number(float):
        pass

    odd = {"a": Number(0.1 + 0.2), "b": (0.1 + 0.2,)}  # neither a float nor a list exactly
    assert _plain.exact_numbers(odd, orjson.dumps) is exact_numbers_python(odd) is True
    wide = [0.5] * 10_000 + [0.1 + 0.2]  # the walk's stack grows past its first size
    assert _plain.exact_numbers(wide, orjson.dumps) is exact_numbers_python(wide) is False


def test_what_the_number_check_cannot_read_is_an_error_not_an_answer() -> None:
    with pytest.raises(ValueError, match="not a number's text"):
        _plain.exact_numbers([0.5], lambda _: b"nan")
    as_text: Any = str
    with pytest.raises(TypeError, match="bytes"):
        _plain.exact_numbers([0.5], as_text)
    with pytest.raises(ZeroDivisionError):
        _plain.exact_numbers([0.5], lambda _: bytes(1 // 0))


offsets = st.builds(
    timezone, st.integers(-23 * 60 + 1, 23 * 60 - 1).map(lambda m: timedelta(minutes=m))
)
iso_times = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31), timezones=offsets).map(
    datetime.isoformat
)
# the shape with any digit in every place (second 60 and beyond, year 1677, 2262, ...)
any_digits = st.from_regex(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?[+-][0-9]{2}:[0-9]{2}",
    fullmatch=True,
)


@st.composite
def near_times(draw: st.DrawFn) -> str:
    """A time's text with a character changed, cut or added: what a fullmatch must refuse."""
    text: str = draw(iso_times)
    at = draw(st.integers(0, len(text)))
    change = draw(st.sampled_from(["replace", "cut", "add"]))
    char: str = draw(st.sampled_from([*"0123456789+-:.T ", "٣", "é", *string.ascii_letters]))
    if change == "replace" and at < len(text):
        return text[:at] + char + text[at + 1 :]
    if change == "cut":
        return text[:at] + text[at + 1 :]
    return text[:at] + char + text[at:]


@settings(max_examples=2_000, deadline=None)
@given(iso_times | any_digits | near_times() | st.text(max_size=40))
def test_the_compiled_time_check_answers_as_its_definition(text: str) -> None:
    assert _plain.plain_time(text) is plain_time_python(text)


def test_the_time_check_takes_text_only() -> None:
    with pytest.raises(TypeError, match="str"):
        _plain.plain_time(b"2024-01-01T00:00:00+00:00")  # type: ignore[arg-type]
    assert _plain.plain_time("2024-01-01T00:00:59.123456-23:59")
    assert not _plain.plain_time("2024-01-01T00:00:60+00:00")  # second 60: RFC 3339's only
    assert not _plain.plain_time("2262-01-01T00:00:00+00:00")  # past tantivy's years
