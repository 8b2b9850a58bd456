"""Locations as HMS stores them, and their epipe paths."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epipe.hms.locations import LocationError, LocationMap, is_under, normalise, rebase


@pytest.mark.parametrize(
    ("given_location", "stored"),
    [  # what HMS 2.3 stored for each, measured
        ("file:///tmp/x/a%20b", "file:/tmp/x/a%20b"),
        ("file:/tmp/x/a b/", "file:/tmp/x/a b"),
        ("file://localhost/tmp/x/c", "file:/tmp/x/c"),
        ("file:/tmp/x//d/./e", "file:/tmp/x/d/e"),
        ("FILE:///tmp/ü%C3%BC", "file:/tmp/ü%C3%BC"),
        ("hdfs://nn:8020/wh/t/", "hdfs://nn:8020/wh/t"),
        ("hdfs://nn:8020", "hdfs://nn:8020/"),
        ("/plain/path/", "/plain/path"),
    ],
)
def test_locations_normalise_as_hms_stores_them(given_location: str, stored: str) -> None:
    assert normalise(given_location) == stored


@pytest.mark.parametrize("bad", ["relative/x", "file:relative", ""])
def test_a_location_without_an_absolute_path_is_refused(bad: str) -> None:
    with pytest.raises(LocationError):
        normalise(bad)


def test_paths_compare_on_slash_boundaries() -> None:
    assert is_under("/a/b", "/a/b")
    assert is_under("/a/b/c", "/a/b")
    assert not is_under("/a/bc", "/a/b")
    assert is_under("/anything", "/")
    assert rebase("/a/b/c", "/a/b", "/x") == "/x/c"
    assert rebase("/a/b", "/a/b", "/x/y") == "/x/y"


def test_a_location_maps_to_its_path_only_under_the_prefix() -> None:
    fs = LocationMap.of("file:///srv/fs/")
    assert fs.prefix == "file:/srv/fs"
    assert fs.path("file:/srv/fs/a/b/") == "/a/b"
    assert fs.path("file://localhost/srv/fs") == "/"
    assert fs.path("file:/srv/fsx/a") is None  # a sibling whose name only starts the same
    assert fs.path("hdfs://nn/srv/fs/a") is None  # another file system
    assert fs.path("") is None
    assert fs.path(None) is None
    assert fs.path("not a location") is None
    hdfs = LocationMap.of("hdfs://nn:8020/wh")
    assert hdfs.path("HDFS://nn:8020//wh/./a/") == "/a"
    assert hdfs.path("hdfs://other:8020/wh/a") is None
    root = LocationMap.of("file:/")
    assert root.path("file:///a") == "/a"
    assert root.path("file:/") == "/"


_names = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="/\x00"), min_size=1
).filter(lambda n: n not in (".", ".."))


@given(st.lists(_names, max_size=6), st.sampled_from(["file:/srv/fs", "file:/", "hdfs://nn/w"]))
def test_a_path_survives_the_round_trip_through_its_location(names: list[str], prefix: str) -> None:
    fs = LocationMap.of(prefix)
    path = "/" + "/".join(names)
    location = fs.location(path)
    assert normalise(location) == location  # already as HMS stores it
    assert fs.path(location) == path
