"""The compiled tuple parse (epipe/source/_tuples.c) against its definition in Python
(`Table.parse_python`): the same rows, unchanged columns and end position for any tuple, and
an error from both wherever one fails. `make install` builds the extension: importing it
here fails the test where it was not built (it is never skipped)."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.source import _tuples, translate
from epipe.source import pgoutput as pg
from epipe.source.translate import Table

TYPES = {
    20: "int8",
    21: "int2",
    23: "int4",
    26: "oid",
    16: "bool",
    1184: "timestamptz",
    1114: "timestamp",
    25: "text",
    1043: "varchar",
    3802: "jsonb",
    114: "json",
    700: "float4",
    701: "float8",
}
# Malformed shapes feed_raw turns into a DecodeError (the converters' own errors included).
FAILURES = (pg.DecodeError, ValueError, IndexError, struct.error)

integers = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.integers(-(10**30), 10**30).map(str),  # past 18 digits: Python's int()
    st.sampled_from(["", "-", "-0", "007", " 1", "1_000", "1e3", "٣", "9" * 19, "-" + "9" * 18]),
)
timestamps = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat(sep=" ")),
    st.sampled_from(
        [
            "infinity",
            "-infinity",
            "2026-11-26 18:13:52.03+00",
            "2026-11-26 18:13:52+05:30",
            "2026-11-26 18:13:52-08",
            "20261126 18:13:52.03+00",
            "2026-11-26 18:13:52.03+0é",
            "2026-11-26 18:13:52.03+00" + "0" * 60,
            "1",
        ]
    ),
)
texts = st.one_of(st.text(), st.sampled_from(["t", "f", "", "\x00", "é", "🚲", "\u202e"]))
jsons = st.sampled_from(['{"a": 1}', "[1, 2.5e-300]", '"x"', "1e400", "[" * 200, "not json"])


def value_of(oid: int) -> st.SearchStrategy[bytes]:
    text: st.SearchStrategy[str]
    if oid in (20, 21, 23, 26):
        text = integers
    elif oid == 16:
        text = st.sampled_from(["t", "f", "true", ""])
    elif oid in (1184, 1114):
        text = timestamps
    elif oid in (114, 3802):
        text = jsons
    elif oid in (700, 701):
        text = st.one_of(st.floats().map(repr), st.sampled_from(["NaN", "-Infinity", "1e-400"]))
    else:
        text = texts
    raw = text.map(lambda s: s.encode())
    return st.one_of(raw, raw, st.binary(max_size=8))  # not always UTF-8


@st.composite
def tables_and_tuples(draw: st.DrawFn) -> tuple[Table, bytes]:
    oids = draw(st.lists(st.sampled_from(sorted(TYPES)), min_size=1, max_size=8))
    names = [f"c{i}" for i in range(len(oids))]
    if draw(st.booleans()):  # the inodes table's kind column has a converter of its own
        oids.append(18)
        names.append("kind")
    table = Table.of("inodes", list(zip(names, oids, strict=True)))
    body = struct.pack(">h", len(oids))
    for oid in oids:
        kind = draw(st.sampled_from("tttnu"))
        if kind == "t":
            value = draw(st.sampled_from([b"f", b"d", b"x"]) if oid == 18 else value_of(oid))
            body += b"t" + struct.pack(">i", len(value)) + value
        else:
            body += kind.encode()
    return table, body


def outcome(parse: Callable[[bytes, int], Any], buf: bytes, pos: int) -> tuple[Any, ...]:
    try:
        return ("ok", parse(buf, pos))
    except FAILURES:
        return ("error",)


def same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal, NaN included (float('nan') != itself)."""
    return repr(a) == repr(b) and [type(v) for v in a] == [type(v) for v in b]


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables_and_tuples(), st.binary(max_size=3), st.data())
def test_the_compiled_parse_gives_what_the_python_one_gives(
    drawn: tuple[Table, bytes], prefix: bytes, data: st.DataObject
) -> None:
    assert translate.COMPILED  # the tailer uses it
    table, body = drawn
    buf = prefix + body + data.draw(st.binary(max_size=3))  # a message goes on after a tuple
    compiled, python = (
        outcome(table.parse, buf, len(prefix)),
        outcome(table.parse_python, buf, len(prefix)),
    )
    assert same(compiled, python), (compiled, python)
    if compiled[0] == "ok":
        row, _, _ = compiled[1]
        assert [type(v) for v in row.values()] == [type(v) for v in python[1][0].values()]


@settings(max_examples=300, deadline=None)
@given(tables_and_tuples(), st.data())
def test_a_cut_or_miscounted_tuple_is_an_error_from_both(
    drawn: tuple[Table, bytes], data: st.DataObject
) -> None:
    table, body = drawn
    cut = body[: data.draw(st.integers(0, len(body) - 1))]
    assert outcome(table.parse, cut, 0) == outcome(table.parse_python, cut, 0) == ("error",)
    recount = struct.pack(">h", data.draw(st.integers(-(2**15), 2**15 - 1))) + body[2:]
    if recount[:2] != body[:2]:
        assert outcome(table.parse, recount, 0) == ("error",)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.integers(-4, 70))
def test_any_bytes_at_any_position_are_a_row_or_an_error_never_a_crash(
    buf: bytes, pos: int
) -> None:
    table = Table.of("xattrs", [("inode_id", 20), ("name", 25), ("value", 3802), ("at", 1184)])
    outcome(table.parse, buf, pos)


def test_the_arguments_are_checked() -> None:
    table = Table.of("t", [("a", 20)])
    args: list[Any] = [b"\x00\x01n", 0, "t", table.columns, b"ii", table.raw_converters]
    for wrong in (args[:5], [*args, pg.DecodeError]):
        try:
            _tuples.parse(*wrong)
        except (TypeError, ValueError):
            continue
        raise AssertionError(f"accepted {wrong!r}")
