"""Invalid input is rejected with EINVAL, naming what is wrong, and nothing is written."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest

from epipe.errors import FsError
from epipe.fs.namespace import Namespace
from epipe.fs.xattrs import MAX_VALUE_BYTES
from tests.integration.helpers import snapshot

BAD_PATHS = [
    ("relative/path", "absolute"),
    ("", "absolute"),
    ("/d/a\x00b", "NUL"),
    ("/d/" + "n" * 256, "256 bytes"),
    ("/d/" + "ü" * 128, "256 bytes"),
    ("/d/./x", "not allowed"),
    ("/d/../x", "not allowed"),
    ("/d/\udc80", "UTF-8"),
]


@pytest.fixture
def populated(ns: Namespace) -> Namespace:
    ns.mkdir("/d")
    ns.put("/d/f")
    ns.setxattr("/d/f", "labels", {"ok": True})
    return ns


@pytest.mark.parametrize(("path", "reason"), BAD_PATHS)
def test_bad_paths_write_nothing(
    populated: Namespace, conn: psycopg.Connection, path: str, reason: str
) -> None:
    ns = populated
    calls: list[Callable[[], object]] = [
        lambda: ns.mkdir(path),
        lambda: ns.mkdir(path, parents=True),
        lambda: ns.put(path, size=1),
        lambda: ns.write(path, size=1),
        lambda: ns.rm(path, recursive=True),
        lambda: ns.mv("/d/f", path),
        lambda: ns.mv(path, "/d/g"),
        lambda: ns.cat(path),
        lambda: ns.setxattr(path, "labels", 1),
        lambda: ns.rmxattr(path, "labels"),
        lambda: ns.stat(path),
        lambda: ns.ls(path),
        lambda: ns.getxattr(path),
    ]
    before = snapshot(conn)
    for call in calls:
        with pytest.raises(FsError) as caught:
            call()
        assert caught.value.code == "EINVAL"
        assert reason in str(caught.value)
    assert snapshot(conn) == before


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("x" * MAX_VALUE_BYTES, "65538 bytes"),
        ({"blob": "é" * 40_000}, "bytes, the limit is 65536"),
        ({"a": "nul\x00here"}, "NUL"),
        (float("inf"), "JSON"),
        ({"set": {1}}, "JSON"),
    ],
)
def test_bad_xattr_values_write_nothing(
    populated: Namespace, conn: psycopg.Connection, value: object, reason: str
) -> None:
    before = snapshot(conn)
    with pytest.raises(FsError, match=reason) as caught:
        populated.setxattr("/d/f", "labels", value)
    assert caught.value.code == "EINVAL"
    assert snapshot(conn) == before
    assert populated.getxattr("/d/f") == {"labels": {"ok": True}}


@pytest.mark.parametrize("name", ["", "user.", "bad\x00name", "n" * 256])
def test_bad_xattr_names_write_nothing(
    populated: Namespace, conn: psycopg.Connection, name: str
) -> None:
    before = snapshot(conn)
    with pytest.raises(FsError, match="EINVAL"):
        populated.setxattr("/d/f", name, 1)
    with pytest.raises(FsError, match="EINVAL"):
        populated.rmxattr("/d/f", name)
    assert snapshot(conn) == before


def test_a_value_of_exactly_64_kib_is_accepted(populated: Namespace) -> None:
    value = "x" * (MAX_VALUE_BYTES - 2)  # plus the two quotes: 65536 bytes
    populated.setxattr("/d/f", "big", value)
    assert populated.getxattr("/d/f", "big") == {"big": value}


def test_the_database_refuses_bad_names_even_past_the_namespace_layer(
    ns: Namespace, conn: psycopg.Connection
) -> None:
    # Defence in depth: the schema's CHECK constraints hold if a caller skips validation.
    before = snapshot(conn)
    for bad in ["a/b", ".", "..", "x" * 256, ""]:
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("SELECT fs_create(0, NULL, %s::text[], 0, false)", [[bad]])
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("SELECT fs_setxattr(0, NULL, '{}'::text[], 'nope', 'x', '1')")
    assert snapshot(conn) == before
