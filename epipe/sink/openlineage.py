"""OpenLineageSink: posts the runs of the apps a batch's operations touched to an OpenLineage
server (EPIPE_OPENLINEAGE_URL), as `epipe prov export --openlineage` writes them.

Events are notifications: a batch collects the app ids of its `prov.op` events, waits until
the lineage graph holds the batch (the provenance consumer keeps it; its position is in
`epipe_prov_state`), reads those apps' runs from it and posts each one's START and COMPLETE
events (epipe/prov/openlineage.py). A run's id is derived from the app id, so a batch
replayed after a crash posts the same runs again: the server sees the same run, not a new
one. A backfill's rows are not posted (the graph is rebuilt from the log then; the export
has the history).

The server being down must not stop the pipeline. While it has failed for less than
`retry_for` seconds, `flush` raises `Unavailable` (the consumer keeps the batch and tries
again after a pause); after that, the batch's runs go to the dead letters with the reason,
and the next batches try once each until a post succeeds. An event the server refuses (a
4xx answer) is a dead letter at once. A dead-lettered run is in the export, and is posted
again whole the next time its app acts.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Protocol

import psycopg
import requests
from openlineage.client.event_v2 import RunEvent
from openlineage.client.transport.http import HttpConfig, HttpTransport

from epipe import events as ev
from epipe.errors import ConfigError, EpipeError
from epipe.events import Event
from epipe.prov import openlineage, runs, store
from epipe.prov.openlineage import AppRun
from epipe.sink import Rejection, Unavailable

log = logging.getLogger(__name__)
RETRY_FOR = 60.0  # seconds a down server is waited for before runs are dead-lettered
GRAPH_WAIT = 5.0  # seconds to wait for the graph before the batch is retried later
LINEAGE_PATH = "api/v1/lineage"  # the OpenLineage API's endpoint, below the server's URL


class EndpointDown(EpipeError):
    """The server cannot be reached, or answered that it cannot take events now."""


class EndpointRefused(EpipeError):
    """The server refused this event (a 4xx answer): posting it again would not help."""


class Endpoint(Protocol):
    """Where events go: `post` raises EndpointDown or EndpointRefused."""

    url: str

    def post(self, event: RunEvent) -> None: ...

    def close(self) -> None: ...


class HttpEndpoint:
    """An OpenLineage server over HTTP: the openlineage client's transport, without retries
    of its own (the consumer's are the policy), its failures translated."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        base = url if url.endswith("/") else url + "/"
        full = base.rstrip("/").endswith(LINEAGE_PATH)
        self.url = base.rstrip("/") if full else base + LINEAGE_PATH
        self._timeout = timeout
        config = HttpConfig(url=self.url, endpoint="", timeout=timeout, retry={"total": 0})
        try:
            self._transport = HttpTransport(config)
        except ValueError as exc:
            raise ConfigError(f"EPIPE_OPENLINEAGE_URL: {exc}") from None

    def post(self, event: RunEvent) -> None:
        try:
            self._transport.emit(event)
        except requests.HTTPError as exc:
            answer = exc.response
            if answer is None:
                raise EndpointDown(str(exc)) from None
            why = f"{answer.status_code} {answer.reason}"
            if 400 <= answer.status_code < 500 and answer.status_code not in (408, 429):
                body = answer.text[:200]
                raise EndpointRefused(f"{why}: {body}" if body else why) from None
            raise EndpointDown(why) from None
        except requests.Timeout:
            raise EndpointDown(f"no answer within {self._timeout:g} s") from None
        except requests.RequestException as exc:
            errno = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
            raise EndpointDown(errno.group(0) if errno else type(exc).__name__) from None

    def close(self) -> None:
        self._transport.close()


class OpenLineageUnavailable(Unavailable):
    pass


class OpenLineageSink:
    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        endpoint: Endpoint,
        *,
        instance: str | None = None,
        retry_for: float = RETRY_FOR,
        graph_wait: float = GRAPH_WAIT,
    ) -> None:
        self._conn = connect()
        self._endpoint = endpoint
        self._namespace = openlineage.namespace(runs.instance(self._conn, instance))
        self._retry_for = retry_for
        self._graph_wait = graph_wait
        self._down_since: float | None = None  # when posts began to fail
        self._reset()

    def _reset(self) -> None:
        self._causes: dict[str, Event] = {}  # app id -> its last operation in the batch
        self._needs: dict[str, store.Position] = {}  # part -> what the graph must hold

    def add(self, event: Event) -> None:
        if event.type != ev.PROV_OP or event.snapshot:
            return
        row = event.data.get("op")
        app = row.get("app_id") if isinstance(row, dict) else None
        if isinstance(app, str) and app:
            self._causes[app] = event
            self._needs[event.part] = max(self._needs.get(event.part, (0, 0)), event.position)

    def flush(self) -> list[Rejection]:
        if not self._causes:
            return []
        self._wait_for_graph()
        rejections = self._post(list(runs.app_runs(self._conn, apps=self._causes)))
        self._reset()  # not on Unavailable: the consumer calls flush again for this batch
        return rejections

    def _wait_for_graph(self) -> None:
        """Until the graph holds the batch's operations (the provenance consumer applies
        the same events, usually within milliseconds)."""
        deadline, pause = time.monotonic() + self._graph_wait, 0.005
        while True:
            held, _ = store.state(self._conn)
            if held is not None and all(held.holds(p, at) for p, at in self._needs.items()):
                return
            if time.monotonic() >= deadline:
                raise OpenLineageUnavailable(
                    "the lineage graph does not hold this batch's operations yet: is the "
                    "provenance consumer running?"
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.1)

    def _post(self, found: list[AppRun]) -> list[Rejection]:
        rejections: list[Rejection] = []
        server = f"OpenLineage server {self._endpoint.url}"
        for i, run in enumerate(found):
            try:
                for event in openlineage.run_events(run, self._namespace):
                    self._endpoint.post(event)
            except EndpointRefused as exc:
                why = f"{server} refused the run of app {run.app_id!r}: {exc}"
                rejections.append((self._causes[run.app_id], why))
            except EndpointDown as exc:
                down_for = self._down_for()
                where = f"{server} unreachable ({exc})"
                if down_for < self._retry_for:
                    raise OpenLineageUnavailable(
                        f"{where}; its runs are dead-lettered after {self._retry_for:g} s"
                    ) from None
                left = found[i:]
                log.warning("%s for %.0f s: dead-lettering %d runs", where, down_for, len(left))
                rejections.extend(
                    (
                        self._causes[r.app_id],
                        f"{where} for {down_for:.0f} s: the run of app {r.app_id!r} was not posted",
                    )
                    for r in left
                )
                return rejections
            self._down_since = None  # it answered
        return rejections

    def _down_for(self) -> float:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
        return now - self._down_since

    def close(self) -> None:
        try:
            self._endpoint.close()
        finally:
            self._conn.close()
