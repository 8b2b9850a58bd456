"""The index consumer on the real pipeline: cascades, moves, dead letters, rebuild, verify."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from epipe import wiring
from epipe.cli import cli
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.tantivy import TantivyStore
from epipe.index.tantivy.index import TantivyIndex
from epipe.index.verify import verify
from epipe.load.bulk import load_images
from epipe.pipeline.store import PipelineStore
from epipe.search.query import SearchQuery, parse_predicate
from tests.integration.pipeline_helpers import index_consumer, running


def total(store: TantivyStore, **query: object) -> int:
    return store.current(writable=False).search(SearchQuery(**query)).total  # type: ignore[arg-type]


def test_rm_r_and_mv_of_directories_reach_every_descendant(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    store = TantivyStore(tmp_path / "index")
    load_images(conn, Actor(), under="/data", count=1200, seed=3)
    files = conn.execute("SELECT count(*) FROM inodes WHERE kind = 'f'").fetchone()[0]  # type: ignore[index]
    with running(dsn, tmp_path, consumers=[index_consumer(dsn, tmp_path / "index")]) as pipeline:
        pipeline.backfilled(conn)
        pipeline.wait(conn)
        assert total(store, type="file") == files
        train = total(store, under="/data/train", type="file")
        assert train > 0
        pipeline.wait(conn, ns.mv("/data/train", "/moved").token)
        assert total(store, under="/data/train") == 0
        page = store.current(writable=False).search(
            SearchQuery(under="/moved", type="file", limit=1000)
        )
        assert page.total == train
        assert all(hit.doc["path"].startswith("/moved/") for hit in page.hits)
        assert all(hit.doc["ancestors"][:2] == [1, ns.stat("/moved").id] for hit in page.hits)
        pipeline.wait(conn, ns.rm("/moved", recursive=True).token)
        assert total(store, under="/moved") == 0
        assert total(store, type="file") == files - train
        assert not verify(conn, store.current(writable=False))


def test_a_rename_that_changes_the_suffix_changes_the_artifact_kind(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    store = TantivyStore(tmp_path / "index")

    def kinds(artifact: str) -> set[str]:
        page = store.current(writable=False).search(SearchQuery(artifact=artifact))
        return {hit.doc["path"] for hit in page.hits}

    with running(dsn, tmp_path, consumers=[index_consumer(dsn, tmp_path / "index")]) as pipeline:
        pipeline.backfilled(conn)
        ns.mkdir("/p/run", parents=True)
        pipeline.wait(conn, ns.put("/p/run/a.csv").token)
        assert (kinds("dataset"), kinds("model")) == ({"/p/run/a.csv"}, set())
        pipeline.wait(conn, ns.mv("/p/run/a.csv", "/p/run/a.pb").token)
        assert (kinds("dataset"), kinds("model")) == (set(), {"/p/run/a.pb"})
        # a directory renamed into a kind, its files keeping theirs under the new path
        pipeline.wait(conn, ns.mv("/p/run", "/p/run.parquet").token)
        assert (kinds("dataset"), kinds("model")) == ({"/p/run.parquet"}, {"/p/run.parquet/a.pb"})
        assert not verify(conn, store.current(writable=False))  # what a rebuild would make


def test_an_annotation_too_large_to_index_is_dead_lettered_and_the_rest_goes_on(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    store = TantivyStore(tmp_path / "index")
    with running(dsn, tmp_path, consumers=[index_consumer(dsn, tmp_path / "index")]) as pipeline:
        pipeline.backfilled(conn)
        ns.put("/f.bin")
        ns.setxattr("/f.bin", "points", [i % 10 for i in range(15_000)])  # 30 KB, 15,000 values
        ns.setxattr("/f.bin", "labels", {"ok": 1})
        pipeline.wait(conn, ns.put("/after").token)
    # one dead letter per rewrite of the file's document: two if the two setxattr were
    # applied in different batches
    assert PipelineStore.on(conn).dead_letter_counts()["index"] in (1, 2)
    reasons = conn.execute("SELECT reason FROM epipe_dead_letters").fetchall()
    assert all("annotation points has more than 10,000 values" in r for (r,) in reasons)
    (hit,) = store.current(writable=False).search(SearchQuery(text="f bin")).hits
    assert hit.doc["xattrs"] == {"labels": {"ok": 1}}
    assert hit.doc["skipped"] == ["points"]
    assert total(store, text="after") == 1
    assert not verify(conn, store.current(writable=False))  # a rebuild would do the same


def test_reindex_swaps_in_a_new_index_while_searches_go_on(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    load_images(conn, Actor(), under="/data", count=3000, seed=8)
    home = tmp_path
    store = TantivyStore(home / "index")
    errors: list[BaseException] = []
    answers: list[int] = []
    stop = threading.Event()
    query = SearchQuery(xattr=(parse_predicate("labels.objects.bicycle>3"),))

    def searcher() -> None:
        while not stop.is_set():
            try:
                answers.append(store.current(writable=False).search(query).total)
            except BaseException as exc:
                errors.append(exc)

    with running(dsn, tmp_path, consumers=[index_consumer(dsn, home / "index")]) as pipeline:
        pipeline.backfilled(conn)
        pipeline.wait(conn)
        expected = total(store, xattr=query.xattr)
        before = store.current_generation()
        thread = threading.Thread(target=searcher)
        thread.start()
        result = CliRunner().invoke(
            cli,
            ["reindex"],
            env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(home), "EPIPE_SLOT": pipeline.slot},
            catch_exceptions=False,
        )
        stop.set()
        thread.join()
        assert result.exit_code == 0, result.stderr
        assert "rebuilt by the running pipeline" in result.stdout
        assert store.current_generation() != before
        pipeline.wait(conn)
    assert errors == []
    assert expected > 0 and len(answers) > 10
    assert set(answers) == {expected}  # never empty, never partial


def test_verify_finds_drift_by_kind_and_reindex_repairs_it(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        ns.mkdir(f"/{name}")
        ns.put(f"/{name}/f")
    env = {"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path), "EPIPE_SLOT": "none"}
    runner = CliRunner()
    assert runner.invoke(cli, ["reindex"], env=env).exit_code == 0
    assert runner.invoke(cli, ["verify"], env=env).exit_code == 0
    store = TantivyStore(tmp_path / "index")
    index = store.current(writable=True)
    gone, changed = ns.stat("/a/f").id, ns.stat("/b").id
    index.delete([gone])  # missing file
    doc = index.get([changed])[changed]
    index.upsert([{**doc, "size": 999}])  # stale directory
    index.upsert([{**doc, "id": 10_000, "kind": "file"}])  # extra file
    index.commit()
    index.close()
    result = runner.invoke(cli, ["verify", "--json"], env=env)
    assert result.exit_code == 1
    drift = json.loads(result.stdout)
    assert drift["missing"] == {"file": 1}
    assert drift["stale"] == {"dir": 1}
    assert drift["extra"] == {"file": 1}
    assert drift["drift"] is True
    text = runner.invoke(cli, ["verify"], env=env).stdout
    assert "missing  1 file" in text and "DRIFT" in text
    assert runner.invoke(cli, ["reindex"], env=env).exit_code == 0
    assert runner.invoke(cli, ["verify"], env=env).exit_code == 0


class ForgetfulStore(TantivyStore):
    """An index that loses the first delete it is asked for (as an engine bug would)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.armed = False
        self.forgotten: list[int] = []

    def current(self, *, writable: bool = False) -> TantivyIndex:
        index = super().current(writable=writable)
        if writable:
            delete = index.delete

            def forgetful(ids: Iterable[int], version: int | None = None) -> None:
                wanted = list(ids)
                if wanted and self.armed and not self.forgotten:
                    self.forgotten.extend(wanted)
                    return
                delete(wanted, version)

            index.delete = forgetful  # type: ignore[method-assign]
        return index


def test_a_delete_the_engine_lost_is_applied_again(
    dsn: str,
    conn: psycopg.Connection,
    ns: Namespace,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = ForgetfulStore(tmp_path / "index")
    ns.put("/keep")
    ns.put("/gone")
    gone = ns.stat("/gone").id
    with running(dsn, tmp_path, consumers=[wiring.index_consumer(dsn, store)]) as pipeline:
        pipeline.backfilled(conn)
        pipeline.wait(conn)
        assert total(store, text="gone") == 1
        store.armed = True
        pipeline.wait(conn, ns.rm("/gone").token)
    assert store.forgotten == [gone]
    assert total(store, text="gone") == 0
    assert total(store, text="keep") == 1
    assert f"kept 1 deleted documents after a commit ({gone})" in caplog.text
