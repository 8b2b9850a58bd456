"""What other projects hold never moves a caller's hits, their order or their scores.

A world of three projects; the caller is a member of one. Hypothesis draws changes in the
others (files created with the caller's words in their names, paths and annotations,
annotations set and removed, files moved and removed, in projects and outside any) and
the caller's queries; each answer, walked page by page, is the same before and after the
index holds the changes (rebuilt from the database, as the pipeline converges to)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe import accounts
from epipe.db.embedded import EmbeddedPostgres
from epipe.db.server import connect
from epipe.errors import FsError
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.rebuild import rebuild
from epipe.settings import Settings
from epipe.wiring import open_index_store
from search_api import create_app
from tests.conftest import _dsn_for, drop_database, fresh_database

WORDS = ("red", "blue", "rain", "snow", "car", "bike", "codename")
CALLER = "reader"
ELSEWHERE = ("/Projects/bikes", "/Projects/boats", "/shared")  # not the caller's


@dataclass
class World:
    client: TestClient
    token: str
    conn: psycopg.Connection
    settings: Settings
    created: list[str]
    serial: Iterator[int]

    def answer(self, query: dict[str, Any]) -> tuple[int, list[tuple[str, float]]]:
        """The total and every hit (path, score) of `query`, walked page by page."""
        hits: list[tuple[str, float]] = []
        cursor: str | None = None
        while True:
            params = {**query, **({"cursor": cursor} if cursor else {})}
            response = self.client.get(
                "/v1/search", params=params, headers={"Authorization": f"Bearer {self.token}"}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            hits += [(hit["path"], hit["score"]) for hit in body["hits"]]
            cursor = body["next_cursor"]
            if cursor is None:
                return body["total"], hits

    def reindex(self) -> None:
        _, index = rebuild(self.conn, open_index_store(self.settings))
        index.close()


@pytest.fixture(scope="module", params=["tantivy", "elasticsearch"])
def world(
    request: pytest.FixtureRequest,
    pg_server: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    engine: dict[str, Any] = {}
    if request.param == "elasticsearch":
        engine = {"index": "elasticsearch", "es_url": request.getfixturevalue("elasticsearch_url")}
        from epipe.index.elasticsearch import ElasticsearchStore

        store = ElasticsearchStore(engine["es_url"])
        for generation in store._generations():
            store.client.indices.delete(index=generation)
    name = "scoring"
    fresh_database(pg_server, name)
    home = tmp_path_factory.mktemp("scoring")
    dsn = _dsn_for(pg_server, name)
    settings = Settings(dsn=dsn, home=Path(home), **engine)  # type: ignore[arg-type]
    with connect(dsn) as conn:
        accounts.add_user(conn, CALLER)
        for project in ("cars", "bikes", "boats"):
            accounts.create_project(conn, project, "root")
        accounts.add_member(conn, "cars", CALLER, "reader")
        ns = Namespace(conn, Actor("root", "setup"))
        # the caller's files: twins and every word in each place a word can be
        for i, (word, other) in enumerate(itertools.permutations(WORDS, 2)):
            path = f"/Projects/cars/{word}/{other}_{i % 3}.jpg"
            ns.mkdir(path.rsplit("/", 1)[0], parents=True)
            ns.put(path, size=i)
            ns.setxattr(path, "labels", {"tag": WORDS[i % len(WORDS)], WORDS[i % 5]: i % 4})
        # and what others hold from the start
        for i, word in enumerate(WORDS):
            path = f"{ELSEWHERE[i % 3]}/{word}/{word}_{i}.png"
            ns.mkdir(path.rsplit("/", 1)[0], parents=True)
            ns.put(path)
        token = accounts.create_token(conn, CALLER)
        world = World(
            TestClient(create_app(settings)), token, conn, settings, [], itertools.count()
        )
        world.reindex()
        with world.client:
            yield world
    drop_database(pg_server, name)


words = st.sampled_from(WORDS)
change = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(ELSEWHERE), words, words, words),
    st.tuples(st.just("annotate"), st.integers(0, 10**6), words, words),
    st.tuples(st.just("unannotate"), st.integers(0, 10**6)),
    st.tuples(st.just("move"), st.integers(0, 10**6), st.sampled_from(ELSEWHERE), words),
    st.tuples(st.just("remove"), st.integers(0, 10**6)),
)
query = st.fixed_dictionaries(
    {"q": st.lists(words, min_size=1, max_size=3).map(" ".join)},
    optional={
        "limit": st.sampled_from([1, 4, 1000]),
        "type": st.sampled_from(["file", "dir"]),
        "under": st.sampled_from(["/Projects/cars", "/Projects/bikes", "/Projects"]),
        "xattr": st.sampled_from(["labels.tag=rain", "labels.red exists"]),
    },
)


def apply(world: World, ns: Namespace, step: tuple[Any, ...]) -> None:
    """One change outside the caller's project (a draw naming no file changes nothing)."""
    kind, *args = step
    if kind == "create":
        top, directory, name, note = args
        path = f"{top}/{directory}/{name}-{next(world.serial)}.jpg"
        ns.mkdir(path.rsplit("/", 1)[0], parents=True)
        ns.put(path, size=7)
        ns.setxattr(path, "labels", {"tag": note, note: 1})
        world.created.append(path)
        return
    if not world.created:
        return
    at = args[0] % len(world.created)
    path = world.created[at]
    if kind == "annotate":
        ns.setxattr(path, "labels", {"tag": args[1], args[2]: [args[1], 2]})
    elif kind == "unannotate":
        with contextlib.suppress(FsError):  # removed already
            ns.rmxattr(path, "labels")
    elif kind == "move":
        target = f"{args[1]}/{args[2]}/moved-{next(world.serial)}.jpg"
        ns.mkdir(target.rsplit("/", 1)[0], parents=True)
        ns.mv(path, target)
        world.created[at] = target
    else:
        ns.rm(path)
        world.created.pop(at)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(queries=st.lists(query, min_size=1, max_size=4), changes=st.lists(change, max_size=6))
def test_changes_in_other_projects_leave_every_hit_order_and_score_unchanged(
    world: World, queries: list[dict[str, Any]], changes: list[tuple[Any, ...]]
) -> None:
    before = [world.answer(q) for q in queries]
    ns = Namespace(world.conn, Actor("root", "other-project"))
    for step in changes:
        apply(world, ns, step)
    world.reindex()
    assert [world.answer(q) for q in queries] == before
