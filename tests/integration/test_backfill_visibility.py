"""A commit is in the change log a moment before new snapshots see it: the backfill's read
must not miss it.

To hold a commit in that moment for as long as the test needs, the writer's session waits
for a synchronous standby that never comes: PostgreSQL writes and flushes the commit record
(logical decoding streams it) and only then waits, before making the transaction visible.
That needs a server-wide setting, so the test has a server of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from epipe import events as ev
from epipe.db.embedded import EmbeddedPostgres
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.fs.namespace import Namespace
from tests.integration.helpers import wait_until
from tests.integration.pipeline_helpers import running
from tests.integration.replay import Model, read_events


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    # only sessions that ask for it wait for the (never present) synchronous standby
    pg = EmbeddedPostgres(tmp_path / "own", {"synchronous_commit": "local"})
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


def test_a_commit_logged_before_the_low_watermark_but_not_yet_visible_is_not_overwritten(
    server: EmbeddedPostgres, tmp_path: Path
) -> None:
    dsn = server.dsn
    with connect(dsn) as conn:
        migrate(conn)
        ns = Namespace(conn)
        ns.mkdir("/d")
        for i in range(20):
            ns.put(f"/d/f{i}", size=i)
        with running(dsn, tmp_path, slot="vis") as first:  # the slot, and a first backfill
            first.backfilled(conn)
            first.wait(conn)

        conn.execute("ALTER SYSTEM SET synchronous_standby_names = 'epipe_test_nobody'")
        conn.execute("SELECT pg_reload_conf()")
        moved = threading.Event()

        def writer() -> None:
            with connect(dsn) as own:
                own.execute("SET synchronous_commit = on")
                Namespace(own).mv("/d/f7", "/d/f7.moved")  # returns once released
                moved.set()

        def release() -> None:
            conn.execute("ALTER SYSTEM RESET synchronous_standby_names")
            conn.execute("SELECT pg_reload_conf()")
            thread.join()

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
                why=lambda: "the writer's commit is not waiting for the standby",
            )
            with running(dsn, tmp_path, slot="vis", backfill=True) as again:
                # the resynchronisation's low watermark (its truncation) follows the commit
                wait_until(
                    lambda: any(
                        e.type == ev.TABLE_TRUNCATED for e in read_events(again.events_file)
                    ),
                    why=lambda: "no low watermark streamed",
                )
                assert not moved.is_set()
                release()
                again.backfilled(conn)
                again.wait(conn)
                events = read_events(again.events_file)
        finally:
            if thread.is_alive():
                release()
        assert moved.is_set()
        assert Model.of(events).differences(Model.from_database(conn)) == []
