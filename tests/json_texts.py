"""Hypothesis strategies: JSON texts as a user or a SQL client may hand them to epipe, and
xattr names. Nesting to and past every limit (64, 128, orjson's 255, jsonb's ~990), numbers
jsonb keeps but a double cannot (up to 131,072 digits) and ones that round to 0, every
unicode category (lone surrogates and NUL included), empty and repeated keys, long strings."""

from __future__ import annotations

import json

from hypothesis import strategies as st

DEPTHS = (1, 2, 63, 64, 65, 127, 128, 129, 253, 254, 255, 300, 600, 990)
NUMBER_EDGES = (
    "0",
    "-0",
    "0.0",
    "1e-400",
    "-2e-324",
    "3e-324",
    "5e-324",
    "2.2250738585072014e-308",
    "1.5",
    "1e308",
    "1.7976931348623157e308",
    "1.7976931348623159e308",
    "1e309",
    "-1e400",
    "1e131071",
    "-9223372036854775809",
    "-9223372036854775808",
    "9223372036854775807",
    "18446744073709551615",
    "18446744073709551616",
    "1" + "0" * 309,
    "-1" + "0" * 309,
    "1" + "0" * 5000,  # past Python's 4,300-digit int() limit
)

numbers = st.one_of(
    st.sampled_from(NUMBER_EDGES),
    st.integers().map(str),
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.builds("{}e{}".format, st.integers(-99, 99), st.integers(-420, 420)),
)
strings = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=12),  # every category a UTF-8 text can hold
    st.text(st.characters(), max_size=6),  # lone surrogates too
    st.sampled_from(["", "\x00", "a\x00b", "\u2028", "\U0001f600", "\ufeff", "x.y", "é"]),
    st.sampled_from([8_191, 8_192, 40_000]).map(lambda n: "é" * (n // 2)),
)
keys = st.one_of(st.sampled_from(["", "a", "a", "a.b", "..", "x y", "ключ"]), strings)


def _string_text(text: str, ascii_only: bool) -> str:
    return json.dumps(text, ensure_ascii=ascii_only)


string_texts = st.builds(_string_text, strings, st.booleans())
scalar_texts = st.one_of(st.sampled_from(["true", "false", "null"]), numbers, string_texts)


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:  # repeated keys stay: jsonb keeps the last
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}"


def nested(inner: str, levels: int, shape: str) -> str:
    """`inner` inside `levels` arrays, objects, or both in turn."""
    opening = closing = ""
    for level in range(levels):
        array = shape == "array" or (shape == "mixed" and level % 2 == 0)
        opening += "[" if array else '{"k":'
        closing = ("]" if array else "}") + closing
    return opening + inner + closing


json_texts = st.recursive(
    scalar_texts,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_array),
        st.lists(st.tuples(keys, inner), max_size=4).map(_object),
        st.builds(
            nested, inner, st.sampled_from(DEPTHS), st.sampled_from(["array", "object", "mixed"])
        ),
    ),
    max_leaves=6,
)

xattr_names = st.one_of(
    st.sampled_from(
        ["labels", "user.meta", "system.acl", "a.b", "", "user.", "n" * 255, "n" * 256, "bad\x00"]
    ),
    st.text(st.characters(), min_size=1, max_size=12),
)
