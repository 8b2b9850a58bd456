"""The API as a new user meets it: accounts made with the CLI, `epipe run` and `epipe serve`
as real processes, every call over HTTP. Two users, two projects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from epipe.bench.search import Served
from tests.api.conftest import cli_on
from tests.integration.pipeline_helpers import PipelineProcess, new_slot

PROBLEM = "application/problem+json"


class Session:
    def __init__(self, url: str, token: str | None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=30)

    def get(self, url: str, **params: Any) -> httpx.Response:
        return self.http.get(url, params=params)

    def paths(self, **params: Any) -> set[str]:
        response = self.get("/v1/search", limit=100, **params)
        assert response.status_code == 200, response.text
        return {hit["path"] for hit in response.json()["hits"]}


@pytest.fixture
def site(dsn: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Accounts and files made with the CLI; the pipeline and the API running."""

    epipe = cli_on(dsn, tmp_path)

    tokens = {}
    for user, project in (("alice", "cars"), ("bob", "bikes")):
        epipe("user", "add", user)
        epipe("project", "create", project, "--owner", user)
        epipe("fs", "mkdir", f"/Projects/{project}/img", "--user", user)
        for name in ("one.jpg", "two.jpg"):
            epipe("fs", "put", f"/Projects/{project}/img/{name}", "--size", "7", "--user", user)
        tokens[user] = epipe("token", "create", user).splitlines()[-1]
    pipeline = PipelineProcess(dsn, tmp_path, new_slot(), tmp_path / "events.jsonl")
    pipeline.start()
    try:
        with Served(dsn, tmp_path) as url:
            yield {"url": url, "tokens": tokens, "epipe": epipe}
    finally:
        assert pipeline.stop() == 0, pipeline.log.read_text()


def test_two_users_in_two_projects(site: dict[str, Any]) -> None:
    alice = Session(site["url"], site["tokens"]["alice"])
    bob = Session(site["url"], site["tokens"]["bob"])

    # An annotation, then a search with its token, finds it at once.
    put = alice.http.put(
        "/v1/files/xattrs",
        params={"path": "/Projects/cars/img/one.jpg", "name": "labels"},
        json={"objects": {"bicycle": 4}},
    )
    assert put.status_code == 200, put.text
    found = alice.get(
        "/v1/search", xattr="labels.objects.bicycle>3", after=put.json()["token"], wait_ms=20_000
    )
    assert found.status_code == 200, found.text
    assert [hit["path"] for hit in found.json()["hits"]] == ["/Projects/cars/img/one.jpg"]

    # Each sees only their own project's files.
    assert alice.paths(type="file") == {"/Projects/cars/img/one.jpg", "/Projects/cars/img/two.jpg"}
    assert bob.paths(type="file") == {"/Projects/bikes/img/one.jpg", "/Projects/bikes/img/two.jpg"}
    assert bob.paths(q="one") == {"/Projects/bikes/img/one.jpg"}
    assert bob.get("/v1/search", xattr="labels.objects.bicycle>3").json()["total"] == 0

    # Asking about the other's files looks like asking about files that do not exist.
    for endpoint in ("/v1/files/stat", "/v1/files/xattrs", "/v1/files/list"):
        theirs = bob.get(endpoint, path="/Projects/cars/img/one.jpg")
        missing = bob.get(endpoint, path="/Projects/cars/img/none.jpg")
        assert theirs.status_code == missing.status_code == 404
        assert theirs.headers["content-type"] == missing.headers["content-type"] == PROBLEM
        assert theirs.json()["detail"].replace("one", "X") == missing.json()["detail"].replace(
            "none", "X"
        )
    assert bob.get("/v1/files/stat", path="/Projects/bikes/img/one.jpg").json()["size"] == 7
    assert alice.get("/v1/files/xattrs", path="/Projects/cars/img/one.jpg").json()["xattrs"] == {
        "labels": {"objects": {"bicycle": 4}}
    }

    # A malformed predicate is a 400 naming it; no token is a 401.
    bad = alice.get("/v1/search", xattr="labels.objects.bicycle>>3")
    assert bad.status_code == 400 and bad.headers["content-type"] == PROBLEM
    assert "labels.objects.bicycle>>3" in bad.json()["detail"]
    anonymous = Session(site["url"], None).get("/v1/search", q="one")
    assert anonymous.status_code == 401 and anonymous.headers["content-type"] == PROBLEM

    # A revoked token stops working at once.
    assert "revoked 1 token(s) of bob" in site["epipe"]("token", "revoke", "bob")
    assert bob.get("/v1/search", q="one").status_code == 401
