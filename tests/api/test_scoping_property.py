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
from epipe.prov import rebuild as prov_rebuild
from epipe.settings import Settings
from epipe.wiring import open_index_store
from search_api import create_app
from tests.conftest import _dsn_for, drop_database, fresh_database

PROJECTS = ("cars", "bikes", "boats", "planes")
USERS = ("u1", "u2", "u3", "u4", "u5")
WORDS = ("red", "blue", "rain", "snow", "car", "bike")
APPS = 12


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
    fresh_database(pg_server, name)
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
        ns = Namespace(conn)  # no app: the files' lineage is the apps' below
        paths = []
        for i in range(160):
            top = rng.choice([f"/Projects/{p}" for p in PROJECTS] + ["/shared", "/tmp"])
            path = f"{top}/{rng.choice(WORDS)}{i % 7}/{rng.choice(WORDS)}_{i}.jpg"
            ns.mkdir(path.rsplit("/", 1)[0], parents=True)
            ns.put(path, size=rng.randrange(10**6))
            ns.setxattr(path, "labels", {"n": rng.randrange(10), "tag": rng.choice(WORDS)})
            paths.append(path)
        for a in range(APPS):  # apps reading files anywhere and writing into projects
            app = Namespace(conn, Actor("root", f"app{a}"))
            for path in rng.sample(paths, 5):
                app.cat(path)
            for k in range(2):
                top = rng.choice([f"/Projects/{p}" for p in PROJECTS] + ["/shared"])
                ns.mkdir(f"{top}/out", parents=True)
                out = f"{top}/out/app{a}_{k}.pb"
                app.put(out)
                paths.append(out)
        prov_rebuild.rebuild(conn, (0, 0))  # the graph, as the consumer makes it at first start
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
        "artifact": st.sampled_from(["image", "model"]),
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


def expected_lineage(
    edges: list[tuple[str, str, str]], root: str, direction: str, depth: int, mine: frozenset[str]
) -> tuple[set[str], set[tuple[str, str, str]]]:
    """The lineage walk over the whole graph (app, role, path) with every file the caller
    cannot see taken out first: (nodes, edges) as paths and app ids."""
    toward, away = ("output", "input") if direction == "upstream" else ("input", "output")
    files = {root}
    frontier, seen_apps = {root}, set[str]()
    found: set[tuple[str, str, str]] = set()
    for _ in range(depth):
        reached = {(a, f) for a, role, f in edges if role == toward and f in frontier}
        found |= {_edge(a, f, toward) for a, f in reached}
        new = {a for a, _ in reached} - seen_apps
        seen_apps |= new
        if not new:
            break
        beyond = {(a, f) for a, role, f in edges if role == away and a in new and visible(f, mine)}
        found |= {_edge(a, f, away) for a, f in beyond}
        frontier = {f for _, f in beyond} - files
        files |= frontier
    return files | seen_apps, found


def _edge(app: str, path: str, role: str) -> tuple[str, str, str]:
    return (path, app, "read") if role == "input" else (app, path, "wrote")


def graph_edges(world: RandomWorld) -> list[tuple[str, str, str]]:
    """Every edge of the graph, as the operator's app footprints give them."""
    out = []
    for a in range(APPS):
        body = world.get("root", f"/v1/provenance/apps/app{a}").json()
        out += [(f"app{a}", "input", f["path"]) for f in body["inputs"]]
        out += [(f"app{a}", "output", f["path"]) for f in body["outputs"]]
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    user=st.sampled_from(USERS),
    index=st.integers(0, 160 + 2 * APPS - 1),
    direction=st.sampled_from(["upstream", "downstream"]),
    depth=st.integers(1, 4),
)
def test_lineage_shows_only_the_callers_files_and_walks_through_no_other(
    world: RandomWorld, user: str, index: int, direction: str, depth: int
) -> None:
    path, mine = world.paths[index], world.members[user]
    answer = world.get(user, "/v1/lineage", path=path, direction=direction, depth=depth)
    if not visible(path, mine):
        missing = path.rsplit("/", 1)[0] + "/does-not-exist.pb"
        twin = world.get(user, "/v1/lineage", path=missing, direction=direction, depth=depth)
        assert answer.status_code == twin.status_code == 404
        assert answer.json()["detail"].replace(path, "P") == twin.json()["detail"].replace(
            missing, "P"
        )
        return
    if answer.status_code == 404:  # a file no app touched is in no lineage
        assert path not in {f for _, _, f in graph_edges(world)}
        return
    graph = answer.json()
    names = {n["id"]: n.get("path") or n["app_id"] for n in graph["nodes"]}
    nodes, edges = expected_lineage(graph_edges(world), path, direction, depth, mine)
    assert set(names.values()) == nodes
    assert {(names[e["from"]], names[e["to"]], e["op"]) for e in graph["edges"]} == edges


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=st.sampled_from(USERS), index=st.integers(0, 160 + 2 * APPS - 1))
def test_history_of_a_file_outside_looks_like_a_missing_files(
    world: RandomWorld, user: str, index: int
) -> None:
    path = world.paths[index]
    answer = world.get(user, "/v1/provenance/files", path=path)
    if visible(path, world.members[user]):
        assert answer.json() == world.get("root", "/v1/provenance/files", path=path).json()
        return
    missing = path.rsplit("/", 1)[0] + "/does-not-exist.jpg"
    twin = world.get(user, "/v1/provenance/files", path=missing)
    assert answer.status_code == twin.status_code == 404
    assert answer.json()["detail"].replace(path, "P") == twin.json()["detail"].replace(missing, "P")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=st.sampled_from(USERS), app=st.integers(0, APPS - 1))
def test_an_apps_footprint_counts_only_the_callers_files(
    world: RandomWorld, user: str, app: int
) -> None:
    mine = world.members[user]
    everything = world.get("root", f"/v1/provenance/apps/app{app}").json()
    expected = {
        role: [f for f in everything[role] if visible(f["path"], mine)]
        for role in ("inputs", "outputs")
    }
    answer = world.get(user, f"/v1/provenance/apps/app{app}")
    if not expected["inputs"] and not expected["outputs"]:
        ghost = world.get(user, "/v1/provenance/apps/ghost")
        assert answer.status_code == ghost.status_code == 404
        assert answer.json()["detail"].replace(f"app{app}", "A") == ghost.json()["detail"].replace(
            "ghost", "A"
        )
        return
    assert answer.status_code == 200
    assert answer.json() == {"app_id": f"app{app}", **expected}
