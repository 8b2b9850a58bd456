"""Scale-out over a real Kafka-protocol broker: `epipe tail` and each consumer in a process of
its own, a consumer killed with SIGKILL while apps keep writing, reading and moving files,
then started again; `epipe verify` finds the index and the lineage graph equal to the
database.

The broker is the session's (tests/conftest.py: Tansu, or Apache Kafka where Docker runs);
the test's topics and groups are its own (EPIPE_KAFKA_PREFIX).
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from epipe.db.server import connect
from tests.integration.kafka_helpers import ConnectWorker, Loader, Site


def kill_mid_load_and_converge(
    site: Site,
    conn: psycopg.Connection,
    names: tuple[str, ...],
    victim: str,
    topics: tuple[str, ...] = ("epipe.fs", "epipe.prov"),
) -> None:
    """The tailer (`epipe tail`, unless the site runs another) and consumers `names` run;
    `victim` is killed -9 while apps work, started again while they still do; then every
    consumer catches up, `epipe verify` exits 0, and `topics` (after the site's prefix) are
    on the broker."""
    if site.env["EPIPE_BUS"] == "kafka":
        site.start("tail")
    consumers = {name: site.start("consume", name) for name in names}
    loader = Loader(site.dsn)
    loader.start()
    try:
        loader.wait_for(2)
        assert loader.last_token is not None
        site.applied(conn, victim, loader.last_token)  # it reads and applies: mid-load now
        consumers[victim].kill()
        site.processes.remove(consumers[victim])
        killed_at = loader.batches
        loader.wait_for(killed_at + 3)  # the load goes on without it
        consumers[victim] = site.start("consume", victim)
        loader.wait_for(loader.batches + 3)
    finally:
        loader.finish()
    verified = site.converged(conn)
    if "provenance" in names:  # verify checks the graph once a provenance consumer made one
        assert "the graph equals a rebuild from the log" in verified
        assert conn.execute("SELECT count(*) FROM prov_ops WHERE op = 'read'").fetchone() != (0,)
    topics_there, groups = site.names_on_the_broker()
    prefix = site.env["EPIPE_KAFKA_PREFIX"]
    assert {prefix + topic for topic in topics} <= topics_there
    assert {prefix + name for name in names} <= groups


@pytest.mark.timeout(180)
def test_the_index_consumer_killed_mid_load_converges_over_kafka(
    site: Site, conn: psycopg.Connection
) -> None:
    kill_mid_load_and_converge(site, conn, ("index",), "index")


@pytest.mark.timeout(180)
def test_the_provenance_consumer_killed_mid_load_converges_over_kafka(
    site: Site, conn: psycopg.Connection
) -> None:
    kill_mid_load_and_converge(site, conn, ("index", "provenance"), "provenance")


@pytest.mark.timeout(240)
def test_debezium_as_the_tailer_over_kafka_converges_through_a_killed_consumer(
    tcp_dsn: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    """`epipe tail` with EPIPE_SOURCE=debezium: Debezium's embedded engine in the tailer's
    process publishes the same events to Kafka."""
    site = Site(tcp_dsn, tmp_path, kafka_bootstrap)
    site.env["EPIPE_SOURCE"] = "debezium"
    try:
        with connect(tcp_dsn) as conn:
            kill_mid_load_and_converge(site, conn, ("index", "provenance"), "provenance")
    finally:
        site.reap()


@pytest.mark.timeout(240)
def test_consumers_of_kafka_connect_topics_converge_through_a_killed_consumer(
    tcp_dsn: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    """EPIPE_BUS=connect: Debezium's connector, configured as compose registers it, writes
    its per-table, transaction and message topics as Kafka Connect does (tests/connect_worker.py,
    three partitions per table); the consumers put commit order back and converge through a
    kill -9 of the lineage graph's consumer."""
    site = Site(tcp_dsn, tmp_path, kafka_bootstrap)
    prefix = site.env["EPIPE_KAFKA_PREFIX"] + "epipe"
    site.env |= {"EPIPE_BUS": "connect", "EPIPE_CONNECT_TOPIC_PREFIX": prefix}
    worker = ConnectWorker(site, prefix)
    try:
        worker.start()
        site.processes.append(worker)
        with connect(tcp_dsn) as conn:
            kill_mid_load_and_converge(
                site,
                conn,
                ("index", "provenance"),
                "provenance",
                topics=tuple(f"epipe.{t}" for t in ("message", "public.inodes", "public.xattrs")),
            )
    finally:
        site.reap()
