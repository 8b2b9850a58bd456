"""No hit, count or error ever reveals a file outside the caller's projects.

A random world (projects, users with random memberships, files with random annotations
inside and outside projects); hypothesis draws callers and queries. For each, every hit lies
in the caller's projects, the total is exactly what the superuser finds there, and asking
about any path outside them answers like asking about a path that does not exist."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe import accounts
from epipe.db.embedded import EmbeddedPostgres
from epipe.db.server import connect
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.document import project_of
from epipe.index.rebuild import rebuild
from epipe.settings import Settings
from epipe.wiring import open_index_store
from search_api import create_app
from tests.conftest import TEMPLATE, _dsn_for, drop_database

PROJECTS = ("cars", "bikes", "boats", "planes")
USERS = ("u1", "u2", "u3", "u4", "u5")
WORDS = ("red", "blue", "rain", "snow", "car", "bike")


@dataclass
class RandomWorld:
    client: TestClient
    tokens: dict[str, str]
    members: dict[str, frozenset[str]]
    paths: list[str]

    def get(self, user: str, url: str, **params: Any) -> Any:
        return self.client.get(
            url, params=params, headers={"Authorization": f"Bearer {self.tokens[user]}"}
        )


@pytest.fixture(scope="module")
def world(
    pg_server: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RandomWorld]:
    rng = random.Random(20261126)
    name = "scoping"
    with connect(pg_server.dsn) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    dsn = _dsn_for(pg_server, name)
    home = tmp_path_factory.mktemp("scoping")
    with connect(dsn) as conn:
        for user in USERS:
            accounts.add_user(conn, user)
        members: dict[str, set[str]] = {user: set() for user in USERS}
        for project in PROJECTS:
            owner = rng.choice(USERS)
            accounts.create_project(conn, project, owner)
            members[owner].add(project)
            for user in rng.sample(USERS, 2):
                accounts.add_member(conn, project, user, rng.choice(accounts.ROLES))
                members[user].add(project)
        ns = Namespace(conn, Actor("root", "setup"))
        paths = []
        for i in range(160):
            top = rng.choice([f"/Projects/{p}" for p in PROJECTS] + ["/shared", "/tmp"])
            path = f"{top}/{rng.choice(WORDS)}{i % 7}/{rng.choice(WORDS)}_{i}.jpg"
            ns.mkdir(path.rsplit("/", 1)[0], parents=True)
            ns.put(path, size=rng.randrange(10**6))
            ns.setxattr(path, "labels", {"n": rng.randrange(10), "tag": rng.choice(WORDS)})
            paths.append(path)
        settings = Settings(dsn=dsn, home=Path(home))  # type: ignore[arg-type]
        _, index = rebuild(conn, open_index_store(settings))
        index.close()
        tokens = {u: accounts.create_token(conn, u) for u in (*USERS, "root")}
    with TestClient(create_app(settings)) as client:
        yield RandomWorld(client, tokens, {u: frozenset(p) for u, p in members.items()}, paths)
    drop_database(pg_server, name)


queries = st.fixed_dictionaries(
    {},
    optional={
        "q": st.sampled_from(WORDS),
        "under": st.sampled_from(
            ["/", "/Projects", "/shared", "/nope"]
            + [f"/Projects/{p}" for p in (*PROJECTS, "ghost")]
        ),
        "type": st.sampled_from(["file", "dir"]),
        "xattr": st.sampled_from(
            ["labels.n>4", "labels.n<=2", "labels.tag=rain", "labels.tag exists", "labels.tag!=red"]
        ),
        "sort": st.sampled_from(["path", "-size", "name", "mtime"]),
        "ext": st.sampled_from(["jpg", "png"]),
    },
)


def visible(path: str, projects: frozenset[str]) -> bool:
    return project_of(path) in projects


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=st.sampled_from(USERS), query=queries)
def test_search_reveals_nothing_outside_the_callers_projects(
    world: RandomWorld, user: str, query: dict[str, Any]
) -> None:
    mine = world.members[user]
    response = world.get(user, "/v1/search", limit=1000, **query)
    assert response.status_code == 200, response.text
    body = response.json()
    assert all(visible(hit["path"], mine) for hit in body["hits"])
    everything = world.get("root", "/v1/search", limit=1000, **query).json()
    expected = [h["path"] for h in everything["hits"] if visible(h["path"], mine)]
    assert sorted(h["path"] for h in body["hits"]) == sorted(expected)
    assert body["total"] == len(expected)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=st.sampled_from(USERS),
    index=st.integers(0, 159),
    endpoint=st.sampled_from(["/v1/files/stat", "/v1/files/xattrs", "/v1/files/list"]),
)
def test_files_outside_look_exactly_like_missing_files(
    world: RandomWorld, user: str, index: int, endpoint: str
) -> None:
    path = world.paths[index]
    answer = world.get(user, endpoint, path=path)
    if visible(path, world.members[user]):
        assert answer.status_code == 200
        return
    missing = path.rsplit("/", 1)[0] + "/does-not-exist.jpg"
    twin = world.get(user, endpoint, path=missing)
    assert answer.status_code == twin.status_code == 404
    assert answer.headers["content-type"] == twin.headers["content-type"]
    assert answer.json()["detail"].replace(path, "P") == twin.json()["detail"].replace(missing, "P")
