"""The provenance endpoints over a real pipeline: history, an app's footprint and lineage,
each within the caller's projects; read-your-writes after a token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from epipe import accounts, wiring
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.settings import Settings
from search_api import create_app
from tests.api.conftest import World, populate
from tests.integration.pipeline_helpers import running

MODEL = "/Projects/cars/models/m.pb"
REPORT = "/Projects/cars/reports/r.csv"


def provenance(dsn: str) -> Any:
    return wiring.consumer("provenance", Settings(dsn=dsn), dsn)  # type: ignore[arg-type]


def train(conn: psycopg.Connection) -> str:
    """train-1 reads two images of cars and one of bikes and writes a model to cars;
    eval-2 reads the model and writes a report. The last token."""
    ns = Namespace(conn)
    ns.mkdir("/Projects/cars/models")
    ns.mkdir("/Projects/cars/reports")
    trainer = Namespace(conn, Actor("root", "train-1"))
    for path in ("/Projects/cars/img/a.jpg", "/Projects/cars/img/b.jpg", "/Projects/bikes/x.jpg"):
        trainer.cat(path)
    trainer.cat("/Projects/cars/img/a.jpg")
    trainer.put(MODEL, size=10)
    evaluator = Namespace(conn, Actor("root", "eval-2"))
    evaluator.cat(MODEL)
    return evaluator.put(REPORT, size=3).token


@pytest.fixture
def prov(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> Iterator[World]:
    populate(conn)
    with running(dsn, tmp_path, consumers=[provenance(dsn)]) as pipeline:
        pipeline.wait(conn, train(conn))
    settings = Settings(dsn=dsn, home=tmp_path)  # type: ignore[arg-type]
    tokens = {n: accounts.create_token(conn, n) for n in ("root", "alice", "bob", "carol", "dave")}
    with TestClient(create_app(settings)) as client:
        yield World(client, tokens, conn, settings)


def files(graph: dict[str, Any]) -> set[str]:
    return {n["path"] for n in graph["nodes"] if n["type"] == "file"}


def apps(graph: dict[str, Any]) -> set[str]:
    return {n["app_id"] for n in graph["nodes"] if n["type"] == "app"}


def test_lineage_of_a_model_shows_what_it_was_made_from_within_the_callers_projects(
    prov: World,
) -> None:
    answer = prov.get("alice", "/v1/lineage", path=MODEL, depth=1)
    assert answer.status_code == 200, answer.text
    graph = answer.json()
    assert files(graph) == {MODEL, "/Projects/cars/img/a.jpg", "/Projects/cars/img/b.jpg"}
    assert apps(graph) == {"train-1"}
    ids = {n.get("path") or n["app_id"]: n["id"] for n in graph["nodes"]}
    assert graph["root"] == ids[MODEL]
    assert {"from": ids["train-1"], "to": ids[MODEL], "op": "wrote"} in graph["edges"]
    assert {"from": ids["/Projects/cars/img/a.jpg"], "to": ids["train-1"], "op": "read"} in graph[
        "edges"
    ]
    assert len(graph["edges"]) == 3  # nothing leads to the bikes image
    model = next(n for n in graph["nodes"] if n.get("path") == MODEL)
    assert model == {
        "id": ids[MODEL],
        "type": "file",
        "path": MODEL,
        "artifact": "model",
        "deleted": False,
    }
    assert graph["truncated"] is False
    # a generation further: the app that made the images (the setup, populate())
    assert apps(prov.get("alice", "/v1/lineage", path=MODEL).json()) == {"train-1", "setup"}
    # the operator sees the other project's input too
    assert "/Projects/bikes/x.jpg" in files(prov.get("root", "/v1/lineage", path=MODEL).json())


def test_downstream_and_depth(prov: World) -> None:
    down = prov.get("carol", "/v1/lineage", path="/Projects/cars/img/a.jpg", direction="downstream")
    assert files(down.json()) == {"/Projects/cars/img/a.jpg", MODEL, REPORT}
    assert apps(down.json()) == {"train-1", "eval-2"}
    shallow = prov.get(
        "carol", "/v1/lineage", path="/Projects/cars/img/a.jpg", direction="downstream", depth=1
    )
    assert files(shallow.json()) == {"/Projects/cars/img/a.jpg", MODEL}
    up = prov.get("alice", "/v1/lineage", path=REPORT, depth=2).json()
    assert files(up) == {REPORT, MODEL, "/Projects/cars/img/a.jpg", "/Projects/cars/img/b.jpg"}
    # bob sees his image feed train-1, and nothing it made in cars
    bikes = prov.get("bob", "/v1/lineage", path="/Projects/bikes/x.jpg", direction="downstream")
    assert files(bikes.json()) == {"/Projects/bikes/x.jpg"}
    assert apps(bikes.json()) == {"train-1"}


def test_an_outsider_gets_404_exactly_as_for_a_missing_file(prov: World) -> None:
    missing = "/Projects/cars/models/none.pb"
    for url in ("/v1/lineage", "/v1/provenance/files"):
        mine = prov.get("bob", url, path=MODEL)
        twin = prov.get("bob", url, path=missing)
        assert mine.status_code == twin.status_code == 404
        assert mine.json()["detail"].replace(MODEL, "P") == twin.json()["detail"].replace(
            missing, "P"
        )
    # dave belongs to no project: no app shows any file to him
    ghost = prov.get("dave", "/v1/provenance/apps/ghost")
    real = prov.get("dave", "/v1/provenance/apps/train-1")
    assert ghost.status_code == real.status_code == 404
    assert real.json()["detail"].replace("train-1", "A") == ghost.json()["detail"].replace(
        "ghost", "A"
    )


def test_an_apps_footprint_counts_only_the_callers_files(prov: World) -> None:
    body = prov.get("alice", "/v1/provenance/apps/train-1").json()
    assert [f["path"] for f in body["inputs"]] == [
        "/Projects/cars/img/a.jpg",
        "/Projects/cars/img/b.jpg",
    ]
    assert [f["count"] for f in body["inputs"]] == [2, 1]
    assert [(f["path"], f["artifact"], f["ops"]) for f in body["outputs"]] == [
        (MODEL, "model", ["create"])
    ]
    bob = prov.get("bob", "/v1/provenance/apps/train-1").json()
    assert [f["path"] for f in bob["inputs"]] == ["/Projects/bikes/x.jpg"]
    assert bob["outputs"] == []


def test_history_pages_through_a_files_operations(prov: World) -> None:
    first = prov.get("alice", "/v1/provenance/files", path="/Projects/cars/img/a.jpg", limit=2)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [op["op"] for op in page["ops"]] == ["create", "setxattr"]
    assert page["next_offset"] == 2
    rest = prov.get(
        "alice", "/v1/provenance/files", path="/Projects/cars/img//a.jpg", offset=2
    ).json()
    assert [(op["op"], op["app_id"], op["user"]) for op in rest["ops"]] == [
        ("read", "train-1", "root"),
        ("read", "train-1", "root"),
    ]
    assert rest["next_offset"] is None
    assert "id" not in rest["ops"][0]  # the log's ids would tell how busy others were


@pytest.mark.parametrize(
    ("url", "params", "part"),
    [
        ("/v1/lineage", {"path": MODEL, "depth": 0}, "depth"),
        ("/v1/lineage", {"path": MODEL, "depth": 11}, "depth"),
        ("/v1/lineage", {"path": MODEL, "direction": "sideways"}, "direction"),
        ("/v1/lineage", {"path": "models/m.pb"}, "absolute"),
        ("/v1/provenance/files", {"path": MODEL, "limit": 0}, "limit"),
        ("/v1/provenance/files", {"path": MODEL, "offset": -1}, "offset"),
        ("/v1/lineage", {"path": MODEL, "after": "nonsense"}, "after"),
    ],
)
def test_malformed_requests_are_400_naming_the_part(
    prov: World, url: str, params: dict[str, Any], part: str
) -> None:
    answer = prov.get("alice", url, **params)
    assert answer.status_code == 400, answer.text
    assert part in answer.json()["detail"]


def test_lineage_reads_your_writes_with_a_token(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    populate(conn)
    settings = Settings(dsn=dsn, home=tmp_path)  # type: ignore[arg-type]
    token = accounts.create_token(conn, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    alice = Namespace(conn, Actor("alice", "train-7"))
    with TestClient(create_app(settings)) as client:
        with running(dsn, tmp_path, consumers=[provenance(dsn)]) as pipeline:
            pipeline.wait(conn)
            alice.cat("/Projects/cars/img/b.jpg")
            written = alice.put("/Projects/cars/m7.onnx").token
            answer = client.get(
                "/v1/lineage",
                params={"path": "/Projects/cars/m7.onnx", "after": written, "wait_ms": 30000},
                headers=auth,
            )
            assert answer.status_code == 200, answer.text
            assert files(answer.json()) == {"/Projects/cars/m7.onnx", "/Projects/cars/img/b.jpg"}
        late = alice.put("/Projects/cars/late.pb").token
        stale = client.get(
            "/v1/lineage",
            params={"path": "/Projects/cars/late.pb", "after": late, "wait_ms": 50},
            headers=auth,
        )
    assert stale.status_code == 409
    body = stale.json()
    assert "provenance" in body["detail"] and body["token"] == late
    assert body["lag"][0]["consumer"] == "provenance"
