"""The lineage graph as OpenLineage run events: pure, no I/O.

One app id is one OpenLineage job and one run: the job is named by the app id, the run's id
is derived from the namespace and the app id (a re-export, or a post replayed after a crash,
gives the same id), and each run is told by two events:

- START at the app's first operation, with the run's facets;
- COMPLETE at its last operation, with everything it read (inputs) and wrote (outputs).

Datasets are the files and directories, named by their path now (the last one once deleted)
in the namespace `epipe://INSTANCE` of the jobs. Facets, besides the standard `datasetType`
(FILE or DIRECTORY), are epipe's own, keyed `epipe_*`, their JSON Schema shipped in
`schemas/openlineage/facets-1.json`:

- run `epipe_app`: the users the app acted as, its operation count, first and last time;
- dataset `epipe_file`: inode id, kind, artifact kind, whether it exists (when deleted);
- input / output `epipe_access`: the operations, their count, first and last time.

Events are built by the `openlineage-python` client's model, so they are what the client
would send; `to_json` is the client's own serialisation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    InputDatasetFacet,
    OutputDatasetFacet,
    RunFacet,
    dataset_type_dataset,
)
from openlineage.client.serde import Serde

SCHEME = "epipe://"
FACETS_SCHEMA = "urn:epipe:openlineage:facets:1"  # schemas/openlineage/facets-1.json ($id)


def _producer() -> str:
    try:
        return f"urn:epipe:{metadata.version('epipe')}"
    except metadata.PackageNotFoundError:  # running from a source tree without metadata
        return "urn:epipe"


PRODUCER = _producer()


@dataclass(frozen=True)
class Access:
    """A file or directory an app read (an input) or wrote (an output): its graph node and
    the aggregated edge."""

    inode_id: int
    path: str
    kind: str  # file | dir
    artifact: str | None
    deleted_at: datetime | None
    first_at: datetime
    last_at: datetime
    count: int
    ops: tuple[str, ...]


@dataclass(frozen=True)
class AppRun:
    """An app of the lineage graph with its inputs and outputs."""

    app_id: str
    first_at: datetime
    last_at: datetime
    ops: int
    users: tuple[str, ...]
    inputs: tuple[Access, ...] = ()
    outputs: tuple[Access, ...] = ()


# -- epipe's facets --------------------------------------------------------------------------


@attr.define
class EpipeAppRunFacet(RunFacet):
    users: list[str]
    operations: int
    firstOperationAt: str
    lastOperationAt: str

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/EpipeAppRunFacet"


@attr.define
class EpipeFileDatasetFacet(DatasetFacet):
    inodeId: int
    kind: str
    exists: bool  # False once deleted (a facet's own `deleted` means "remove this facet")
    artifact: str | None = None
    deletedAt: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/EpipeFileDatasetFacet"


@attr.define
class EpipeAccessInputDatasetFacet(InputDatasetFacet):
    operations: list[str]
    count: int
    firstAt: str
    lastAt: str

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/EpipeAccessDatasetFacet"


@attr.define
class EpipeAccessOutputDatasetFacet(OutputDatasetFacet):
    operations: list[str]
    count: int
    firstAt: str
    lastAt: str

    @staticmethod
    def _get_schema() -> str:
        return f"{FACETS_SCHEMA}#/$defs/EpipeAccessDatasetFacet"


# -- the translation -------------------------------------------------------------------------


def namespace(instance: str) -> str:
    """The OpenLineage namespace of the file system named `instance`."""
    return SCHEME + instance


def run_id(namespace: str, app_id: str) -> str:
    """The run of `app_id`: the same for every export and post of this namespace."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{namespace}/{app_id}"))


def run_events(run: AppRun, namespace: str) -> tuple[RunEvent, RunEvent]:
    """START (at the first operation) and COMPLETE (at the last, with inputs and outputs)."""
    facets: dict[str, RunFacet] = {
        "epipe_app": EpipeAppRunFacet(
            users=list(run.users),
            operations=run.ops,
            firstOperationAt=_time(run.first_at),
            lastOperationAt=_time(run.last_at),
            producer=PRODUCER,
        )
    }
    job = Job(namespace=namespace, name=run.app_id)
    the_run = Run(runId=run_id(namespace, run.app_id), facets=facets)
    start = RunEvent(
        eventType=RunState.START,
        eventTime=_time(run.first_at),
        run=the_run,
        job=job,
        producer=PRODUCER,
    )
    complete = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime=_time(run.last_at),
        run=the_run,
        job=job,
        inputs=[_input(a, namespace) for a in _ordered(run.inputs)],
        outputs=[_output(a, namespace) for a in _ordered(run.outputs)],
        producer=PRODUCER,
    )
    return start, complete


def to_json(event: RunEvent) -> str:
    """One event as one line of JSON (the client's serialisation: nulls left out)."""
    return Serde.to_json(event)


def _input(access: Access, namespace: str) -> InputDataset:
    facets: dict[str, InputDatasetFacet] = {
        "epipe_access": EpipeAccessInputDatasetFacet(
            operations=list(access.ops),
            count=access.count,
            firstAt=_time(access.first_at),
            lastAt=_time(access.last_at),
            producer=PRODUCER,
        )
    }
    return InputDataset(
        namespace=namespace,
        name=access.path,
        facets=_dataset_facets(access),
        inputFacets=facets,
    )


def _output(access: Access, namespace: str) -> OutputDataset:
    facets: dict[str, OutputDatasetFacet] = {
        "epipe_access": EpipeAccessOutputDatasetFacet(
            operations=list(access.ops),
            count=access.count,
            firstAt=_time(access.first_at),
            lastAt=_time(access.last_at),
            producer=PRODUCER,
        )
    }
    return OutputDataset(
        namespace=namespace,
        name=access.path,
        facets=_dataset_facets(access),
        outputFacets=facets,
    )


def _dataset_facets(access: Access) -> dict[str, DatasetFacet]:
    return {
        "datasetType": dataset_type_dataset.DatasetTypeDatasetFacet(
            datasetType="DIRECTORY" if access.kind == "dir" else "FILE", producer=PRODUCER
        ),
        "epipe_file": EpipeFileDatasetFacet(
            inodeId=access.inode_id,
            kind=access.kind,
            exists=access.deleted_at is None,
            artifact=access.artifact,
            deletedAt=None if access.deleted_at is None else _time(access.deleted_at),
            producer=PRODUCER,
        ),
    }


def _ordered(accesses: tuple[Access, ...]) -> list[Access]:
    return sorted(accesses, key=lambda a: (a.path, a.inode_id))


def _time(at: datetime) -> str:
    """ISO 8601 in UTC (a time without a zone is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat()
