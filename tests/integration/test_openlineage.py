"""OpenLineage: `epipe prov export --openlineage` over a training-like history, and the
openlineage consumer posting runs to a real (tiny) HTTP server, also while it is down or
refuses them."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from epipe import accounts, wiring
from epipe import events as ev
from epipe.cli import cli
from epipe.db.server import connect
from epipe.events import Event
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.pipeline.runner import ConsumerSpec
from epipe.prov.openlineage import namespace, run_id
from epipe.settings import Settings
from epipe.sink.openlineage import HttpEndpoint, OpenLineageSink
from tests.integration.pipeline_helpers import running
from tests.openlineage_events import checked

NS = namespace("lab")


class Recorder(ThreadingHTTPServer):
    """An OpenLineage server that keeps what is posted to it; `answers` are the statuses of
    the next requests (then 201)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.posted: list[tuple[str, dict[str, Any]]] = []  # (path, event)
        self.answers: list[int] = []
        self.refused = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def take(self) -> list[dict[str, Any]]:
        with self.lock:
            taken, self.posted = self.posted, []
        assert {path for path, _ in taken} <= {"/api/v1/lineage"}
        return [event for _, event in taken]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server = self.server
        assert isinstance(server, Recorder)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with server.lock:
            status = server.answers.pop(0) if server.answers else 201
            if status < 300:
                server.posted.append((self.path, json.loads(body)))
            else:
                server.refused += 1
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, name="openlineage-server")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def export(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        env = {"EPIPE_DSN": dsn, "EPIPE_INSTANCE": "lab"}
        command = ["prov", "export", *args]
        return CliRunner().invoke(cli, command, env=env, catch_exceptions=False)

    return invoke


def provenance(dsn: str) -> ConsumerSpec:
    return wiring.consumer("provenance", Settings(dsn=dsn), dsn)  # type: ignore[arg-type]


def openlineage(dsn: str, url: str, **kw: Any) -> ConsumerSpec:
    return ConsumerSpec(
        "openlineage",
        lambda: OpenLineageSink(lambda: connect(dsn), HttpEndpoint(url), instance="lab", **kw),
    )


def training(conn: psycopg.Connection, ns: Namespace) -> tuple[Namespace, Namespace]:
    """/p/data/{a,b,c}.csv; the apps train-1 (as alice) and eval-1."""
    accounts.add_user(conn, "alice", superuser=True)
    for d in ("/p/data", "/p/models", "/p/reports"):
        ns.mkdir(d, parents=True)
    for name in ("a.csv", "b.csv", "c.csv"):
        ns.put(f"/p/data/{name}", size=10)
    return Namespace(conn, Actor("alice", "train-1")), Namespace(conn, Actor("root", "eval-1"))


def by_run(
    lines: list[dict[str, Any]], *, once: bool = True
) -> dict[str, dict[str, dict[str, Any]]]:
    """job name -> eventType -> event (the last one; with `once`, the only one)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for event in lines:
        kinds = out.setdefault(event["job"]["name"], {})
        assert not once or event["eventType"] not in kinds, event
        kinds[event["eventType"]] = event
    return out


def posted(recorder: Recorder) -> dict[str, dict[str, dict[str, Any]]]:
    """The runs posted since the last look (an app that acted in several batches is posted
    after each: the latest counts)."""
    return by_run(recorder.take(), once=False)


def names(datasets: list[dict[str, Any]]) -> list[str]:
    return [d["name"] for d in datasets]


def app_times(conn: psycopg.Connection) -> dict[str, tuple[datetime, datetime]]:
    rows = conn.execute("SELECT app_id, first_at, last_at FROM epipe_prov_apps").fetchall()
    return {a: (first, last) for a, first, last in rows}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def test_a_training_history_exports_one_run_per_app_with_datasets_named_by_path(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path, export: Any
) -> None:
    train, evaluate = training(conn, ns)
    with running(dsn, tmp_path, consumers=[provenance(dsn)]) as pipeline:
        for name in ("a.csv", "b.csv", "c.csv"):
            train.cat(f"/p/data/{name}")
        train.put("/p/models/m.pb", size=5)
        evaluate.cat("/p/models/m.pb")
        pipeline.wait(conn, evaluate.put("/p/reports/r.txt", size=1).token)

        result = export("--openlineage")
        assert result.exit_code == 0, result.output
        lines = [checked(line) for line in result.stdout.splitlines()]
        runs = by_run(lines)
        assert set(runs) == {"train-1", "eval-1"}
        times = app_times(conn)
        for app, events in runs.items():
            assert set(events) == {"START", "COMPLETE"}
            assert {e["run"]["runId"] for e in events.values()} == {run_id(NS, app)}
            assert {e["job"]["namespace"] for e in events.values()} == {NS}
            assert events["START"]["eventTime"] == iso(times[app][0])
            assert events["COMPLETE"]["eventTime"] == iso(times[app][1])
        trained = runs["train-1"]["COMPLETE"]
        assert names(trained["inputs"]) == ["/p/data/a.csv", "/p/data/b.csv", "/p/data/c.csv"]
        assert names(trained["outputs"]) == ["/p/models/m.pb"]
        assert {d["namespace"] for d in trained["inputs"] + trained["outputs"]} == {NS}
        model = trained["outputs"][0]["facets"]["epipe_file"]
        assert (model["artifact"], model["kind"], model["exists"]) == ("model", "file", True)
        assert trained["inputs"][0]["facets"]["epipe_file"]["artifact"] == "dataset"
        assert trained["run"]["facets"]["epipe_app"]["users"] == ["alice"]
        assert trained["run"]["facets"]["epipe_app"]["operations"] == 4
        evaluated = runs["eval-1"]["COMPLETE"]
        assert (names(evaluated["inputs"]), names(evaluated["outputs"])) == (
            ["/p/models/m.pb"],
            ["/p/reports/r.txt"],
        )
        assert "artifact" not in evaluated["outputs"][0]["facets"]["epipe_file"]

        # the inputs move, one is deleted: the same runs, named by the paths now
        pipeline.wait(conn, ns.mv("/p/data", "/p/raw").token)
        pipeline.wait(conn, ns.rm("/p/raw/c.csv").token)
    again = by_run([checked(line) for line in export("--openlineage").stdout.splitlines()])
    moved = again["train-1"]["COMPLETE"]
    assert moved["run"]["runId"] == trained["run"]["runId"]
    assert names(moved["inputs"]) == ["/p/raw/a.csv", "/p/raw/b.csv", "/p/raw/c.csv"]
    gone = moved["inputs"][2]["facets"]["epipe_file"]
    assert (gone["exists"], "deletedAt" in gone) == (False, True)
    assert again["eval-1"] == runs["eval-1"]

    # --since: apps whose last operation is at or after it (no zone: UTC)
    train_last = times["train-1"][1].astimezone(UTC)
    cases = {
        iso(times["eval-1"][0]): {"eval-1"},
        iso(train_last): {"train-1", "eval-1"},
        train_last.replace(tzinfo=None).isoformat(): {"train-1", "eval-1"},
        "2999-01-01T00:00:00Z": set(),
    }
    for since, apps in cases.items():
        out = export("--openlineage", "--since", since)
        assert out.exit_code == 0, out.output
        assert {json.loads(x)["job"]["name"] for x in out.stdout.splitlines()} == apps, since

    # --out FILE: the same lines
    target = tmp_path / "lineage.jsonl"
    assert export("--openlineage", "--out", str(target)).stdout == ""
    assert target.read_text() == export("--openlineage", "--out", "-").stdout
    assert not list(tmp_path.glob("*.partial"))


def test_a_bad_since_or_no_format_is_a_usage_error_naming_it(export: Any) -> None:
    bad = export("--openlineage", "--since", "yesterday")
    assert bad.exit_code == 2
    assert "Invalid value for '--since'" in bad.stderr
    assert "'yesterday' is not an ISO 8601 timestamp" in bad.stderr
    assert bad.stdout == ""
    unformatted = export()
    assert unformatted.exit_code == 2
    assert "choose a format: --openlineage" in unformatted.stderr


def test_the_consumer_posts_the_runs_of_the_apps_each_batch_touched(
    dsn: str,
    conn: psycopg.Connection,
    ns: Namespace,
    tmp_path: Path,
    recorder: Recorder,
    export: Any,
) -> None:
    settings = Settings(dsn=dsn, openlineage_url=recorder.url, instance="lab")  # type: ignore[arg-type]
    assert "openlineage" in {c.name for c in wiring.enabled_consumers(settings, dsn)}
    without = Settings(dsn=dsn)  # type: ignore[arg-type]
    assert "openlineage" not in {c.name for c in wiring.enabled_consumers(without, dsn)}
    train, evaluate = training(conn, ns)
    consumers = [provenance(dsn), wiring.consumer("openlineage", settings, dsn)]
    with running(dsn, tmp_path, consumers=consumers) as pipeline:
        train.cat("/p/data/a.csv")
        pipeline.wait(conn, train.put("/p/models/m.pb", size=5).token)
        first = posted(recorder)
        assert set(first) == {"train-1"}
        assert first["train-1"]["START"]["run"]["runId"] == run_id(NS, "train-1")
        assert names(first["train-1"]["COMPLETE"]["outputs"]) == ["/p/models/m.pb"]

        evaluate.cat("/p/models/m.pb")
        pipeline.wait(conn, evaluate.put("/p/reports/r.txt", size=1).token)
        assert set(posted(recorder)) == {"eval-1"}  # train-1 did nothing since

        pipeline.wait(conn, train.cat("/p/data/b.csv").token)
        last = posted(recorder)
        assert set(last) == {"train-1"}
        assert last["train-1"]["COMPLETE"]["run"]["runId"] == run_id(NS, "train-1")
        assert names(last["train-1"]["COMPLETE"]["inputs"]) == ["/p/data/a.csv", "/p/data/b.csv"]
        pipeline.wait(conn, ns.mkdir("/p/tmp").token)  # no app: nothing to post
        assert recorder.take() == []

    exported = [json.loads(x) for x in export("--openlineage").stdout.splitlines()]
    assert by_run(exported)["train-1"] == last["train-1"]  # what the export writes

    # a batch replayed (after a crash) posts the same events again: the same runs
    sink = OpenLineageSink(lambda: connect(dsn), HttpEndpoint(recorder.url), instance="lab")
    try:
        op = {"app_id": "train-1", "op": "read"}
        replayed = Event(ev.PROV_OP, 1, 0, 1, iso(datetime.now(UTC)), 1, {"op": op})
        for _ in range(2):
            sink.add(replayed)
            assert sink.flush() == []
    finally:
        sink.close()
    twice = recorder.take()
    assert twice[:2] == twice[2:] == [last["train-1"]["START"], last["train-1"]["COMPLETE"]]


def test_a_server_that_is_down_dead_letters_the_runs_and_the_pipeline_goes_on(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    train, _ = training(conn, ns)
    with socket.socket() as closed:  # bound, never listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
        consumers = [provenance(dsn), openlineage(dsn, url, retry_for=0)]
        with running(dsn, tmp_path, consumers=consumers) as pipeline:
            train.cat("/p/data/a.csv")
            pipeline.wait(conn, train.put("/p/models/m.pb", size=5).token)
            pipeline.wait(conn, ns.put("/p/data/d.csv").token)  # and it goes on
    letters = conn.execute(
        "SELECT consumer, reason, event->'op'->>'app_id' FROM epipe_dead_letters"
    ).fetchall()
    assert len(letters) >= 1
    for consumer, reason, app in letters:
        assert (consumer, app) == ("openlineage", "train-1")
        assert f"OpenLineage server {url}/api/v1/lineage unreachable" in reason
        assert "Connection refused" in reason and "'train-1' was not posted" in reason


def test_a_server_answering_503_is_waited_for_and_a_refused_run_is_a_dead_letter(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path, recorder: Recorder
) -> None:
    train, evaluate = training(conn, ns)
    consumers = [provenance(dsn), openlineage(dsn, recorder.url)]
    with running(dsn, tmp_path, consumers=consumers) as pipeline:
        recorder.answers = [503, 503]
        pipeline.wait(conn, train.cat("/p/data/a.csv").token)
        assert recorder.refused == 2
        assert set(posted(recorder)) == {"train-1"}  # posted once it answered

        recorder.answers = [400]
        pipeline.wait(conn, evaluate.cat("/p/data/b.csv").token)
        assert recorder.take() == []
        pipeline.wait(conn, evaluate.cat("/p/data/c.csv").token)
        assert set(posted(recorder)) == {"eval-1"}  # the next batch posts it whole
    letters = conn.execute("SELECT consumer, reason FROM epipe_dead_letters").fetchall()
    assert letters == [
        (
            "openlineage",
            f"OpenLineage server {recorder.url}/api/v1/lineage refused the run of app "
            "'eval-1': 400 Bad Request",
        )
    ]
