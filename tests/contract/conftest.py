"""Adapters under contract: each test runs once per adapter of the port.

Kafka and Elasticsearch run in containers (testcontainers) where a Docker engine answers;
elsewhere their runs are skipped with the reason, and the embedded twins still run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


def docker_unavailable() -> str | None:
    """Why no container can run here, or None if a Docker engine answers."""
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception as exc:  # any failure means: no engine to use
        return f"no Docker engine for testcontainers ({type(exc).__name__}: {exc})"
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(f"Kafka contract run skipped: {reason}")
    from testcontainers.kafka import KafkaContainer

    with KafkaContainer("confluentinc/cp-kafka:7.6.1") as kafka:
        yield kafka.get_bootstrap_server()


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    reason = docker_unavailable()
    if reason:
        pytest.skip(f"Elasticsearch contract run skipped: {reason}")
    from testcontainers.elasticsearch import ElasticSearchContainer

    with ElasticSearchContainer(
        "docker.elastic.co/elasticsearch/elasticsearch:9.1.5", mem_limit="1g"
    ) as es:
        yield es.get_url()
