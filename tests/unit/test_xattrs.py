import json

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.errors import FsError
from epipe.fs.xattrs import (
    MAX_DEPTH,
    MAX_INTEGER,
    MAX_VALUE_BYTES,
    MIN_INTEGER,
    display_name,
    encode_value,
    parse_name,
    parse_value,
)
from epipe.jsonvalue import depth
from tests.json_texts import json_texts, nested


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("labels", ("user", "labels")),
        ("user.labels", ("user", "labels")),
        ("system.acl", ("system", "acl")),
        ("trusted.x", ("user", "trusted.x")),  # unknown prefix: part of a user name
        ("user.a.b", ("user", "a.b")),
        ("user.system.acl", ("user", "system.acl")),  # never the system namespace
        ("user.user.x", ("user", "user.x")),
        ("system", ("user", "system")),
    ],
)
def test_parse_name(name: str, expected: tuple[str, str]) -> None:
    assert parse_name(name) == expected


@pytest.mark.parametrize("name", ["", "user.", "system.", "a\x00b", "x" * 256])
def test_parse_name_rejects(name: str) -> None:
    with pytest.raises(FsError, match="EINVAL"):
        parse_name(name)


def test_display_name_hides_the_user_namespace() -> None:
    assert display_name("user", "labels") == "labels"
    assert display_name("system", "acl") == "system.acl"
    assert display_name("user", "system.acl") == "user.system.acl"
    assert display_name("user", "user.x") == "user.user.x"
    assert display_name("user", "system") == "system"


_names = st.text(st.sampled_from("usertmy.x"), min_size=1, max_size=16) | st.text(min_size=1)


@given(st.sampled_from(["user", "system"]), _names, st.sampled_from(["user", "system"]), _names)
def test_shown_names_round_trip_and_never_collide(ns: str, name: str, ns2: str, name2: str) -> None:
    shown = display_name(ns, name)
    if "\x00" not in name and len(name.encode()) <= 255:
        assert parse_name(shown) == (ns, name)
    if (ns, name) != (ns2, name2):
        assert display_name(ns2, name2) != shown


@pytest.mark.parametrize("text", ['{"a": 1}', "[1, 2]", '"text"', "3.5", "true", "null"])
def test_parse_value_accepts_any_json_value(text: str) -> None:
    assert parse_value(text) == json.loads(text)


@pytest.mark.parametrize("text", ["{bad", "", "NaN", '{"a": Infinity}', "[1,]", "'single'"])
def test_parse_value_rejects_invalid_json(text: str) -> None:
    with pytest.raises(FsError) as caught:
        parse_value(text)
    assert caught.value.code == "EINVAL"


def test_value_size_limit_is_64_kib_of_compact_json() -> None:
    overhead = len(json.dumps(""))  # the two quotes
    at_limit = "x" * (MAX_VALUE_BYTES - overhead)
    assert len(encode_value(at_limit).encode()) == MAX_VALUE_BYTES
    with pytest.raises(FsError, match="65537 bytes"):
        encode_value(at_limit + "x")


def test_value_size_counts_utf8_bytes() -> None:
    with pytest.raises(FsError, match="EINVAL"):
        encode_value("é" * (MAX_VALUE_BYTES // 2))


def test_nul_characters_are_rejected_but_escaped_backslashes_are_not() -> None:
    with pytest.raises(FsError, match="NUL"):
        encode_value({"a": "x\x00y"})
    with pytest.raises(FsError, match="NUL"):
        encode_value({"k\x00": 1})
    assert encode_value("\\u0000") == '"\\\\u0000"'


def test_deeply_nested_json_is_rejected_not_crashing() -> None:
    with pytest.raises(FsError, match="EINVAL"):
        parse_value("[" * 100_000 + "]" * 100_000)


def test_non_json_python_values_are_rejected() -> None:
    with pytest.raises(FsError, match="EINVAL"):
        encode_value({"a": {1, 2}})
    with pytest.raises(FsError, match="EINVAL"):
        encode_value(float("nan"))


# -- the limits of values (docs/xattr-values.md) ----------------------------------------------


@pytest.mark.parametrize("shape", ["array", "object", "mixed"])
def test_nesting_is_refused_past_64_levels_as_text_and_as_a_value(shape: str) -> None:
    assert parse_value(nested("1", MAX_DEPTH, shape)) == json.loads(nested("1", MAX_DEPTH, shape))
    for levels in (MAX_DEPTH + 1, 300, 990):
        text = nested("1", levels, shape)
        refused = f"nest {levels} levels deep; the limit is 64"
        with pytest.raises(FsError, match=refused):
            parse_value(text)
        with pytest.raises(FsError, match=refused):
            encode_value(orjson.loads(text))


def test_a_value_too_deep_for_the_json_encoder_is_refused_by_its_depth() -> None:
    value: list[object] = []
    for _ in range(5_000):
        value = [value]
    with pytest.raises(FsError, match="nest 5001 levels deep"):
        encode_value(value)


@pytest.mark.parametrize("number", [MIN_INTEGER, MAX_INTEGER, 0, -1, 10**18])
def test_integers_within_64_bits_are_kept_exactly(number: int) -> None:
    assert parse_value(f'{{"n": {number}}}') == {"n": number}
    assert encode_value({"n": number}) == f'{{"n":{number}}}'


@pytest.mark.parametrize(
    "text", [str(MIN_INTEGER - 1), str(MAX_INTEGER + 1), "1" + "0" * 309, "-" + "9" * 5_000]
)
def test_integers_beyond_64_bits_are_refused_naming_the_range(text: str) -> None:
    with pytest.raises(FsError, match=r"outside -2\^63 \.\. 2\^64-1") as caught:
        parse_value(f"[{text}]")
    assert caught.value.code == "EINVAL"
    assert len(str(caught.value)) < 300  # a long number is cut in the message
    if len(text) < 4_000:
        with pytest.raises(FsError, match="outside"):
            encode_value([int(text)])


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1e309", "beyond the range of a double"),
        ("-1.8e308", "beyond the range of a double"),
        ("1e-400", "too small for a double"),
        ("-2e-324", "too small for a double"),
    ],
)
def test_numbers_a_double_cannot_hold_are_refused(text: str, reason: str) -> None:
    with pytest.raises(FsError, match=reason):
        parse_value(f'{{"x": {text}}}')


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1.7976931348623157e308", 1.7976931348623157e308), ("5e-324", 5e-324), ("0e-999", 0.0)],
)
def test_numbers_at_the_edges_of_a_double_are_accepted(text: str, expected: float) -> None:
    assert parse_value(text) == expected


def test_infinity_from_a_python_caller_is_refused() -> None:
    with pytest.raises(FsError, match="EINVAL"):
        encode_value({"x": float("inf")})


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(json_texts)
def test_any_text_is_refused_with_einval_or_accepted_within_the_limits(text: str) -> None:
    try:
        value = parse_value(text)
    except FsError as exc:
        if exc.code != "EINVAL":
            raise
        return
    stored = encode_value(value)
    assert depth(value) <= MAX_DEPTH
    assert orjson.loads(stored) == value  # orjson (the pipeline) reads it back as it was
    assert parse_value(stored) == value
