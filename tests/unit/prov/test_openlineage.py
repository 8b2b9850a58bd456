"""The lineage graph's apps as OpenLineage run events: the pure translation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from openlineage.client.event_v2 import RunState

from epipe.prov.openlineage import (
    PRODUCER,
    Access,
    AppRun,
    EpipeAppRunFacet,
    namespace,
    run_events,
    run_id,
    to_json,
)
from tests.openlineage_events import checked

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
NS = namespace("lab-fs")


def access(inode: int, path: str, ops: tuple[str, ...], **kw: object) -> Access:
    fields: dict[str, object] = {
        "kind": "file",
        "artifact": None,
        "deleted_at": None,
        "first_at": T0,
        "last_at": T0 + timedelta(seconds=5),
        "count": 2,
        **kw,
    }
    return Access(inode, path, ops=ops, **fields)  # type: ignore[arg-type]


TRAIN = AppRun(
    "train-1",
    T0,
    T0 + timedelta(minutes=3),
    ops=6,
    users=("alice", "bob"),
    inputs=(
        access(12, "/p/data/b.csv", ("read",), artifact="dataset"),
        access(11, "/p/data/a.csv", ("read",), artifact="dataset"),
        access(13, "/p/old/c.csv", ("read",), deleted_at=T0 + timedelta(hours=1)),
    ),
    outputs=(access(20, "/p/models/m.pb", ("create", "write"), artifact="model", count=1),),
)


def test_an_app_is_one_run_started_at_its_first_operation_completed_at_its_last() -> None:
    start, complete = run_events(TRAIN, NS)
    assert (start.eventType, complete.eventType) == (RunState.START, RunState.COMPLETE)
    assert start.eventTime == "2026-12-01T09:30:00+00:00"
    assert complete.eventTime == "2026-12-01T09:33:00+00:00"
    assert start.run.runId == complete.run.runId == run_id(NS, "train-1")
    assert start.job.name == complete.job.name == "train-1"
    assert start.job.namespace == NS == "epipe://lab-fs"
    assert (start.inputs, start.outputs) == ([], [])  # what it read and wrote: at its end
    facet = (start.run.facets or {})["epipe_app"]
    assert isinstance(facet, EpipeAppRunFacet)
    assert (facet.users, facet.operations) == (["alice", "bob"], 6)


def test_a_run_id_is_the_same_for_an_app_in_a_namespace_and_differs_otherwise() -> None:
    assert run_id(NS, "train-1") == run_id(namespace("lab-fs"), "train-1")
    assert uuid.UUID(run_id(NS, "train-1")).version == 5
    assert len({run_id(NS, "train-1"), run_id(NS, "train-2"), run_id("epipe://x", "train-1")}) == 3


def test_datasets_are_named_by_path_with_their_kind_artifact_and_deletion() -> None:
    _, complete = run_events(TRAIN, NS)
    assert [d.name for d in complete.inputs or []] == [
        "/p/data/a.csv",
        "/p/data/b.csv",
        "/p/old/c.csv",
    ]
    assert {d.namespace for d in [*(complete.inputs or []), *(complete.outputs or [])]} == {NS}
    data = checked(to_json(complete))
    model = data["outputs"][0]
    assert model["name"] == "/p/models/m.pb"
    assert model["facets"]["epipe_file"] == {
        "_producer": PRODUCER,
        "_schemaURL": "urn:epipe:openlineage:facets:1#/$defs/EpipeFileDatasetFacet",
        "inodeId": 20,
        "kind": "file",
        "artifact": "model",
        "exists": True,
    }
    assert model["facets"]["datasetType"]["datasetType"] == "FILE"
    assert model["outputFacets"]["epipe_access"]["operations"] == ["create", "write"]
    gone = data["inputs"][2]["facets"]["epipe_file"]
    assert (gone["exists"], gone["deletedAt"]) == (False, "2026-12-01T10:30:00+00:00")
    assert "artifact" not in data["inputs"][2]["facets"]["epipe_file"]  # none: left out


def test_events_round_trip_through_the_client_model_and_facets_follow_their_schema() -> None:
    folder = access(30, "/p/frames", ("mkdir",), kind="dir", artifact="dataset")
    lonely = AppRun("idle", T0, T0, ops=1, users=("1234",), outputs=(folder,))
    for run in (TRAIN, lonely):
        for event in run_events(run, NS):
            line = to_json(event)
            assert "\n" not in line
            checked(line)
    _, complete = run_events(lonely, NS)
    assert checked(to_json(complete))["outputs"][0]["facets"]["datasetType"] == {
        "_producer": complete.producer,
        "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/DatasetTypeDatasetFacet.json"
        "#/$defs/DatasetTypeDatasetFacet",
        "datasetType": "DIRECTORY",
    }
