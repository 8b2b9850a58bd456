"""Scope before lookup: a path in another project is answered from the path alone, exactly as
a missing one there — the same answer and the same work (no index or database lookup)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from epipe.index.engine import Page
from epipe.search.query import SearchQuery
from search_api.services import Services
from tests.api.conftest import World


class CountingIndex:
    """The app's index, counting the searches that reach it."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.searches: list[SearchQuery] = []

    def search(self, query: SearchQuery) -> Page:
        self.searches.append(query)
        return self.index.search(query)  # type: ignore[no-any-return]


class CountingConnections:
    """The app's connection pool, counting the connections taken (each request's token check
    takes one; a namespace operation another)."""

    def __init__(self, services: Services) -> None:
        self.taken = 0
        self._connection = services.connection

    @contextmanager
    def __call__(self) -> Iterator[psycopg.Connection]:
        self.taken += 1
        with self._connection() as conn:
            yield conn


def instrument(world: World) -> tuple[CountingIndex, CountingConnections]:
    services: Services = world.client.app.state.services  # type: ignore[attr-defined]
    index = CountingIndex(services.index)
    connections = CountingConnections(services)
    services.index = index  # type: ignore[assignment]
    services.connection = connections  # type: ignore[method-assign]
    return index, connections


def answer(response: Any) -> tuple[int, dict[str, Any]]:
    body = response.json()
    body.pop("took_ms", None)
    return response.status_code, body


def test_under_another_projects_directory_does_what_a_missing_one_does(world: World) -> None:
    index, connections = instrument(world)
    answers, work = [], []
    for under in (
        "/Projects/bikes/secret",  # exists, in bob's project
        "/Projects/bikes/nothing",  # missing, in bob's project
        "/Projects/nosuchproject/x",  # no such project
        "/shared",  # exists, outside every project
    ):
        before = (len(index.searches), connections.taken)
        answers.append(answer(world.get("alice", "/v1/search", under=under, q="jpg")))
        work.append((len(index.searches) - before[0], connections.taken - before[1]))
    assert answers == [(200, {"hits": [], "total": 0, "next_cursor": None})] * 4
    assert work == [(0, 1)] * 4  # the token check only: the index is never asked


def test_under_inside_ones_projects_still_searches(world: World) -> None:
    index, _ = instrument(world)
    found = world.get("alice", "/v1/search", under="/Projects/cars/img", type="file").json()
    assert {hit["path"] for hit in found["hits"]} == {
        "/Projects/cars/img/a.jpg",
        "/Projects/cars/img/b.jpg",
    }
    assert index.searches[-1].under == "/Projects/cars/img"
    everything = world.get("alice", "/v1/search", type="file").json()
    for above in ("/Projects", "/Projects/", "/"):  # above every project: no lookup needed
        assert (
            world.get("alice", "/v1/search", under=above, type="file").json()["hits"]
            == (everything["hits"])
        )
        assert index.searches[-1].under is None
    root = world.get("root", "/v1/search", under="/shared", type="file").json()
    assert [hit["path"] for hit in root["hits"]] == ["/shared/outside.jpg"]


def test_file_calls_on_another_projects_path_never_reach_the_database(world: World) -> None:
    _, connections = instrument(world)
    for url in ("/v1/files/stat", "/v1/files/xattrs", "/v1/files/list"):
        answers, work = [], []
        for path in ("/Projects/bikes/x.jpg", "/Projects/bikes/none.jpg", "/shared/outside.jpg"):
            before = connections.taken
            response = world.get("alice", url, path=path)
            status, body = answer(response)
            answers.append((status, body["detail"].replace(path, "P")))
            work.append(connections.taken - before)
        assert answers == [(404, "no such file or directory: P")] * 3, url
        assert work == [1] * 3, url  # the token check only
    put = world.call(
        "PUT",
        "alice",
        "/v1/files/xattrs",
        params={"path": "/Projects/bikes/x.jpg", "name": "labels"},
        json={"x": 1},
    )
    assert put.status_code == 404
    own = world.get("alice", "/v1/files/stat", path="/Projects/cars/img/none.jpg")
    assert own.status_code == 404 and own.json()["detail"].endswith("/Projects/cars/img/none.jpg")
    assert world.get("carol", "/v1/files/stat", path="/Projects/cars/img/a.jpg").status_code == 200
