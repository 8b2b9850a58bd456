"""A consumer group's applied position is the least over every part of the stream it reads:
a fast member never hides a slow one from `epipe wait` and read-your-writes.

On the session's broker, members of one group run as processes beside `epipe tail`: the
provenance consumer (its graph is in PostgreSQL, so it takes several writers) with one member
paused (SIGSTOP) holds back `epipe wait` and `after=` until it resumes, and with one member
killed the other takes its parts over and the graph converges. The embedded index takes one
writer: a second index consumer says so in one line."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from epipe import accounts, wiring
from epipe.db.server import connect
from epipe.errors import EpipeError
from epipe.index.engine import RUN
from epipe.lsn import lsn_from_str
from epipe.pipeline.store import PipelineStore
from epipe.settings import Settings
from epipe.sink.index import IndexSink
from search_api import create_app
from tests.integration.kafka_helpers import DEADLINE, Loader, Site, write_batch
from tests.integration.pipeline_helpers import EpipeProcess, epipe_command

EVERY = frozenset({"epipe.fs:0", "epipe.fs:1", "epipe.prov:0"})


def applied(store: PipelineStore, name: str) -> int:
    return next(p.applied_lsn for p in store.positions() if p.name == name)


def test_the_group_stands_where_its_slowest_part_stands(conn: psycopg.Connection) -> None:
    store = PipelineStore.on(conn)
    store.register("provenance")
    fast, slow = "epipe.fs:0", "epipe.fs:1"
    store.record_parts("provenance", {fast: (900, None), "epipe.prov:0": (900, None)}, EVERY)
    assert applied(store, "provenance") == 0  # a part nobody has reported: nothing is known
    store.record_parts("provenance", {slow: (100, None)}, EVERY)
    assert applied(store, "provenance") == 100
    store.record_parts("provenance", {fast: (2000, None), "epipe.prov:0": (2000, None)}, EVERY)
    assert applied(store, "provenance") == 100  # the fast member cannot pull the group along
    store.record_parts("provenance", {slow: (1500, None)}, EVERY)
    assert applied(store, "provenance") == 1500
    # a member replaying an older batch after a crash moves nothing back
    store.record_parts("provenance", {slow: (700, None)}, EVERY)
    assert applied(store, "provenance") == 1500
    # a partition that moved to another member is taken up where it was
    store.record_parts("provenance", {fast: (2100, None)}, EVERY)
    store.record_parts("provenance", {slow: (2500, None), "epipe.prov:0": (2600, None)}, EVERY)
    assert applied(store, "provenance") == 2100


def test_a_group_of_one_part_is_the_in_process_bus(conn: psycopg.Connection) -> None:
    store = PipelineStore.on(conn)
    store.register("index")
    store.record_position("index", 42, "2026-12-01T00:00:00+00:00")
    store.record_position("index", 7, None)
    position = next(p for p in store.positions() if p.name == "index")
    assert position.applied_lsn == 42 and position.committed_at is not None
    assert store.forget("index")
    assert conn.execute("SELECT count(*) FROM epipe_consumer_parts").fetchone() == (0,)


def test_a_second_index_consumer_on_the_embedded_index_says_how_to_scale(
    dsn: str, tmp_path: Path
) -> None:
    store = wiring.open_tantivy_store(tmp_path / "index")
    with store.hold_writer(RUN), pytest.raises(EpipeError) as refused:  # a first consumer holds it
        IndexSink(lambda: connect(dsn), store)
    message = str(refused.value)
    assert "\n" not in message
    assert "single writer" in message and "EPIPE_INDEX=elasticsearch" in message


# -- members of one group as processes on the session's broker -------------------------------


def test_a_second_index_consumer_process_on_the_embedded_index_exits_with_one_line(
    site: Site,
) -> None:
    first = site.start("consume", "index")
    lock = site.home / "index" / "writer.lock"
    deadline = time.monotonic() + DEADLINE
    while not (lock.exists() and lock.read_text().endswith(f" pid {first.pid}")):
        assert first.alive(), site.logs()
        assert time.monotonic() < deadline, site.logs()
        time.sleep(0.05)
    second = epipe_command(site.env, "consume", "index")
    assert second.returncode == 1, (second.stdout, second.stderr)
    assert second.stderr.count("\n") == 1, second.stderr
    assert f"pid {first.pid}" in second.stderr and "single writer" in second.stderr
    assert "EPIPE_INDEX=elasticsearch" in second.stderr and "provenance" in second.stderr
    assert first.alive() and first.stop() == 0, site.logs()


# A paused member keeps its parts while its session lasts: long enough for the assertions made
# while it is stopped (well under 10 s), short enough for the join (Tansu holds a JoinGroup
# for about half the session timeout: ~15 s, once, both members joining together).
LONG_SESSION = {
    "EPIPE_KAFKA_SESSION_TIMEOUT_MS": "30000",
    "EPIPE_KAFKA_HEARTBEAT_INTERVAL_MS": "3000",
}


def parts_of_the_topics(site: Site) -> frozenset[str]:
    prefix = site.env["EPIPE_KAFKA_PREFIX"]
    count = int(site.env["EPIPE_KAFKA_PARTITIONS"])
    return frozenset(f"{prefix}{t}:{p}" for t in ("epipe.fs", "epipe.prov") for p in range(count))


def holding(member: EpipeProcess) -> frozenset[str] | None:
    """The parts `member` (`epipe consume NAME -v`) holds since its group's last rebalance,
    as it logs them; None before its first assignment."""
    mark = f"member pid {member.pid} holds "
    lines = [line for line in member.log.read_text(errors="replace").splitlines() if mark in line]
    if not lines:
        return None
    held = lines[-1].split(mark, 1)[1].split()
    return frozenset() if held == ["none"] else frozenset(held)


def members_hold_parts(
    site: Site, members: list[EpipeProcess], timeout: float = DEADLINE
) -> dict[int, frozenset[str]]:
    """Until every member holds parts of its own and together they hold them all (the group
    is balanced); the parts of each, by pid."""
    every, deadline = parts_of_the_topics(site), time.monotonic() + timeout
    while True:
        held = {m.pid: holding(m) for m in members}
        sets = [h for h in held.values() if h]
        if len(sets) == len(members) and sum(map(len, sets)) == len(every) == len(
            frozenset().union(*sets)
        ):
            return {pid: h for pid, h in held.items() if h}
        assert all(p.alive() for p in site.processes), site.logs()
        assert time.monotonic() < deadline, (held, site.logs())
        time.sleep(0.1)


def pause_outside_transactions(conn: psycopg.Connection, member: EpipeProcess, app: str) -> None:
    """SIGSTOP `member` (whose connections are named `app`) at a moment none of them is in a
    transaction: stopped inside one, it would hold row locks the other members wait for."""
    deadline = time.monotonic() + DEADLINE
    while True:
        member.pause()
        settled = time.monotonic() + 1.0  # a statement it sent before stopping ends by then
        while True:
            states = [
                str(state)
                for (state,) in conn.execute(
                    "SELECT state FROM pg_stat_activity WHERE application_name = %s", [app]
                ).fetchall()
            ]
            assert states, f"no connection of {app} (PGAPPNAME) in pg_stat_activity"
            if "active" not in states or time.monotonic() > settled:
                break
            time.sleep(0.01)
        if all(state == "idle" for state in states):
            return
        member.resume()  # caught in a transaction: let it finish, then try again
        assert time.monotonic() < deadline, states
        time.sleep(0.05)


def parts_reached(conn: psycopg.Connection, consumer: str, parts: frozenset[str]) -> dict[str, int]:
    rows = conn.execute(
        "SELECT part, applied_lsn::text FROM epipe_consumer_parts WHERE consumer = %s",
        [consumer],
    ).fetchall()
    return {part: lsn_from_str(lsn) for part, lsn in rows if part in parts}


@pytest.mark.timeout(180)
def test_a_paused_member_holds_back_wait_and_read_your_writes_until_it_resumes(
    site: Site, conn: psycopg.Connection
) -> None:
    site.start("tail")
    members = [
        site.start("consume", "provenance", "-v", name=app, PGAPPNAME=app, **LONG_SESSION)
        for app in ("member-a", "member-b")
    ]
    held = members_hold_parts(site, members)
    site.applied(conn, "provenance", write_batch(conn, 0))
    paused, running = members
    root = accounts.create_token(conn, "root")
    settings = Settings(dsn=site.dsn, home=site.home)  # type: ignore[arg-type]
    with TestClient(create_app(settings)) as api:

        def footprint(token: str, wait_ms: int) -> Any:
            return api.get(
                "/v1/provenance/apps/train",
                params={"after": token, "wait_ms": wait_ms},
                headers={"Authorization": f"Bearer {root}"},
            )

        pause_outside_transactions(conn, paused, "member-a")
        paused_at = time.monotonic()
        try:
            token = write_batch(conn, 1)  # `train` reads images and writes a model
            target = lsn_from_str(token)
            # the running member applies its parts past the token (heartbeats reach them all)
            deadline = time.monotonic() + DEADLINE
            while min(parts_reached(conn, "provenance", held[running.pid]).values()) < target:
                assert time.monotonic() < deadline, site.logs()
                time.sleep(0.05)
            # ... and cannot pull the group along: the paused member's parts stand before it
            assert max(parts_reached(conn, "provenance", held[paused.pid]).values()) < target
            waited = epipe_command(site.env, "wait", "--token", token, "--timeout", "2")
            assert waited.returncode == 1, (waited.stdout, waited.stderr)
            assert "timed out" in waited.stderr and "provenance at" in waited.stderr
            answer = footprint(token, 1000)
            assert answer.status_code == 409, answer.text
            assert [lag["consumer"] for lag in answer.json()["lag"]] == ["provenance"]
            paused_for = time.monotonic() - paused_at
            # its session did not run out: the parts stayed its own all along
            assert paused_for < 30 - 3, paused_for
        finally:
            paused.resume()
        waited = epipe_command(site.env, "wait", "--token", token, "--timeout", str(DEADLINE))
        assert waited.returncode == 0, (waited.stdout, waited.stderr, site.logs())
        answer = footprint(token, 30_000)
        assert answer.status_code == 200, answer.text
        outputs = {file["path"] for file in answer.json()["outputs"]}
        assert "/data/b1/model.pb" in outputs
    assert holding(paused) == held[paused.pid]  # no rebalance: it kept its parts throughout
    for process in site.processes:
        assert process.stop() == 0, site.logs()


@pytest.mark.timeout(180)
def test_a_member_killed_mid_load_leaves_its_parts_to_the_other_and_the_graph_converges(
    site: Site, conn: psycopg.Connection
) -> None:
    site.start("tail")
    site.start("consume", "index")  # `epipe verify` compares the index too
    members = [site.start("consume", "provenance", "-v", name=f"member-{m}") for m in ("a", "b")]
    members_hold_parts(site, members)
    victim, survivor = members
    loader = Loader(site.dsn)
    loader.start()
    try:
        loader.wait_for(2)
        assert loader.last_token is not None
        site.applied(conn, "provenance", loader.last_token)  # both apply: mid-load now
        victim.kill()
        site.processes.remove(victim)
        # once the victim's session has run out, the survivor holds every part
        every, deadline = parts_of_the_topics(site), time.monotonic() + DEADLINE
        while holding(survivor) != every:
            assert survivor.alive(), site.logs()
            assert time.monotonic() < deadline, site.logs()
            time.sleep(0.1)
        loader.wait_for(loader.batches + 2)  # the load goes on with one member
    finally:
        loader.finish()
    assert "the graph equals a rebuild from the log" in site.converged(conn)
