"""Inputs of a tenant attacking the API (issue 10): each malformed part answers 400
problem+json naming the part, never a 500; `user.system.*` names never pass for `system.*`."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from click.testing import CliRunner

from epipe.cli import cli
from epipe.index.rebuild import rebuild
from epipe.wiring import open_index_store
from tests.api.conftest import World

PROBLEM = "application/problem+json"
PATH = "/Projects/cars/img/a.jpg"
LONG = "1" * 5_000


@pytest.mark.parametrize(
    ("params", "part"),
    [
        ({"xattr": 'labels."\\u0000"=1'}, "xattr"),
        ({"xattr": 'labels."\\u0000">1'}, "xattr"),
        ({"xattr": '"\\u0000" exists'}, "xattr"),
        ({"xattr": 'labels."a\\u0001b"=1'}, "xattr"),
        ({"xattr": '"" exists'}, "xattr"),
        ({"xattr": 'labels."".n>1'}, "xattr"),
        ({"xattr": f"labels.n={LONG}"}, "xattr"),
        ({"xattr": f"labels.n>{LONG}"}, "xattr"),
        ({"xattr": f"labels.n>-{LONG}"}, "xattr"),
        ({"xattr": f"labels.n<{LONG}.5"}, "xattr"),  # a double beyond 1.8e308
        ({"after": "-1/0"}, "after"),
        ({"after": "+1/0"}, "after"),
        ({"after": "1_0/0"}, "after"),
        ({"after": "0/-1"}, "after"),
        ({"cursor": "not a cursor"}, "cursor"),
        ({"cursor": "e30"}, "cursor"),  # {}
    ],
)
def test_malformed_search_input_is_400_naming_the_part(
    world: World, params: dict[str, str], part: str
) -> None:
    for user in ("alice", "root"):
        answer = world.get(user, "/v1/search", **params)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["detail"].startswith(part), answer.json()
        body = {k: [v] if k == "xattr" else v for k, v in params.items() if k != "after"}
        if body:
            posted = world.call("POST", user, "/v1/search", json=body)
            assert posted.status_code == 400, posted.text
            assert posted.json()["detail"].startswith(part), posted.json()


def _cursor(world: World, **params: Any) -> tuple[str, dict[str, Any]]:
    """A real cursor of a one-hit page and what it holds."""
    page = world.get("root", "/v1/search", limit=1, **params).json()
    cursor = page["next_cursor"]
    assert cursor
    payload = cursor.split(".")[0]
    payload = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return cursor, json.loads(payload)


def _forge(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("sort", "change"),
    [
        ("size", {"k": "a string"}),
        ("size", {"k": [1]}),
        ("size", {"k": 10**30}),
        ("name", {"k": 12}),
        ("name", {"i": -1}),
        ("path", {"i": 2**64}),
        ("path", {"i": "1"}),
        ("-mtime", {"k": True}),
        ("size", {}),  # unchanged payload, but no signature
    ],
)
def test_a_hand_edited_cursor_is_400(world: World, sort: str, change: dict[str, Any]) -> None:
    cursor, data = _cursor(world, sort=sort)
    for forged in (_forge({**data, **change}), f"{_forge({**data, **change})}.{'A' * 43}"):
        answer = world.get("root", "/v1/search", sort=sort, limit=1, cursor=forged)
        assert answer.status_code == 400, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["detail"].startswith("cursor"), answer.json()
    follow = world.get("root", "/v1/search", sort=sort, limit=1, cursor=cursor)
    assert follow.status_code == 200, follow.text


def test_a_cursor_is_signed_and_still_pages(world: World) -> None:
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"type": "file", "limit": 2, "sort": "name"}
        if cursor:
            params["cursor"] = cursor
        page = world.get("root", "/v1/search", **params).json()
        seen += [hit["path"] for hit in page["hits"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert "." in cursor  # payload.signature
    assert len(seen) == len(set(seen)) == 6


@pytest.mark.parametrize("key", ["it's", "a`b", "a'b`c", "x:1 OR *", "(a)", "[0 TO 9]"])
def test_quotes_and_query_syntax_in_a_key_are_just_characters(world: World, key: str) -> None:
    """Range predicates go through tantivy's query parser: every key is escaped there."""
    assert _put(world, "alice", "odd", {key: 7}).status_code == 200
    assert _put(world, "alice", "odd", {key: 7}, "/Projects/cars/img/b.jpg").status_code == 200
    assert (
        _put(world, "alice", "odd", {"it": 7}, "/Projects/cars/docs/readme.txt").status_code == 200
    )
    _, index = rebuild(world.conn, open_index_store(world.settings))
    index.close()
    quoted = json.dumps(key)
    for predicate in (f"odd.{quoted}>6", f"odd.{quoted}<=7", f"odd.{quoted}=7"):
        answer = world.get("alice", "/v1/search", xattr=predicate)
        assert answer.status_code == 200, answer.text
        assert {hit["path"] for hit in answer.json()["hits"]} == {
            PATH,
            "/Projects/cars/img/b.jpg",
        }


