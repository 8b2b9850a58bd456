"""Artifact kinds in search: `artifact=` of GET and POST /v1/search, `epipe search --artifact`;
a filter like the others, inside the caller's projects."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from click.testing import CliRunner

from epipe.cli import cli
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.rebuild import rebuild
from epipe.settings import Settings
from epipe.wiring import open_index_store
from tests.api.conftest import World, cli_on, populate

PROBLEM = "application/problem+json"
ARTIFACTS = (
    "/Projects/cars/models/resnet.pb",
    "/Projects/cars/models/export/saved_model/saved_model.pb",
    "/Projects/cars/train.csv",
    "/Projects/cars/model-notes.txt",  # "model" in its name only: no kind
    "/Projects/bikes/bikes.onnx",
    "/shared/outside.h5",
)
CARS_MODELS = {
    "/Projects/cars/models/resnet.pb",
    "/Projects/cars/models/export/saved_model",
    "/Projects/cars/models/export/saved_model/saved_model.pb",
}


def add_artifacts(conn: psycopg.Connection, settings: Settings) -> None:
    ns = Namespace(conn, Actor("root", "setup"))
    for path in ARTIFACTS:
        ns.mkdir(path.rsplit("/", 1)[0], parents=True)
        ns.put(path)
    _, index = rebuild(conn, open_index_store(settings))
    index.close()


def paths(response: object) -> set[str]:
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    return {hit["path"] for hit in response.json()["hits"]}  # type: ignore[attr-defined]


def test_artifact_model_returns_only_models_of_the_callers_projects(world: World) -> None:
    add_artifacts(world.conn, world.settings)
    assert paths(world.get("alice", "/v1/search", artifact="model")) == CARS_MODELS
    assert paths(world.get("carol", "/v1/search", artifact="model")) == CARS_MODELS
    assert paths(world.get("bob", "/v1/search", artifact="model")) == {"/Projects/bikes/bikes.onnx"}
    assert world.get("dave", "/v1/search", artifact="model").json()["total"] == 0
    assert paths(world.get("root", "/v1/search", artifact="model")) == CARS_MODELS | {
        "/Projects/bikes/bikes.onnx",
        "/shared/outside.h5",
    }
    # combined with the rest of the query
    assert paths(world.get("alice", "/v1/search", artifact="model", type="file")) == (
        CARS_MODELS - {"/Projects/cars/models/export/saved_model"}
    )
    assert paths(world.get("alice", "/v1/search", q="resnet", artifact="model")) == {
        "/Projects/cars/models/resnet.pb"
    }
    assert paths(world.get("alice", "/v1/search", q="model", artifact="dataset")) == set()
    assert paths(
        world.get("alice", "/v1/search", artifact="model", under="/Projects/cars/models/export")
    ) == CARS_MODELS - {"/Projects/cars/models/resnet.pb"}
    assert paths(world.get("alice", "/v1/search", artifact="model", under="/Projects/bikes")) == (
        set()
    )
    assert paths(world.get("alice", "/v1/search", artifact="dataset")) == {
        "/Projects/cars/train.csv"
    }
    assert paths(world.get("alice", "/v1/search", artifact="image")) == {
        "/Projects/cars/img/a.jpg",
        "/Projects/cars/img/b.jpg",
    }
    posted = world.call("POST", "alice", "/v1/search", json={"artifact": "model"})
    assert paths(posted) == CARS_MODELS


def test_a_cursor_belongs_to_its_artifact_kind(world: World) -> None:
    add_artifacts(world.conn, world.settings)
    first = world.get("alice", "/v1/search", artifact="model", sort="path", limit=2).json()
    rest = world.get(
        "alice", "/v1/search", artifact="model", sort="path", limit=2, cursor=first["next_cursor"]
    )
    seen = [h["path"] for h in first["hits"]] + [h["path"] for h in rest.json()["hits"]]
    assert seen == sorted(CARS_MODELS)
    other = world.get(
        "alice", "/v1/search", artifact="image", sort="path", limit=2, cursor=first["next_cursor"]
    )
    assert other.status_code == 400 and "another query" in other.json()["detail"]


def test_an_unknown_artifact_kind_is_a_400_naming_it_and_the_known_ones(world: World) -> None:
    for response in (
        world.get("alice", "/v1/search", artifact="weights"),
        world.call("POST", "alice", "/v1/search", json={"artifact": "weights"}),
    ):
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == PROBLEM
        body = response.json()
        assert body["part"] == "artifact"
        assert body["detail"] == (
            "artifact: must be one of model, dataset, notebook, image; got 'weights'"
        )


def test_epipe_search_filters_by_artifact(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    populate(conn)
    add_artifacts(conn, Settings(dsn=dsn, home=tmp_path))  # type: ignore[arg-type]
    epipe = cli_on(dsn, tmp_path)
    found = json.loads(epipe("search", "--artifact", "model", "--json"))
    assert {hit["path"] for hit in found["hits"]} == CARS_MODELS | {
        "/Projects/bikes/bikes.onnx",
        "/shared/outside.h5",
    }
    assert {hit["artifact"] for hit in found["hits"]} == {"model"}
    narrowed = json.loads(
        epipe("search", "resnet", "--artifact", "model", "--under", "/Projects/cars", "--json")
    )
    assert [hit["path"] for hit in narrowed["hits"]] == ["/Projects/cars/models/resnet.pb"]
    refused = CliRunner().invoke(
        cli,
        ["search", "--artifact", "weights"],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)},
    )
    assert refused.exit_code == 2
    assert "'weights' is not one of 'model', 'dataset', 'notebook', 'image'" in refused.output
