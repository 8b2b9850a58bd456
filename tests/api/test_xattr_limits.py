"""Annotation values past the limits over the REST API: 400 naming the limit, never a 500."""

from __future__ import annotations

import pytest

from tests.api.conftest import World
from tests.integration.helpers import older_row
from tests.json_texts import nested

PATH = "/Projects/cars/img/a.jpg"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (nested("1", 65, "mixed"), "nest 65 levels deep; the limit is 64"),
        (nested("1", 300, "object"), "nest 300 levels deep; the limit is 64"),
        ('{"n": 1' + "0" * 309 + "}", r"outside -2^63 .. 2^64-1"),
        ('{"n": 1e400}', "beyond the range of a double"),
        ('{"n": 1e-400}', "too small for a double"),  # Python's JSON would read 0
        ("[" * 5_000 + "]" * 5_000, "nest 5000 levels deep"),
        ("1" * 5_000, "outside -2^63 .. 2^64-1"),  # past Python's 4,300-digit int()
        ("{bad", "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_a_value_past_the_limits_is_refused_with_400(world: World, body: str, detail: str) -> None:
    put = world.client.put(
        "/v1/files/xattrs",
        params={"path": PATH, "name": "bad"},
        content=body,
        headers={
            "Authorization": f"Bearer {world.tokens['alice']}",
            "Content-Type": "application/json",
        },
    )
    assert put.status_code == 400, put.text
    assert put.headers["content-type"] == "application/problem+json"
    assert detail in put.json()["detail"]
    got = world.get("alice", "/v1/files/xattrs", path=PATH)
    assert "bad" not in got.json()["xattrs"]


def test_an_older_value_past_the_limits_reads_back_with_its_exact_text(world: World) -> None:
    inode = world.conn.execute("SELECT id FROM inodes WHERE name = 'a.jpg'").fetchone()[0]  # type: ignore[index]
    older_row(world.conn, inode, "big", "[1" + "0" * 309 + ", 2]")
    got = world.get("alice", "/v1/files/xattrs", path=PATH, name="big")
    assert got.status_code == 200
    assert got.json()["xattrs"]["big"] == ["1" + "0" * 309, 2]
