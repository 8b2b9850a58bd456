"""Checking exported OpenLineage lines: each parses back into the openlineage client's model
and serialises to the same JSON, and epipe's facets follow their shipped JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import BaseFacet, dataset_type_dataset
from openlineage.client.serde import Serde

from epipe.prov import openlineage as ol

FACETS = json.loads(
    (Path(__file__).parent.parent / "schemas/openlineage/facets-1.json").read_text()
)
RUN_FACETS: dict[str, type[BaseFacet]] = {"epipe_app": ol.EpipeAppRunFacet}
DATASET_FACETS: dict[str, type[BaseFacet]] = {
    "datasetType": dataset_type_dataset.DatasetTypeDatasetFacet,
    "epipe_file": ol.EpipeFileDatasetFacet,
}


def checked(line: str) -> dict[str, Any]:
    """The event of one exported line, after checking that it round-trips through the
    client's model and that epipe's facets validate."""
    data: dict[str, Any] = json.loads(line)
    event = RunEvent(
        eventType=RunState(data["eventType"]),
        eventTime=data["eventTime"],
        run=Run(runId=data["run"]["runId"], facets=_facets(data["run"]["facets"], RUN_FACETS)),
        job=Job(namespace=data["job"]["namespace"], name=data["job"]["name"]),
        inputs=[
            InputDataset(
                namespace=d["namespace"],
                name=d["name"],
                facets=_facets(d["facets"], DATASET_FACETS),
                inputFacets=_facets(
                    d["inputFacets"], {"epipe_access": ol.EpipeAccessInputDatasetFacet}
                ),
            )
            for d in data["inputs"]
        ],
        outputs=[
            OutputDataset(
                namespace=d["namespace"],
                name=d["name"],
                facets=_facets(d["facets"], DATASET_FACETS),
                outputFacets=_facets(
                    d["outputFacets"], {"epipe_access": ol.EpipeAccessOutputDatasetFacet}
                ),
            )
            for d in data["outputs"]
        ],
        producer=data["producer"],
    )
    assert Serde.to_dict(event) == data
    assert line == ol.to_json(event)
    for facet in _all_facets(data):
        schema_url = facet["_schemaURL"]
        if schema_url.startswith(ol.FACETS_SCHEMA + "#"):
            pointer = schema_url.split("#", 1)[1]
            jsonschema.validate(facet, {**FACETS, "$ref": "#" + pointer})
    return data


def _facets(raw: dict[str, Any], kinds: dict[str, type[BaseFacet]]) -> Any:
    """Facets as the model's objects (an unknown key fails the check)."""
    out = {}
    for key, value in raw.items():
        fields = {k: v for k, v in value.items() if not k.startswith("_")}
        out[key] = kinds[key](**fields, producer=value["_producer"])
        assert out[key]._schemaURL == value["_schemaURL"]
    return out


def _all_facets(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = list(data["run"]["facets"].values())
    for d in [*data["inputs"], *data["outputs"]]:
        found += d["facets"].values()
        found += d.get("inputFacets", {}).values()
        found += d.get("outputFacets", {}).values()
    return found