# -- xattr names ------------------------------------------------------------------------------


def _put(world: World, user: str, name: str, value: Any, path: str = PATH) -> Any:
    return world.call(
        "PUT", user, "/v1/files/xattrs", params={"path": path, "name": name}, json=value
    )


def test_user_system_names_round_trip_and_never_shadow_system_ones(world: World) -> None:
    assert _put(world, "alice", "user.system.acl", "alice's").status_code == 200
    assert _put(world, "alice", "user.user.x", 1).status_code == 200
    assert _put(world, "alice", "system", {"acl": "alice's nested"}).status_code == 200
    assert _put(world, "root", "system.acl", "root's").status_code == 200
    refused = _put(world, "alice", "system.acl", "alice's")
    assert refused.status_code == 403, refused.text
    shown = {
        "labels": {"objects": {"bicycle": 4}, "camera": "front"},
        "user.system.acl": "alice's",
        "user.user.x": 1,
        "system": {"acl": "alice's nested"},
        "system.acl": "root's",
    }
    for user in ("alice", "root"):
        got = world.get(user, "/v1/files/xattrs", path=PATH)
        assert got.json()["xattrs"] == shown
    for name, value in shown.items():
        got = world.get("alice", "/v1/files/xattrs", path=PATH, name=name)
        assert got.json()["xattrs"] == {name: value}, name
    assert world.get("alice", "/v1/files/xattrs", path=PATH, name="user.labels").json() == {
        "path": PATH,
        "xattrs": {"labels": shown["labels"]},
    }

    _, index = rebuild(world.conn, open_index_store(world.settings))
    index.close()

    def found(predicate: str) -> list[str]:
        answer = world.get("root", "/v1/search", xattr=predicate)
        assert answer.status_code == 200, answer.text
        return [hit["path"] for hit in answer.json()["hits"]]

    assert found('system.acl="root\'s"') == [PATH]
    assert found('system.acl="alice\'s"') == []
    assert found('system.acl="alice\'s nested"') == []
    assert found('user.system.acl="alice\'s"') == [PATH]
    assert found('"system.acl"="alice\'s"') == [PATH]  # one user name, quoted
    assert found('user.system.acl="alice\'s nested"') == [PATH]  # the user's `system` object
    assert found("user.user.x=1") == [PATH]
    assert found("system.acl exists") == [PATH]
    hit = world.get("root", "/v1/search", xattr="user.system.acl exists").json()["hits"][0]
    assert hit["xattrs"] == shown

    assert _put(world, "root", "system.acl", "removed").status_code == 200
    gone = world.call(
        "DELETE", "root", "/v1/files/xattrs", params={"path": PATH, "name": "system.acl"}
    )
    assert gone.status_code == 200
    left = world.get("root", "/v1/files/xattrs", path=PATH).json()["xattrs"]
    assert left["user.system.acl"] == "alice's" and "system.acl" not in left


def test_user_system_names_round_trip_on_the_command_line(world: World) -> None:
    env = {
        "EPIPE_DSN": world.settings.dsn.get_secret_value(),  # type: ignore[union-attr]
        "EPIPE_HOME": str(world.settings.home),
    }
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    run("fs", "setxattr", PATH, "user.system.acl", '"a member\'s"', "--user", "alice")
    run("fs", "setxattr", PATH, "system.acl", '"root\'s"')
    shown = run("fs", "getxattr", PATH)
    assert 'user.system.acl="a member\'s"\n' in shown
    assert 'system.acl="root\'s"\n' in shown
    assert run("fs", "getxattr", PATH, "user.system.acl") == 'user.system.acl="a member\'s"\n'
    assert run("fs", "getxattr", PATH, "system.acl") == 'system.acl="root\'s"\n'
    refused = runner.invoke(
        cli, ["fs", "setxattr", PATH, "system.acl", "1", "--user", "alice"], env=env
    )
    assert refused.exit_code != 0 and "EACCES" in refused.output
    _, index = rebuild(world.conn, open_index_store(world.settings))
    index.close()
    found = json.loads(run("search", "--xattr", "user.system.acl exists", "--json"))
    assert [hit["xattrs"]["user.system.acl"] for hit in found["hits"]] == ["a member's"]
    assert json.loads(run("search", "--xattr", 'system.acl="a member\'s"', "--json"))["hits"] == []
