"""A commit is in the change log a moment before new snapshots see it: neither the backfill's
read nor a rebuild may miss it.

To hold a commit in that moment for as long as a test needs, the writer's session waits for
a synchronous standby that never comes: PostgreSQL writes and flushes the commit record
(logical decoding streams it) and only then waits, before making the transaction visible.
That needs a server-wide setting, so these tests have a server of their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from epipe import events as ev
from epipe.db.embedded import EmbeddedPostgres
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.fs.namespace import Namespace
from epipe.index.engine import SearchIndex
from epipe.index.rebuild import RebuildReport, rebuild
from epipe.index.tantivy import TantivyStore
from tests.integration.helpers import wait_until
from tests.integration.pipeline_helpers import running
from tests.integration.replay import Model, read_events


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    # only sessions that ask for it wait for the (never present) synchronous standby
    pg = EmbeddedPostgres(tmp_path / "own", {"synchronous_commit": "local"})
    pg.start()
    try:
        with connect(pg.dsn) as conn:
            migrate(conn)
        yield pg
    finally:
        pg.stop()


@contextmanager
def held_commit(
    conn: psycopg.Connection, dsn: str, write: Callable[[Namespace], object]
) -> Iterator[Callable[[], None]]:
    """`write` committed in the log but not yet visible, until the yielded release()."""
    done = threading.Event()

    def writer() -> None:
        with connect(dsn) as own:
            own.execute("SET synchronous_commit = on")
            write(Namespace(own))  # returns once released
            done.set()

    def release() -> None:
        conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
        conn.execute("SELECT pg_reload_conf()")
        thread.join()
        assert done.is_set(), "the held write failed"

    conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'epipe_test_nobody'")
    conn.execute("SELECT pg_reload_conf()")
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        wait_until(
            lambda: (
                conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                ).fetchone()
                == (1,)
            ),
            why=lambda: "for the writer's commit to wait for the standby",
        )
        assert not done.is_set()
        yield release
    finally:
        if thread.is_alive():
            release()


def test_a_commit_logged_before_the_low_watermark_but_not_yet_visible_is_not_overwritten(
    server: EmbeddedPostgres, tmp_path: Path
) -> None:
    dsn = server.dsn
    with connect(dsn) as conn:
        ns = Namespace(conn)
        ns.mkdir("/d")
        for i in range(20):
            ns.put(f"/d/f{i}", size=i)
        with running(dsn, tmp_path, slot="vis") as first:  # the slot, and a first backfill
            first.backfilled(conn)
            first.wait(conn)
        with (
            held_commit(conn, dsn, lambda w: w.mv("/d/f7", "/d/f7.moved")) as release,
            running(dsn, tmp_path, slot="vis", backfill=True) as again,
        ):
            # the resynchronisation's low watermark (its truncation) follows the commit
            wait_until(
                lambda: any(e.type == ev.TABLE_TRUNCATED for e in read_events(again.events_file)),
                why=lambda: "for the low watermark",
            )
            release()
            again.backfilled(conn)
            again.wait(conn)
            events = read_events(again.events_file)
        assert Model.of(events).differences(Model.from_database(conn)) == []


def test_a_rebuild_holds_every_commit_logged_before_its_position(
    server: EmbeddedPostgres, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="epipe.db.visibility")
    dsn = server.dsn
    built: list[tuple[RebuildReport, SearchIndex]] = []
    with connect(dsn) as conn, connect(dsn) as reader:
        Namespace(conn).mkdir("/d")
        with held_commit(conn, dsn, lambda w: w.put("/d/late")) as release:
            thread = threading.Thread(
                target=lambda: built.append(rebuild(reader, TantivyStore(tmp_path / "index")))
            )
            thread.start()
            wait_until(
                lambda: (
                    not thread.is_alive()
                    or any("in flight" in r.getMessage() for r in caplog.records)
                ),
                why=lambda: "for the rebuild to finish or wait",
            )
            release()
            thread.join()
        report, index = built[0]
        paths = {doc["path"] for batch in index.scan() for doc in batch}
        index.close()
        late = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert late is not None
    # the held commit is logged before the rebuild's position: the rebuild must hold it
    assert "/d/late" in paths, (report.position, paths)
