"""The provenance consumer against the real pipeline: the lineage graph follows the log,
through moves and deletions, and equals a rebuild from the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from epipe import wiring
from epipe.db.server import connect
from epipe.errors import FsError
from epipe.events import Event
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.prov import query, rebuild, verify
from epipe.settings import Settings
from epipe.sink.provenance import ProvenanceSink
from tests.integration.helpers import slot_events
from tests.integration.pipeline_helpers import running


def provenance(dsn: str) -> Any:
    return wiring.consumer("provenance", Settings(dsn=dsn), dsn)  # type: ignore[arg-type]


def edges(conn: psycopg.Connection) -> set[tuple[str, str, str]]:
    rows = conn.execute(
        """SELECT e.app_id, e.role, n.path FROM epipe_prov_edges e
           JOIN epipe_prov_nodes n USING (inode_id)"""
    ).fetchall()
    return {(a, r, p) for a, r, p in rows}


def nodes(conn: psycopg.Connection) -> dict[str, tuple[str | None, bool]]:
    rows = conn.execute(
        "SELECT path, artifact, deleted_at IS NOT NULL FROM epipe_prov_nodes"
    ).fetchall()
    return {p: (a, d) for p, a, d in rows}


def graph_rows(conn: psycopg.Connection) -> tuple[list[Any], list[Any], list[Any]]:
    return (
        conn.execute("SELECT * FROM epipe_prov_apps ORDER BY 1").fetchall(),
        conn.execute("SELECT * FROM epipe_prov_edges ORDER BY 1, 2, 3").fetchall(),
        conn.execute(
            "SELECT inode_id, path, ancestors, kind, artifact, deleted_at IS NOT NULL "
            "FROM epipe_prov_nodes ORDER BY 1"
        ).fetchall(),
    )


def test_a_model_s_inputs_follow_through_moves_and_deletions(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    ns.mkdir("/p/images", parents=True)
    ns.mkdir("/p/models")
    for i in range(3):
        ns.put(f"/p/images/{i}.jpg", size=10)
    app = Namespace(conn, Actor("root", "train-1"))
    with running(dsn, tmp_path, consumers=[provenance(dsn)]) as pipeline:
        app.cat("/p/images/0.jpg")
        app.cat("/p/images/1.jpg")
        app.cat("/p/images/0.jpg")
        pipeline.wait(conn, app.put("/p/models/m.pb", size=5).token)
        assert edges(conn) == {
            ("train-1", "input", "/p/images/0.jpg"),
            ("train-1", "input", "/p/images/1.jpg"),
            ("train-1", "output", "/p/models/m.pb"),
        }
        assert nodes(conn)["/p/models/m.pb"] == ("model", False)
        assert nodes(conn)["/p/images/0.jpg"] == ("image", False)
        count = conn.execute(
            "SELECT count FROM epipe_prov_edges e JOIN epipe_prov_nodes n USING (inode_id) "
            "WHERE n.path = '/p/images/0.jpg'"
        ).fetchone()
        assert count == (2,)

        pipeline.wait(conn, ns.mv("/p/images", "/p/frames").token)
        assert ("train-1", "input", "/p/frames/1.jpg") in edges(conn)

        pipeline.wait(conn, ns.rm("/p/frames", recursive=True).token)
        assert nodes(conn)["/p/frames/1.jpg"] == ("image", True)  # kept, marked deleted
        assert ("train-1", "input", "/p/frames/0.jpg") in edges(conn)

        kept = graph_rows(conn)
        rebuild.rebuild(conn, (0, 0))
        assert graph_rows(conn) == kept


def test_lineage_walks_up_and_down_and_hides_other_projects(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    for d in ("/Projects/a/raw", "/Projects/a/clean", "/Projects/a/models", "/Projects/b/raw"):
        ns.mkdir(d, parents=True)
    ns.put("/Projects/a/raw/r.csv", size=1)
    ns.put("/Projects/b/raw/secret.csv", size=1)
    prep = Namespace(conn, Actor("root", "prep-1"))
    train = Namespace(conn, Actor("root", "train-1"))
    with running(dsn, tmp_path, consumers=[provenance(dsn)]) as pipeline:
        prep.cat("/Projects/a/raw/r.csv")
        prep.put("/Projects/a/clean/c.parquet", size=1)
        train.cat("/Projects/a/clean/c.parquet")
        train.cat("/Projects/b/raw/secret.csv")
        pipeline.wait(conn, train.put("/Projects/a/models/m.onnx", size=1).token)

    everything, only_a = query.Scope(None), query.Scope(frozenset({"a"}))
    up = query.lineage(conn, "/Projects/a/models/m.onnx", everything, depth=2).as_json()
    paths = {n.get("path") or n["app_id"] for n in up["nodes"]}
    assert paths == {
        "/Projects/a/models/m.onnx", "train-1", "/Projects/a/clean/c.parquet",
        "/Projects/b/raw/secret.csv", "prep-1", "/Projects/a/raw/r.csv",
    }  # fmt: skip
    one = query.lineage(conn, "/Projects/a/models/m.onnx", everything, depth=1).as_json()
    assert "prep-1" not in {n.get("app_id") for n in one["nodes"]}

    scoped = query.lineage(conn, "/Projects/a/models/m.onnx", only_a, depth=2).as_json()
    shown = {n.get("path") or n["app_id"] for n in scoped["nodes"]}
    assert shown == paths - {"/Projects/b/raw/secret.csv"}
    assert all("secret" not in str(e) for e in scoped["edges"])
    assert {n["artifact"] for n in scoped["nodes"] if n["type"] == "file"} == {
        "model", "dataset",
    }  # fmt: skip

    down = query.lineage(conn, "/Projects/a/raw/r.csv", only_a, direction="downstream", depth=3)
    assert {n.get("path") for n in down.as_json()["nodes"]} >= {"/Projects/a/models/m.onnx"}
    with pytest.raises(FsError) as missing:
        query.lineage(conn, "/Projects/b/raw/secret.csv", only_a)
    with pytest.raises(FsError) as absent:
        query.lineage(conn, "/Projects/a/raw/none.csv", only_a)
    assert missing.value.code == absent.value.code == "ENOENT"
    assert str(missing.value).replace("/b/raw/secret.csv", "P") == str(absent.value).replace(
        "/a/raw/none.csv", "P"
    )


def test_a_batch_delivered_again_after_a_crash_is_not_counted_twice(
    dsn: str, conn: psycopg.Connection, ns: Namespace
) -> None:
    """The graph and its position commit together: a consumer restarted after a crash that
    came before the pipeline recorded the batch as applied gets it again, and skips it."""
    ns.mkdir("/p/raw", parents=True)
    ns.put("/p/raw/a.csv", size=1)
    first = sink_on_a_slot(dsn, conn)
    train = Namespace(conn, Actor("root", "train-1"))
    train.cat("/p/raw/a.csv")
    train.cat("/p/raw/a.csv")
    train.put("/p/m.pb", size=1)
    events = slot_events(conn, "prov", "p")
    assert len(events) > 3
    for event in events:
        first.add(event)
    assert first.flush() == []
    first.close()
    kept = graph_rows(conn)
    assert [(r[1], r[5]) for r in kept[1]] == [("input", 2), ("output", 1)]

    again = ProvenanceSink(lambda: connect(dsn))
    for event in events:
        again.add(event)
    assert again.flush() == []
    again.close()
    assert graph_rows(conn) == kept
    assert not verify.compare(conn)


def sink_on_a_slot(dsn: str, conn: psycopg.Connection) -> ProvenanceSink:
    """A provenance sink whose graph is made (from the log, no graph yet), and the slot
    `prov` of publication `p` from now on: `slot_events(conn, "prov", "p")` is what follows."""
    conn.execute("CREATE PUBLICATION p FOR TABLE inodes, xattrs, prov_ops")
    conn.execute("SELECT pg_create_logical_replication_slot('prov', 'pgoutput')")
    sink = ProvenanceSink(lambda: connect(dsn))
    assert sink.flush() == []  # no graph yet: built from the log
    return sink


def kafka_parts(events: list[Event], partitions: int = 2) -> list[list[Event]]:
    """`events` as Kafka delivers them: keyed by inode, one ordered stream per partition
    (events of no inode go to every partition), each event knowing its part."""
    out: list[list[Event]] = [[] for _ in range(partitions)]
    for event in events:
        chosen = range(partitions) if event.inode_id is None else [event.inode_id % partitions]
        for p in chosen:
            out[p].append(event._replace(part=f"epipe.prov:{p}"))
    return out


def test_kafka_partitions_interleaved_and_replayed_after_a_crash_converge(
    dsn: str, conn: psycopg.Connection, ns: Namespace
) -> None:
    """Kafka orders events within a partition only: a partition that runs ahead must not hide
    a lagging one's events, and a partition delivered again after a crash (its offsets not
    committed) is not counted twice — the graph keeps a position per part."""
    ns.mkdir("/p/raw", parents=True)
    for i in range(8):
        ns.put(f"/p/raw/{i}.csv", size=1)
    first = sink_on_a_slot(dsn, conn)
    for app in ("train-1", "train-2"):
        train = Namespace(conn, Actor("root", app))
        for i in range(8):
            train.cat(f"/p/raw/{i}.csv")
        train.put(f"/p/{app}.pb", size=1)
    ns.mv("/p/raw", "/p/data")
    Namespace(conn, Actor("root", "train-1")).cat("/p/data/3.csv")
    ns.mkdir("/p/end")  # a synchronous commit: the reads before it are flushed, decodable
    ahead, behind = kafka_parts(slot_events(conn, "prov", "p"))
    assert ahead and behind

    for event in ahead:  # one partition is consumed whole first
        first.add(event)
    assert first.flush() == []
    half = len(behind) // 2
    for event in behind[:half]:  # the other lags: half of it applied, then a crash
        first.add(event)
    assert first.flush() == []
    first.close()

    again = ProvenanceSink(lambda: connect(dsn))  # its offsets were not committed: all again
    for event in behind + ahead[-3:]:
        again.add(event)
    assert again.flush() == []
    again.close()
    drift = verify.compare(conn)
    assert not drift, drift.as_json()
    reads = conn.execute(
        "SELECT app_id, sum(count) FROM epipe_prov_edges WHERE role = 'input' GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert reads == [("train-1", 9), ("train-2", 8)]


def test_a_graph_fed_by_kafka_then_in_process_is_made_again_from_the_log(
    dsn: str, conn: psycopg.Connection, ns: Namespace
) -> None:
    """Which Kafka events were applied is known per partition only: the first in-process
    event after them makes the graph again from the log (exact, not counted twice)."""
    ns.mkdir("/p/raw", parents=True)
    ns.put("/p/raw/a.csv", size=1)
    sink = sink_on_a_slot(dsn, conn)
    train = Namespace(conn, Actor("root", "train-1"))
    train.cat("/p/raw/a.csv")
    train.put("/p/m.pb", size=1)
    events = slot_events(conn, "prov", "p")
    for event in kafka_parts(events)[0] + kafka_parts(events)[1]:
        sink.add(event)
    assert sink.flush() == []
    for event in events:  # the same events again, in process (a slot started earlier)
        sink.add(event)
    assert sink.flush() == []
    sink.close()
    assert conn.execute("SELECT count(*) FROM epipe_prov_parts").fetchone() == (0,)
    assert not verify.compare(conn)
    assert conn.execute("SELECT count FROM epipe_prov_edges WHERE role = 'input'").fetchone() == (
        1,
    )


def test_reads_come_as_messages_logged_once_and_a_bad_one_is_a_dead_letter(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    """A read writes no row (migration 0015): the consumer logs it from its message, in the
    graph's transaction. A message that is not a read's goes to the dead letters; the
    pipeline goes on."""
    ns.mkdir("/p/raw", parents=True)
    ns.put("/p/raw/a.csv", size=1)
    inode = ns.stat("/p/raw/a.csv").id
    train = Namespace(conn, Actor("root", "train-1"))
    with running(dsn, tmp_path, consumers=[provenance(dsn)]) as pipeline:
        logged_before = conn.execute("SELECT count(*) FROM prov_ops WHERE op = 'read'")
        assert logged_before.fetchone() == (0,)
        train.cat("/p/raw/a.csv")
        assert conn.execute("SELECT count(*) FROM prov_ops WHERE op = 'read'").fetchone() == (0,)
        conn.execute(
            "SELECT pg_logical_emit_message(false, 'epipe.prov.read', %s)",
            [f'{{"inode_id": {inode}, "name": "forged"}}'],
        )
        train.cat("/p/raw/a.csv")
        pipeline.wait(conn, train.put("/p/m.pb", size=1).token)
        reads = conn.execute(
            "SELECT user_id, app_id, name, lsn IS NOT NULL FROM prov_ops WHERE op = 'read'"
        ).fetchall()
        assert reads == [(0, "train-1", "a.csv", True)] * 2
        (reason,) = conn.execute(
            "SELECT reason FROM epipe_dead_letters WHERE consumer = 'provenance'"
        ).fetchone()  # type: ignore[misc]
        assert "malformed provenance operation" in reason and "KeyError('at')" in reason
        assert edges(conn) == {
            ("train-1", "input", "/p/raw/a.csv"),
            ("train-1", "output", "/p/m.pb"),
        }
        history = query.history(conn, "/p/raw/a.csv", query.Scope(None))
        assert [o["op"] for o in history["ops"]] == ["create", "read", "read"]
    assert not verify.compare(conn)


def test_a_deletion_applied_before_the_operation_that_made_the_file_marks_it_deleted(
    dsn: str, conn: psycopg.Connection, ns: Namespace
) -> None:
    """Kafka orders nothing between topics: a file's deletion (epipe.fs) may be applied before
    the operation that made it (epipe.prov). The node it then makes is deleted already."""
    ns.mkdir("/p", parents=True)
    sink = sink_on_a_slot(dsn, conn)
    train = Namespace(conn, Actor("root", "train-1"))
    train.mkdir("/p/run")
    train.put("/p/run/m.pb", size=1)
    train.put("/p/kept.pb", size=1)
    ns.rm("/p/run", recursive=True)
    ns.mkdir("/p/end")  # a synchronous commit: what came before is decodable
    events = slot_events(conn, "prov", "p")
    fs = [e._replace(part="epipe.fs:0") for e in events if e.type != "prov.op"]
    prov = [e._replace(part="epipe.prov:0") for e in events if e.type == "prov.op"]
    for batch in (fs, prov):  # the whole of epipe.fs first, then epipe.prov
        for event in batch:
            sink.add(event)
        assert sink.flush() == []
    sink.close()
    drift = verify.compare(conn)
    assert not drift, drift.as_json()
    deleted = conn.execute(
        "SELECT path, deleted_at IS NOT NULL FROM epipe_prov_nodes ORDER BY path"
    ).fetchall()
    assert ("/p/kept.pb", False) in deleted and ("m.pb", True) in deleted


def test_a_part_moved_to_another_member_is_not_counted_twice(
    dsn: str, conn: psycopg.Connection, ns: Namespace
) -> None:
    """Two members of the group: one applies a partition and dies before its offsets are
    committed; the other, started before and holding an older view of the graph, gets the
    partition and its events again (a rebalance). The graph says what it holds in the
    transaction that applies, so nothing counts twice."""
    ns.mkdir("/p/raw", parents=True)
    ns.put("/p/raw/a.csv", size=1)
    first = sink_on_a_slot(dsn, conn)
    second = ProvenanceSink(lambda: connect(dsn))  # the other member: the graph as it was
    train = Namespace(conn, Actor("root", "train-1"))
    train.setxattr("/p/raw/a.csv", "by", "train-1")
    train.put("/p/m.pb", size=1)
    train.write("/p/m.pb", size=2)
    ns.mkdir("/p/end")
    (events,) = kafka_parts(slot_events(conn, "prov", "p"), partitions=1)
    for event in events:
        first.add(event)
    assert first.flush() == []
    first.close()  # killed: its offsets were not committed
    for event in events:  # the partition moves to the other member, read again whole
        second.add(event)
    assert second.flush() == []
    second.close()
    drift = verify.compare(conn)
    assert not drift, drift.as_json()
    outputs = conn.execute(
        "SELECT sum(count) FROM epipe_prov_edges WHERE role = 'output'"
    ).fetchone()
    assert outputs == (3,)
