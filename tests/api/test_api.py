"""The REST API: search, files, access control, errors, read-your-writes, operations."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg

from epipe.fs.namespace import Namespace
from tests.api.conftest import World
from tests.integration.pipeline_helpers import index_consumer, running

PROBLEM = "application/problem+json"


def paths(response: object) -> set[str]:
    body = response.json()  # type: ignore[attr-defined]
    return {hit["path"] for hit in body["hits"]}


def test_no_or_bad_token_is_401_problem_json(world: World) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = world.client.get("/v1/search", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status"] == 401
        assert "Traceback" not in response.text


def test_each_caller_sees_only_their_projects(world: World) -> None:
    assert paths(world.get("alice", "/v1/search", type="file")) == {
        "/Projects/cars/img/a.jpg",
        "/Projects/cars/img/b.jpg",
        "/Projects/cars/docs/readme.txt",
    }
    assert paths(world.get("bob", "/v1/search", type="file")) == {
        "/Projects/bikes/x.jpg",
        "/Projects/bikes/secret/y.jpg",
    }
    assert paths(world.get("carol", "/v1/search", type="file")) == paths(
        world.get("alice", "/v1/search", type="file")
    )
    assert world.get("dave", "/v1/search").json()["total"] == 0
    assert len(paths(world.get("root", "/v1/search", type="file"))) == 6


def test_annotation_range_query_scoped(world: World) -> None:
    response = world.get("alice", "/v1/search", xattr="labels.objects.bicycle>3")
    assert response.status_code == 200
    body = response.json()
    assert [h["path"] for h in body["hits"]] == ["/Projects/cars/img/a.jpg"]
    assert body["total"] == 1 and body["took_ms"] >= 0
    hit = body["hits"][0]
    assert hit["xattrs"] == {"labels": {"objects": {"bicycle": 4}, "camera": "front"}}
    assert set(hit) == {"path", "name", "type", "size", "owner", "modified", "xattrs", "score"}
    both = world.get(
        "root", "/v1/search", xattr=["labels.objects.bicycle>3", "labels.camera=front"]
    )
    assert paths(both) == {"/Projects/cars/img/a.jpg", "/Projects/bikes/x.jpg"}


def test_post_search_is_the_same_query(world: World) -> None:
    body = {"xattr": ["labels.objects.bicycle>=1"], "sort": "-size", "limit": 10}
    posted = world.call("POST", "alice", "/v1/search", json=body).json()
    got = world.get("alice", "/v1/search", **body).json()
    assert [h["path"] for h in posted["hits"]] == [h["path"] for h in got["hits"]]
    assert posted["total"] == got["total"] == 2


def test_another_projects_file_looks_like_a_missing_one(world: World) -> None:
    def same(user: str, url: str, real: str, missing: str, **extra: str) -> None:
        a = world.get(user, url, path=real, **extra)
        b = world.get(user, url, path=missing, **extra)
        assert (
            (a.status_code, a.headers["content-type"])
            == (b.status_code, b.headers["content-type"])
            == (404, PROBLEM)
        )
        assert a.json()["detail"].replace(real, "P") == b.json()["detail"].replace(missing, "P")

    for url in ("/v1/files/stat", "/v1/files/xattrs", "/v1/files/list"):
        same("alice", url, "/Projects/bikes/x.jpg", "/Projects/bikes/nothing.jpg")
        same("alice", url, "/Projects/bikes/x.jpg", "/Projects/cars/img/nothing.jpg")
        same("alice", url, "/Projects/bikes", "/Projects/nosuchproject")
        same("dave", url, "/shared/outside.jpg", "/shared/none.jpg")
    for user, path in (("alice", "/Projects/bikes"), ("alice", "/Projects/nosuchproject/x")):
        assert world.get(user, "/v1/search", under=path).json()["total"] == 0
    put = world.call(
        "PUT",
        "alice",
        "/v1/files/xattrs",
        params={"path": "/Projects/bikes/x.jpg", "name": "labels"},
        json={"x": 1},
    )
    assert put.status_code == 404  # and nothing was written:
    assert world.get("bob", "/v1/files/xattrs", path="/Projects/bikes/x.jpg").json()["xattrs"][
        "labels"
    ]["objects"] == {"bicycle": 5}


def test_files_endpoints_for_members(world: World) -> None:
    stat = world.get("alice", "/v1/files/stat", path="/Projects/cars/img/a.jpg").json()
    assert (stat["path"], stat["type"], stat["owner"], stat["group"]) == (
        "/Projects/cars/img/a.jpg",
        "file",
        "root",
        "cars",
    )
    listing = world.get("alice", "/v1/files/list", path="/Projects/cars/img", limit=1).json()
    assert [e["name"] for e in listing["entries"]] == ["a.jpg"]
    rest = world.get(
        "alice", "/v1/files/list", path="/Projects/cars/img", cursor=listing["next_cursor"]
    ).json()
    assert [e["path"] for e in rest["entries"]] == ["/Projects/cars/img/b.jpg"]
    assert rest["next_cursor"] is None
    assert (
        world.get(
            "alice", "/v1/files/xattrs", path="/Projects/cars/img/a.jpg", name="labels"
        ).json()["xattrs"]["labels"]["camera"]
        == "front"
    )
    token = world.call(
        "PUT",
        "alice",
        "/v1/files/xattrs",
        json=[1, "two", None],
        params={"path": "/Projects/cars/img/b.jpg", "name": "review"},
    ).json()
    assert token["token"].count("/") == 1
    deleted = world.call(
        "DELETE",
        "alice",
        "/v1/files/xattrs",
        params={"path": "/Projects/cars/img/b.jpg", "name": "review"},
    )
    assert deleted.status_code == 200
    missing = world.call(
        "DELETE",
        "alice",
        "/v1/files/xattrs",
        params={"path": "/Projects/cars/img/b.jpg", "name": "review"},
    )
    assert missing.status_code == 404 and "no such attribute" in missing.json()["detail"]


def test_readers_read_but_do_not_write(world: World) -> None:
    assert world.get("carol", "/v1/files/stat", path="/Projects/cars/img/a.jpg").status_code == 200
    put = world.call(
        "PUT",
        "carol",
        "/v1/files/xattrs",
        json=1,
        params={"path": "/Projects/cars/img/a.jpg", "name": "x"},
    )
    assert put.status_code == 403  # a member who may read: no need to pretend it is missing
    assert put.headers["content-type"] == PROBLEM


def test_malformed_requests_are_400_naming_the_part(world: World) -> None:
    cases = [
        ({"xattr": "labels.objects.bicycle>lots"}, "xattr 'labels.objects.bicycle>lots'"),
        ({"xattr": "labels"}, "xattr 'labels'"),
        ({"limit": "5000"}, "limit"),
        ({"sort": "random"}, "sort"),
        ({"size_min": "-1"}, "size_min"),
        ({"modified_after": "yesterday"}, "modified_after"),
        ({"cursor": "garbage"}, "cursor"),
        ({"under": "relative/path"}, "relative/path"),
        ({"q": "   "}, "q"),
        ({"q": ""}, "q"),
        ({"q": "-_./"}, "q"),
    ]
    for params, part in cases:
        response = world.get("alice", "/v1/search", **params)
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"] == PROBLEM
        assert part in response.json()["detail"], (params, response.json())
    other = world.get("alice", "/v1/search", type="file", limit=1).json()["next_cursor"]
    reused = world.get("alice", "/v1/search", type="dir", cursor=other)
    assert reused.status_code == 400 and "another query" in reused.json()["detail"]


def test_cursor_pages_through_every_hit(world: World) -> None:
    seen, cursor = [], None
    while True:
        params = {"sort": "path", "limit": 2} | ({"cursor": cursor} if cursor else {})
        body = world.get("root", "/v1/search", **params).json()
        seen += [h["path"] for h in body["hits"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == body["total"]


def test_operations_endpoints(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    assert world.client.get("/v1/status").status_code == 401
    state = world.get("alice", "/v1/status").json()
    assert "retained_wal_bytes" in state and "consumers" in state
    metrics = world.client.get("/metrics").text
    for name in (
        "epipe_retained_wal_bytes",
        "epipe_events_in_total",
        "epipe_dead_letters",
        "epipe_consumer_lag_seconds",
        "epipe_http_requests_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in metrics or name in metrics, name
    docs = world.client.get("/docs")
    assert docs.status_code == 200
    spec = world.client.get("/openapi.json").json()
    assert "examples" in str(spec["paths"]["/v1/search"])


def test_an_annotation_is_searchable_at_once_with_its_token(
    world: World, dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    consumer = index_consumer(dsn, tmp_path / "index", world.settings)
    with running(dsn, tmp_path, consumers=[consumer]) as pipeline:
        pipeline.backfilled(conn)
        put = world.call(
            "PUT",
            "alice",
            "/v1/files/xattrs",
            json={"stars": 5},
            params={"path": "/Projects/cars/docs/readme.txt", "name": "review"},
        )
        token = put.json()["token"]
        found = world.get("alice", "/v1/search", xattr="review.stars>=5", after=token, wait_ms=5000)
        assert found.status_code == 200
        assert paths(found) == {"/Projects/cars/docs/readme.txt"}
    # no index consumer applies anything any more: a later token cannot be read
    late = Namespace(conn).put("/Projects/cars/late.txt").token
    stale = world.get("alice", "/v1/search", after=late, wait_ms=50)
    assert stale.status_code == 409
    body = stale.json()
    assert body["token"] == late and body["lag"][0]["consumer"] == "index"
    assert body["lag"][0]["lag_bytes"] > 0


def test_many_callers_at_once(world: World) -> None:
    errors: list[str] = []

    def hammer(user: str) -> None:
        for _ in range(20):
            response = world.get(user, "/v1/search", xattr="labels.objects.bicycle>0")
            if response.status_code != 200:
                errors.append(response.text)

    threads = [threading.Thread(target=hammer, args=(u,)) for u in ("alice", "bob", "root")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
