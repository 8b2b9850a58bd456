"""An index lost, replaced, damaged or half rebuilt is found and repaired, with real
`epipe run` processes and the `epipe reindex` / `epipe verify` commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner, Result

from epipe.cli import cli
from epipe.db.server import connect
from epipe.fs.model import Actor
from epipe.fs.namespace import Namespace
from epipe.index.engine import REINDEX
from epipe.index.tantivy import TantivyStore
from epipe.load.bulk import load_images
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.store import PipelineStore
from epipe.search.query import SearchQuery, parse_predicate
from epipe.source.slot import slot_state
from tests.integration.pipeline_helpers import PipelineProcess, new_slot


def wait_until(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Site:
    """A home with an index, its database, and `epipe` commands on them."""

    def __init__(self, dsn: str, conn: psycopg.Connection, home: Path) -> None:
        self.dsn, self.conn, self.home = dsn, conn, home
        self.slot = new_slot()
        self.env = {"EPIPE_DSN": dsn, "EPIPE_HOME": str(home), "EPIPE_SLOT": self.slot}
        self.store = TantivyStore(home / "index")
        self.process = PipelineProcess(dsn, home, self.slot, home / "events.jsonl")

    def epipe(self, *args: str) -> Result:
        return CliRunner().invoke(cli, list(args), env=self.env)

    def start(self) -> None:
        self.process.start()
        wait_until(self._active_or_exited)
        assert self.process.process is not None
        assert self.process.process.poll() is None, self.process.log.read_text()

    def _active_or_exited(self) -> bool:
        state = slot_state(self.conn, self.slot)
        assert self.process.process is not None
        return self.process.process.poll() is not None or bool(state and state.active)

    def caught_up(self) -> None:
        """The backfill (if any) is read and every change so far applied."""
        wait_until(self._backfilled)
        _, lagging = pipeline_status.wait(self.conn, self.slot, None, 60)
        assert not lagging, (lagging, self.process.log.read_text())

    def _backfilled(self) -> bool:
        """The slot's backfill has begun (a new slot's always does) and is read."""
        states = PipelineStore.on(self.conn).backfill(self.slot)
        return bool(states) and all(state.done for state in states)

    def stop(self) -> None:
        assert self.process.stop() == 0, self.process.log.read_text()

    def files(self) -> int:
        return self.store.current(writable=False).search(SearchQuery(type="file")).total


@pytest.fixture
def site(dsn: str, conn: psycopg.Connection, tmp_path: Path) -> Iterator[Site]:
    load_images(conn, Actor(), under="/data", count=300, seed=5)
    site = Site(dsn, conn, tmp_path)
    yield site
    if site.process.process is not None and site.process.process.poll() is None:
        site.process.kill()


def _remove_index(site: Site) -> None:
    shutil.rmtree(site.home / "index")


def _remove_current(site: Site) -> None:
    (site.home / "index" / "current").unlink()


def _empty_meta(site: Site) -> None:
    (site.home / "index" / "current" / "meta.json").write_bytes(b"")


FAULTS = {"rm -rf index": _remove_index, "rm current": _remove_current, "empty meta": _empty_meta}


@pytest.mark.parametrize("fault", FAULTS)
def test_a_pipeline_rebuilds_an_index_lost_while_it_was_stopped(
    site: Site, ns: Namespace, fault: str
) -> None:
    site.start()
    site.caught_up()
    site.stop()
    FAULTS[fault](site)
    ns.put("/data/while-stopped.jpg")
    site.start()
    site.caught_up()
    assert "rebuilding it from the database" in site.process.log.read_text()
    ns.put("/data/after.jpg")
    site.caught_up()
    site.stop()
    assert site.epipe("verify").exit_code == 0
    assert site.files() == 302


def test_a_pipeline_rebuilds_an_older_copy_of_the_index_restored_while_it_was_stopped(
    site: Site, ns: Namespace
) -> None:
    site.start()
    site.caught_up()
    site.stop()
    shutil.copytree(site.home / "index", site.home / "copy", symlinks=True)
    site.start()
    ns.rm("/data/train", recursive=True)
    site.caught_up()
    site.stop()
    shutil.rmtree(site.home / "index")
    (site.home / "copy").rename(site.home / "index")
    site.start()
    site.caught_up()
    log = site.process.log.read_text()
    assert "holds changes up to" in log and "rebuilding it from the database" in log
    site.stop()
    assert site.epipe("verify").exit_code == 0


def test_an_index_of_another_database_is_rebuilt(site: Site, dsn: str) -> None:
    site.start()
    site.caught_up()
    site.stop()
    position = site.home / "index" / "current" / "position.json"
    position.write_text(position.read_text().replace('"database":"', '"database":"other'))
    site.start()
    site.caught_up()
    assert "was built from another database" in site.process.log.read_text()
    site.stop()
    assert site.epipe("verify").exit_code == 0


def test_a_pipeline_started_during_an_offline_reindex_waits_for_it_and_then_writes_to_the_new_index(
    site: Site, ns: Namespace
) -> None:
    site.start()
    site.caught_up()
    site.stop()
    with site.store.hold_writer(REINDEX):  # what `epipe reindex` holds while it rebuilds
        site.process.start()
        wait_until(lambda: "being written by epipe reindex" in site.process.log.read_text())
        generation, index = site.store.new_generation()  # the rebuild it does
        index.close()
        site.store.activate(generation)
        assert slot_state(site.conn, site.slot).active is False  # type: ignore[union-attr]
    assert "waiting for it to finish" in site.process.log.read_text()
    wait_until(site._active_or_exited)  # the pipeline starts once the rebuild has finished
    site.caught_up()
    ns.put("/data/later.jpg")
    site.caught_up()
    assert site.store.current(writable=False).search(SearchQuery(text="later")).total == 1
    site.stop()
    assert site.epipe("verify").exit_code == 0


def test_a_pipeline_whose_generation_is_replaced_under_it_stops_writing_to_it_and_rebuilds(
    site: Site, ns: Namespace
) -> None:
    site.start()
    site.caught_up()
    generation, index = site.store.new_generation()  # replaced by hand
    index.close()
    site.store.activate(generation)
    ns.put("/data/unseen.jpg")
    wait_until(lambda: "is no longer the current one" in site.process.log.read_text())
    site.caught_up()  # it started again, rebuilding the index it cannot go on from
    assert "rebuilding it from the database" in site.process.log.read_text()
    site.stop()
    assert site.epipe("verify").exit_code == 0
    assert site.store.current(writable=False).search(SearchQuery(text="unseen")).total == 1


@pytest.mark.parametrize("fault", ["empty meta", "dangling current", "missing segment"])
def test_reindex_rebuilds_an_index_that_cannot_be_opened(site: Site, fault: str) -> None:
    assert site.epipe("reindex").exit_code == 0
    current = site.home / "index" / "current"
    if fault == "empty meta":
        (current / "meta.json").write_bytes(b"")
    elif fault == "dangling current":
        shutil.rmtree(current.resolve())
    else:
        next(current.glob("*.idx")).unlink()
    assert site.epipe("verify").exit_code == 2
    started = time.monotonic()
    result = site.epipe("reindex")
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 20  # no waiting for a pipeline that does not run
    assert site.epipe("verify").exit_code == 0


@contextmanager
def inodes_locked(dsn: str) -> Iterator[None]:
    """Every reader of the inodes waits (a rebuild stops at its first read)."""
    with connect(dsn) as locker, locker.transaction():
        locker.execute("LOCK TABLE inodes IN ACCESS EXCLUSIVE MODE")
        yield


def reindex_process(site: Site) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "epipe", "reindex"],
        env={**os.environ, **site.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def served(site: Site) -> bool:
    row = site.conn.execute("SELECT started_at IS NOT NULL FROM epipe_index_requests").fetchone()
    return row == (True,)


def test_killing_the_pipeline_while_it_serves_a_reindex_tells_the_client_at_once(
    site: Site, dsn: str
) -> None:
    site.start()
    site.caught_up()
    with inodes_locked(dsn):
        client = reindex_process(site)
        wait_until(lambda: client.poll() is not None or served(site))
        assert client.poll() is None, client.communicate()
        site.process.kill()
        try:
            _, err = client.communicate(timeout=20)  # not the hour of --timeout
        finally:
            client.kill()
            client.wait()
    assert client.returncode == 1
    assert b"stopped before it finished" in err, err


def test_a_served_rebuild_its_server_abandoned_is_taken_up_by_the_next_run(site: Site) -> None:
    site.start()
    site.caught_up()
    site.stop()
    before = site.store.current_generation()
    # started by a pipeline that died before it finished
    site.conn.execute("INSERT INTO epipe_index_requests (started_at) VALUES (now())")
    site.start()
    wait_until(
        lambda: (
            site.conn.execute("SELECT finished_at, error FROM epipe_index_requests").fetchone()
            != (None, None)
        )
    )
    row = site.conn.execute("SELECT error, done FROM epipe_index_requests").fetchone()
    assert row is not None and row[0] is None and row[1] > 300
    assert site.store.current_generation() != before
    site.stop()


def test_the_generation_a_killed_reindex_left_is_removed_by_the_next_writer(
    site: Site, dsn: str
) -> None:
    assert site.epipe("reindex").exit_code == 0
    index = site.home / "index"
    kept = {p.name for p in index.glob("g*")}
    with inodes_locked(dsn):
        killed = reindex_process(site)
        wait_until(lambda: len(list(index.glob("g*"))) > len(kept))
        killed.kill()
        killed.communicate()
    site.start()  # the index consumer takes the writer lock
    site.caught_up()
    assert {p.name for p in index.glob("g*")} == kept
    site.stop()


def test_reindex_beside_a_running_pipeline_asks_it_even_when_the_index_opens(site: Site) -> None:
    site.start()
    site.caught_up()
    result = site.epipe("reindex")
    assert result.exit_code == 0, result.output
    assert "rebuilt by the running pipeline" in result.stdout
    site.stop()


def answers(store: TantivyStore) -> list[object]:
    """What searches that read the fast columns answer."""
    index = store.current(writable=False)
    queries = [
        SearchQuery(size_min=100_000),
        SearchQuery(modified_after=datetime(2024, 6, 1)),
        SearchQuery(xattr=(parse_predicate("labels.objects.car>1"),)),
        SearchQuery(xattr=(parse_predicate("labels.reviewed exists"),)),
        SearchQuery(sort="name", limit=50),
        SearchQuery(sort="path", limit=50),
    ]
    out: list[object] = []
    for query in queries:
        try:
            page = index.search(query)
            out.append((page.total, [hit.doc["id"] for hit in page.hits]))
        except Exception as exc:  # a damaged column may fail a search: an answer too
            out.append(type(exc).__name__)
    return out


def overwrite(path: Path, offset: int, data: bytes) -> None:
    """Bytes at `offset` replaced in place. The file keeps its length: tantivy maps it in this
    process, and a mapped file truncated (as `write_bytes` does first) is SIGBUS to a reader."""
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


def test_verify_finds_damaged_fast_columns_that_change_search_answers(site: Site) -> None:
    """Bytes of the columns searches filter and sort on overwritten, at 25 places in turn:
    `verify` reports drift (or cannot check), or else every such search answers as before."""
    assert site.epipe("reindex").exit_code == 0
    (fast,) = (site.home / "index" / "current").glob("*.fast")
    data = fast.read_bytes()
    healthy = answers(site.store)
    found = 0
    for offset in range(0, len(data) - 64, len(data) // 25):
        overwrite(fast, offset, b"\xa5" * 64)
        code = site.epipe("verify").exit_code
        assert code in (0, 1, 2)
        if code == 0:  # no drift reported: then searches answer as before
            assert answers(site.store) == healthy, offset
        found += code != 0
        overwrite(fast, offset, data[offset : offset + 64])
    assert fast.read_bytes() == data
    assert found > 15
    assert site.epipe("verify").exit_code == 0
