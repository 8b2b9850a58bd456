"""The query model and the xattr predicate parser (pure)."""

from __future__ import annotations

import pytest

from epipe.search.query import Predicate, QueryError, SearchQuery, parse_predicate


@pytest.mark.parametrize(
    ("text", "predicate"),
    [
        ("labels.objects.bicycle>3", Predicate(("labels", "objects", "bicycle"), ">", 3)),
        ("labels.objects.bicycle >= 2.5", Predicate(("labels", "objects", "bicycle"), ">=", 2.5)),
        ("labels.camera=front", Predicate(("labels", "camera"), "=", "front")),
        ('labels.camera="front left"', Predicate(("labels", "camera"), "=", "front left")),
        ("labels.camera!=rear", Predicate(("labels", "camera"), "!=", "rear")),
        ("labels.weather exists", Predicate(("labels", "weather"), "exists")),
        ("labels.reviewed=true", Predicate(("labels", "reviewed"), "=", True)),
        ("labels.n<-1", Predicate(("labels", "n"), "<", -1)),
        ("labels.n<=1e3", Predicate(("labels", "n"), "<=", 1000.0)),
        ("labels.gone=null", Predicate(("labels", "gone"), "=", None)),
        ('labels."weird key:1".x>0', Predicate(("labels", "weird key:1", "x"), ">", 0)),
        ("user.labels.a=1", Predicate(("labels", "a"), "=", 1)),
        ("system.acl=x", Predicate(("acl",), "=", "x", "system")),
        ("system.acl.read exists", Predicate(("acl", "read"), "exists", namespace="system")),
        ("user.system.acl=x", Predicate(("system", "acl"), "=", "x")),
        ('"system.acl"=x', Predicate(("system.acl",), "=", "x")),
        ('"system".acl=x', Predicate(("system", "acl"), "=", "x")),
        ("system exists", Predicate(("system",), "exists")),
        ("user.user.x=1", Predicate(("user", "x"), "=", 1)),
        ("labels.code=007", Predicate(("labels", "code"), "=", "007")),
    ],
)
def test_predicates_parse(text: str, predicate: Predicate) -> None:
    assert parse_predicate(text) == predicate
    assert parse_predicate(predicate.text) == predicate  # its text form round-trips


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("labels", "expected an operator"),
        (">3", "expected a key at position 1"),
        ("labels.camera>front", "> compares numbers"),
        ("labels.x>true", "> compares numbers"),
        ("labels=", "missing value"),
        ('labels."open', "unterminated quoted key"),
        ("labels.a..b=1", "expected a key"),
        ('labels.a="unterminated', "bad quoted value"),
        ('labels."\\u0000"=1', "key 2 is empty or holds a 0x00 or 0x01 byte"),
        ('labels."a\\u0001"=1', "key 2 is empty or holds a 0x00 or 0x01 byte"),
        ('""=1', "key 1 is empty"),
        ("labels.n=" + "9" * 5_000, "number of 5000 digits is out of range"),
        ("labels.a=1 OR 1=1", None),  # not an error: the whole rest is one string value
    ],
)
def test_malformed_predicates_name_the_offending_part(text: str, message: str | None) -> None:
    if message is None:
        assert parse_predicate(text).value == "1 OR 1=1"
        return
    with pytest.raises(QueryError) as caught:
        parse_predicate(text)
    assert caught.value.part == f"xattr {text!r}"
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("fields", "part"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"sort": "random"}, "sort"),
        ({"size_min": -1}, "size_min"),
        ({"type": "link"}, "type"),
        ({"artifact": "weights"}, "artifact"),
        ({"artifact": "Model"}, "artifact"),  # kinds are exact, as the index holds them
    ],
)
def test_query_limits(fields: dict[str, object], part: str) -> None:
    with pytest.raises(QueryError) as caught:
        SearchQuery(**fields)  # type: ignore[arg-type]
    assert caught.value.part == part


def test_an_unknown_artifact_kind_is_named_with_the_known_ones() -> None:
    with pytest.raises(QueryError, match=r"artifact: must be one of model, dataset, .*; got 'x'"):
        SearchQuery(artifact="x")
    assert SearchQuery(artifact="model").artifact == "model"


@pytest.mark.parametrize(
    "text", ["labels.n=99999999999999999999", "labels.n>1e400", "labels.n<-9223372036854775809"]
)
def test_numbers_beyond_64_bits_are_refused(text: str) -> None:
    with pytest.raises(QueryError, match="out of range"):
        parse_predicate(text)


def test_a_time_without_a_zone_is_utc() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    query = SearchQuery(
        modified_after=datetime(2026, 1, 1, 12),
        modified_before=datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    )
    assert query.modified_after == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert query.modified_before is not None and query.modified_before.utcoffset() == timedelta(
        hours=2
    )
