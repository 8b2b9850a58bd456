"""Reading JSON values back: any text becomes a value, what cannot be held is kept exact."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.jsonvalue import (
    BEYOND_DOUBLE,
    LOAD_DEPTH,
    TOO_DEEP,
    JsonText,
    depth,
    load,
    parts,
    text_depth,
)
from tests.json_texts import json_texts, nested

plain_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
SLOW = "1e400"  # a sibling orjson refuses: the whole text takes the slow path


def unwrapped(items: list[Any]) -> Any:
    """The first item of `[value, 1e400]` read through the slow path."""
    assert isinstance(items[-1], JsonText)
    return items[0]


@given(plain_values, st.sampled_from([(",", ":"), (", ", ": ")]))
def test_what_orjson_reads_both_paths_read_the_same(value: Any, separators: Any) -> None:
    text = json.dumps(value, separators=separators)
    expected = orjson.loads(text)
    assert load(text) == expected
    assert load(text.encode()) == expected
    assert unwrapped(load(f"[{text}, {SLOW}]")) == expected


@settings(
    deadline=None,  # behaviour, not time: a busy machine took 350 ms on one example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(json_texts)
def test_any_text_becomes_a_value_that_orjson_can_write(text: str) -> None:
    value = load(text)
    assert depth(value) <= LOAD_DEPTH
    orjson.dumps(value)  # what events and documents do with it


@given(st.text() | st.binary().map(lambda b: b.decode("utf-8", "replace")))
def test_text_that_is_not_json_is_kept_whole(text: str) -> None:
    try:
        json.loads(text)
    except ValueError:
        value = load(text)
        assert isinstance(value, JsonText)
        assert value == text
        assert value.reason.startswith("is not JSON")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18446744073709551615", 2**64 - 1),
        ("-9223372036854775808", -(2**63)),
        ("18446744073709551616", 1.8446744073709552e19),  # beyond 64 bits: the nearest double
        ("1" + "0" * 30, 1e30),
        ("1.7976931348623157e308", 1.7976931348623157e308),
        ("0." + "0" * 399 + "1", 0.0),  # jsonb's text of 1e-400: rounds to 0, like orjson
    ],
)
def test_numbers_read_as_orjson_reads_them(text: str, expected: Any) -> None:
    assert load(text) == expected
    assert type(load(text)) is type(expected)
    assert unwrapped(load(f"[{text}, {SLOW}]")) == expected


@pytest.mark.parametrize("text", ["1" + "0" * 309, "-1" + "0" * 309, "1e309", "9" * 131_072])
def test_a_number_beyond_a_double_is_kept_as_its_exact_text(text: str) -> None:
    value = load(f'{{"n": {text}, "ok": [1, 2.5]}}')
    assert value == {"n": text, "ok": [1, 2.5]}
    assert isinstance(value["n"], JsonText)
    assert value["n"].reason == BEYOND_DOUBLE


@pytest.mark.parametrize("levels", [LOAD_DEPTH + 1, 300, 990, 50_000])
def test_parts_nested_too_deep_are_kept_as_their_exact_text(levels: int) -> None:
    text = nested("1", levels, "mixed")
    value = load(f'{{"deep": {text}, "ok": true}}')
    assert value["ok"] is True
    assert depth(value) == LOAD_DEPTH
    part = value["deep"]
    for _ in range(LOAD_DEPTH - 1):
        part = part[0] if isinstance(part, list) else part["k"]
    assert isinstance(part, JsonText)
    assert part.reason == TOO_DEEP
    assert part in text  # its exact text: the levels below, down to the innermost value
    assert text_depth(part) == levels - LOAD_DEPTH + 1
    assert part.count("1") == 1


def test_a_value_at_the_reading_limit_is_read_whole() -> None:
    assert load(nested("1", LOAD_DEPTH, "array")) == json.loads(nested("1", LOAD_DEPTH, "array"))


def test_repeated_keys_keep_the_last_as_jsonb_does() -> None:
    assert load('{"a": 1, "a": 2}') == {"a": 2}
    assert load('{"a": 1, "a": 2, "n": 1e400}')["a"] == 2


def test_escapes_and_unicode_survive_the_slow_path() -> None:
    value = {"é\u2028": ["\U0001f600", "\\u0041", '"q"', "\t"], "": {"": None}}
    text = json.dumps(value, ensure_ascii=True)
    assert unwrapped(load(f"[{text}, {SLOW}]")) == value


@given(plain_values)
def test_depth_of_values_and_of_their_text_agree(value: Any) -> None:
    assert depth(value) == text_depth(json.dumps(value))


def test_depth_counts_containers_only() -> None:
    values: list[Any] = [1, "[[x]]", [], {"a": []}, [1, [2, [3]], {}]]
    assert [depth(v) for v in values] == [0, 0, 1, 2, 3]
    assert text_depth('["[[", {"a": "]}"}]') == 2


def test_parts_are_every_key_and_scalar() -> None:
    found = list(parts({"a": [1, {"b": None}], "c": "x"}))
    assert sorted(map(str, found)) == sorted(["a", "c", "1", "b", "None", "x"])
