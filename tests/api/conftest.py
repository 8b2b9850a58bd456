"""A small world for API tests: two projects, users with roles, annotated files, an index."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from epipe import accounts
from epipe.cli import cli
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.rebuild import rebuild
from epipe.settings import Settings
from epipe.wiring import open_index_store
from search_api import create_app

FILES: dict[str, dict[str, Any]] = {
    "/Projects/cars/img/a.jpg": {"labels": {"objects": {"bicycle": 4}, "camera": "front"}},
    "/Projects/cars/img/b.jpg": {"labels": {"objects": {"bicycle": 1}, "camera": "rear"}},
    "/Projects/cars/docs/readme.txt": {},
    "/Projects/bikes/x.jpg": {"labels": {"objects": {"bicycle": 5}, "camera": "front"}},
    "/Projects/bikes/secret/y.jpg": {"labels": {"objects": {"bicycle": 8}}},
    "/shared/outside.jpg": {"labels": {"objects": {"bicycle": 9}}},
}


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str]
    conn: psycopg.Connection
    settings: Settings

    def get(self, user: str | None, url: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        return self.client.get(url, params=params, headers=headers)

    def call(self, method: str, user: str, url: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return self.client.request(method, url, headers=headers, **kwargs)


def populate(conn: psycopg.Connection) -> None:
    for name in ("alice", "bob", "carol", "dave"):
        accounts.add_user(conn, name)
    accounts.create_project(conn, "cars", "alice")
    accounts.create_project(conn, "bikes", "bob")
    accounts.add_member(conn, "cars", "carol", "reader")
    ns = Namespace(conn, Actor("root", "setup"))
    for path, xattrs in FILES.items():
        ns.mkdir(path.rsplit("/", 1)[0], parents=True)
        ns.put(path, size=len(path))
        for name, value in xattrs.items():
            ns.setxattr(path, name, value)


@pytest.fixture(params=["tantivy", "elasticsearch"])
def world(
    request: pytest.FixtureRequest, dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> Iterator[World]:
    engine: dict[str, Any] = {}
    if request.param == "elasticsearch":
        engine = {"index": "elasticsearch", "es_url": request.getfixturevalue("elasticsearch_url")}
        from epipe.index.elasticsearch import ElasticsearchStore

        store = ElasticsearchStore(engine["es_url"])
        for name in store._generations():
            store.client.indices.delete(index=name)
    populate(conn)
    settings = Settings(dsn=dsn, home=tmp_path, **engine)  # type: ignore[arg-type]
    _, index = rebuild(conn, open_index_store(settings))
    index.close()
    tokens = {
        name: accounts.create_token(conn, name)
        for name in ("root", "alice", "bob", "carol", "dave")
    }
    with TestClient(create_app(settings)) as client:
        yield World(client, tokens, conn, settings)


def cli_on(dsn: str, home: Path) -> Callable[..., str]:
    """`epipe ARGS` in process on database `dsn` and home `home`; its output (it must succeed)."""

    def epipe(*args: str) -> str:
        result = CliRunner().invoke(
            cli, list(args), env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(home)}
        )
        assert result.exit_code == 0, (args, result.output, result.stderr)
        return result.stdout

    return epipe
