"""Scale-out over a real Kafka-protocol broker: `epipe tail` and each consumer in a process of
its own, a consumer killed with SIGKILL while apps keep writing, reading and moving files,
then started again; `epipe verify` finds the index and the lineage graph equal to the
database.

The broker is the session's (tests/conftest.py: Tansu, or Apache Kafka where Docker runs);
the test's topics and groups are its own (EPIPE_KAFKA_PREFIX).
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from epipe.db.server import connect
from epipe.pipeline.store import PipelineStore
from tests.integration.kafka_helpers import DEADLINE, ConnectWorker, Loader, Site
from tests.integration.pipeline_helpers import EpipeProcess, epipe_command


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


def the_reader(members: list[EpipeProcess]) -> EpipeProcess:
    """The member that reads now (`-v`: each says when it starts reading or stands by)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        reading = []
        for member in members:
            said = [
                line
                for line in member.log.read_text().splitlines()
                if "reads the connector" in line or "stands by" in line
            ]
            if said and "reads the connector" in said[-1]:
                reading.append(member)
        if len(reading) == 1:
            return reading[0]
        assert time.monotonic() < deadline, [m.log.read_text() for m in members]
        time.sleep(0.05)


def poison(bootstrap: str, prefix: str) -> None:
    """Records that are not change events, on table topics and on the control topic (made
    first as the connector makes them: one partition for the control topic)."""
    from kafka import KafkaProducer

    from epipe.bus.connect import control, topics
    from epipe.bus.kafka import ensure_topics

    ensure_topics(bootstrap, 1, 1, [control(prefix)])
    ensure_topics(bootstrap, 3, 1, [t for t in topics(prefix) if t != control(prefix)])
    unknown = b'{"op": "x", "source": {"schema": "public", "table": "inodes", "lsn": 5}}'
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(f"{prefix}.public.xattrs", key=b'{"inode_id": 1}', value=b"{not json")
        producer.send(f"{prefix}.public.inodes", key=b'{"id": 1}', value=unknown)
        producer.send(control(prefix), value=b"\xff not json")
        producer.flush(timeout=30)
    finally:
        producer.close()


@pytest.mark.timeout(240)
def test_consumers_of_kafka_connect_topics_converge_through_a_killed_reader(
    tcp_dsn: str, tmp_path: Path, kafka_bootstrap: str
) -> None:
    """EPIPE_BUS=connect: Debezium's connector, configured as compose registers it, writes
    its per-table and control topics as Kafka Connect does (tests/connect_worker.py, three
    partitions per table), with records that are not change events among them. Commit
    order needs one reader of every topic: of two members of the lineage graph's group one
    reads, the other stands by. The reader is killed -9 while apps write; the standby goes
    on from the reader's last cut, the killed one comes back as a standby, and the graph and
    the index end equal to the database."""
    site = Site(tcp_dsn, tmp_path, kafka_bootstrap)
    prefix = site.env["EPIPE_KAFKA_PREFIX"] + "epipe"
    site.env |= {"EPIPE_BUS": "connect", "EPIPE_CONNECT_TOPIC_PREFIX": prefix}
    worker = ConnectWorker(site, prefix)
    try:
        poison(kafka_bootstrap, prefix)
        worker.start()
        site.processes.append(worker)
        site.start("consume", "index")
        members = [site.start("consume", "provenance", "-v", name=f"member{i}") for i in (0, 1)]
        loader = Loader(site.dsn)
        loader.start()
        with connect(tcp_dsn) as conn:
            try:
                loader.wait_for(2)
                assert loader.last_token is not None
                site.applied(conn, "provenance", loader.last_token)
                reader = the_reader(members)
                reader.kill()
                site.processes.remove(reader)
                loader.wait_for(loader.batches + 3)
                site.applied(conn, "provenance", loader.last_token)  # the standby took over
                site.start("consume", "provenance", "-v", name="member2")
                loader.wait_for(loader.batches + 2)
            finally:
                loader.finish()
            verified = site.converged(conn)
            letters = PipelineStore.on(conn).recent_dead_letters(100)
        assert "the graph equals a rebuild from the log" in verified
        topics_there, _ = site.names_on_the_broker()
        group = site.env["EPIPE_KAFKA_PREFIX"] + "provenance"
        assert {f"{prefix}.message", f"{prefix}.public.inodes", f"{group}.connect-cuts"} <= (
            topics_there
        )
        # what is not a change event went to the dead letters, naming where it was
        for consumer in ("index", "provenance"):
            reasons = [reason for name, _, reason in letters if name == consumer]
            assert sum("not JSON" in r for r in reasons) >= 2, reasons  # a restart repeats
            assert any(r.startswith(f"{prefix}.message[0]@") for r in reasons), reasons
            assert any(r.startswith(f"{prefix}.public.xattrs[") for r in reasons), reasons
            assert "Debezium event: unknown op 'x'" in reasons, reasons
    finally:
        site.reap()


def test_tailers_and_a_control_topic_of_many_partitions_are_refused_in_one_line(
    tmp_path: Path, kafka_bootstrap: str, dsn: str
) -> None:
    """EPIPE_BUS=connect: epipe publishes nothing (Kafka Connect does); the control topic
    must keep log order (one partition)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    site = Site(dsn, tmp_path, kafka_bootstrap)
    prefix = site.env["EPIPE_KAFKA_PREFIX"] + "epipe"
    site.env |= {"EPIPE_BUS": "connect", "EPIPE_CONNECT_TOPIC_PREFIX": prefix}
    for command in (("tail",), ("run",)):
        done = epipe_command(site.env, *command)
        assert done.returncode == 1, done
        [line] = done.stderr.strip().splitlines()
        assert "EPIPE_BUS=" in line and "consume" in line, line
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(f"{prefix}.message", 2, 1)], wait_for_metadata=True)
    finally:
        admin.close()
    done = epipe_command(site.env, "consume", "provenance")
    assert done.returncode == 1, done
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"topic {prefix}.message has 2 partitions: commit order needs it to have one "
            "(the connector's topic.creation default)"
        )
    ), done.stderr
