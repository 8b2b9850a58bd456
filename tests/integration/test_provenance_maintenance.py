"""The lineage graph's upkeep: `epipe verify` compares it with a rebuild from the log and
finds any drift; `epipe prov prune` trims the log without changing a lineage answer."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner

from epipe.cli import cli
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.prov import query, rebuild
from epipe.prov import verify as prov_verify
from epipe.prov.prune import prune
from epipe.settings import Settings
from tests.integration.pipeline_helpers import index_consumer, running
from tests.integration.test_provenance_consumer import graph_rows, provenance

EVERYTHING = query.Scope(None)


def now(conn: psycopg.Connection) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def work(conn: psycopg.Connection, ns: Namespace, round_: int) -> str:
    """A round of a small ML project: prepare, train, evaluate; a move, a deletion. The
    last token."""
    prep = Namespace(conn, Actor("root", f"prep-{round_}"))
    train = Namespace(conn, Actor("root", f"train-{round_}"))
    ns.mkdir(f"/Projects/p/raw{round_}", parents=True)
    for i in range(4):
        ns.put(f"/Projects/p/raw{round_}/{i}.csv", size=i)
        prep.cat(f"/Projects/p/raw{round_}/{i}.csv")
    prep.put(f"/Projects/p/clean{round_}.parquet")
    train.cat(f"/Projects/p/clean{round_}.parquet")
    train.cat(f"/Projects/p/clean{round_}.parquet")
    train.put(f"/Projects/p/model{round_}.pb")
    train.setxattr(f"/Projects/p/model{round_}.pb", "metrics", {"auc": 0.9})
    ns.mv(f"/Projects/p/raw{round_}", f"/Projects/p/raw{round_}-moved")
    return ns.rm(f"/Projects/p/raw{round_}-moved/0.csv").token


def answers(conn: psycopg.Connection) -> dict[str, Any]:
    """Every lineage answer the graph gives: both directions from every node, and every
    app's footprint."""
    out: dict[str, Any] = {}
    for (path,) in conn.execute("SELECT path FROM epipe_prov_nodes WHERE deleted_at IS NULL"):
        for direction in (query.UPSTREAM, query.DOWNSTREAM):
            found = query.lineage(conn, path, EVERYTHING, direction=direction, depth=4)
            out[f"{direction} {path}"] = found.as_json()
    for (app,) in conn.execute("SELECT app_id FROM epipe_prov_apps"):
        out[f"app {app}"] = query.app(conn, app, EVERYTHING)
    return out


def test_pruning_the_log_changes_no_lineage_answer(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    with running(dsn, tmp_path, consumers=[provenance(dsn)]) as pipeline:
        pipeline.wait(conn, work(conn, ns, 1))
        middle = now(conn)
        pipeline.wait(conn, work(conn, ns, 2))
        before = answers(conn)
        kept = graph_rows(conn)
        logged = conn.execute("SELECT count(*) FROM prov_ops WHERE at < %s", [middle]).fetchone()
        assert logged is not None and logged[0] > 15

        done = prune(conn, middle)
        assert done.ops == logged[0]
        assert conn.execute("SELECT count(*) FROM prov_ops WHERE at < %s", [middle]).fetchone()
        assert answers(conn) == before
        assert not prov_verify.compare(conn)
        history = query.history(conn, "/Projects/p/model2.pb", EVERYTHING)
        assert [op["op"] for op in history["ops"]] == ["create", "setxattr"]
        assert query.history(conn, "/Projects/p/model1.pb", EVERYTHING)["ops"] == []

        # the consumer goes on after the pruning, and a second pruning adds to the first
        pipeline.wait(conn, work(conn, ns, 3))
        assert not prov_verify.compare(conn)
        prune(conn, now(conn))
        assert conn.execute("SELECT count(*) FROM prov_ops").fetchone() == (0,)
        after = answers(conn)
        assert {k: v for k, v in after.items() if k in before} == before
        assert not prov_verify.compare(conn)

    kept = graph_rows(conn)
    rebuild.rebuild(conn, (0, 0))  # from the pruned aggregates alone
    assert graph_rows(conn) == kept
    assert answers(conn) == after


def test_verify_finds_a_graph_that_drifted_from_the_log(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    settings = Settings(dsn=dsn, home=tmp_path)  # type: ignore[arg-type]
    consumers = [index_consumer(dsn, tmp_path, settings), provenance(dsn)]
    with running(dsn, tmp_path, consumers=consumers) as pipeline:
        pipeline.wait(conn, work(conn, ns, 1))

    def verify() -> tuple[int, dict[str, Any]]:
        result = CliRunner().invoke(
            cli, ["verify", "--json"], env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)}
        )
        return result.exit_code, json.loads(result.stdout)

    code, report = verify()
    assert code == 0, report
    assert report["provenance"]["drift"] is False
    assert report["provenance"]["checked"] == {"apps": 2, "edges": 7, "nodes": 6}

    conn.execute(
        "DELETE FROM epipe_prov_edges WHERE app_id = 'train-1' AND role = 'input'"
    )  # a lost batch
    conn.execute(
        "UPDATE epipe_prov_nodes SET path = '/elsewhere' WHERE path = '/Projects/p/model1.pb'"
    )  # a missed move
    conn.execute(
        "INSERT INTO epipe_prov_apps VALUES ('ghost', now(), now(), 1, '{}')"
    )  # counted twice
    conn.execute("UPDATE epipe_prov_edges SET count = count + 1 WHERE app_id = 'prep-1'")
    code, report = verify()
    assert code == 1
    found = report["provenance"]
    assert found["drift"] is True
    assert found["missing"] == {"apps": 0, "edges": 1, "nodes": 0}
    assert found["extra"] == {"apps": 1, "edges": 0, "nodes": 0}
    assert found["stale"] == {"apps": 0, "edges": 5, "nodes": 1}
    assert found["sample"]["extra"] == {"apps": ["ghost"]}
    assert report["drift"] is True

    text = CliRunner().invoke(cli, ["verify"], env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)})
    assert text.exit_code == 1
    assert "lineage  extra apps: ghost" in text.stdout and "DRIFT" in text.stdout

    rebuild.rebuild(conn, (0, 0))  # what the consumer does on a resynchronisation
    assert verify()[0] == 0


def test_prune_names_a_bad_time(dsn: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["prov", "prune", "--before", "yesterday"],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "'yesterday' is not an ISO 8601 timestamp" in result.output
