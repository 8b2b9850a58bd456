"""/v1/status, /healthz and /metrics (Prometheus)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from epipe.pipeline import status as pipeline_status
from epipe.pipeline.store import PipelineStore
from search_api.problems import Problem, responses
from search_api.services import CallerDep, Services, ServicesDep

router = APIRouter(tags=["operations"])


@router.get(
    "/v1/status",
    summary="Pipeline positions, lag and dead letters",
    responses=responses(401, 503),
)
def status(caller: CallerDep, services: ServicesDep) -> dict[str, Any]:
    with services.connection() as conn:
        return pipeline_status.status(conn, services.settings.slot)


@router.get(
    "/healthz",
    summary="Liveness: the API and its database answer",
    responses=responses(503),
)
def healthz(services: ServicesDep) -> dict[str, str]:
    try:
        with services.connection() as conn:
            conn.execute("SELECT 1")
    except Exception:
        raise Problem(503, "the metadata database does not answer") from None
    return {"status": "ok"}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    assert services.registry is not None
    return Response(generate_latest(services.registry), media_type="text/plain; version=0.0.4")


class PipelineCollector(Collector):
    """Read at every scrape from the database, so it is right whichever process runs the
    pipeline."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        with self.services.connection() as conn:
            state = pipeline_status.status(conn, self.services.settings.slot)
            counters = PipelineStore.on(conn).counters()
        events_in = CounterMetricFamily("epipe_events_in", "events into a stage", labels=["stage"])
        events_out = CounterMetricFamily(
            "epipe_events_out", "events out of a stage (published, or applied)", labels=["stage"]
        )
        for stage, (received, sent) in sorted(counters.items()):
            events_in.add_metric([stage], received)
            events_out.add_metric([stage], sent)
        yield events_in
        yield events_out
        lag_seconds = GaugeMetricFamily(
            "epipe_consumer_lag_seconds",
            "age of the oldest change a consumer has not applied",
            labels=["consumer"],
        )
        lag_bytes = GaugeMetricFamily(
            "epipe_consumer_lag_bytes", "WAL bytes a consumer is behind", labels=["consumer"]
        )
        dead = CounterMetricFamily(
            "epipe_dead_letters", "events a consumer could not apply", labels=["consumer"]
        )
        for consumer in state["consumers"]:
            lag_seconds.add_metric([consumer["name"]], consumer["lag_seconds"])
            lag_bytes.add_metric([consumer["name"]], consumer["lag_bytes"])
            dead.add_metric([consumer["name"]], consumer["dead_letters"])
        yield lag_seconds
        yield lag_bytes
        yield dead
        yield GaugeMetricFamily(
            "epipe_retained_wal_bytes",
            "WAL the replication slot keeps on the server",
            value=state["retained_wal_bytes"],
        )
        slot = state["slot"] or {}
        yield GaugeMetricFamily(
            "epipe_slot_lag_bytes", "WAL bytes the slot is behind", value=slot.get("lag_bytes") or 0
        )
