import json

import pytest

from epipe.errors import FsError
from epipe.fs.xattrs import MAX_VALUE_BYTES, display_name, encode_value, parse_name, parse_value


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("labels", ("user", "labels")),
        ("user.labels", ("user", "labels")),
        ("system.acl", ("system", "acl")),
        ("trusted.x", ("user", "trusted.x")),  # unknown prefix: part of a user name
        ("user.a.b", ("user", "a.b")),
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
