"""Adapters under contract: each test runs once per adapter of the port.

Kafka and Elasticsearch run in containers (testcontainers, fixtures in tests/conftest.py)
where a Docker engine answers; elsewhere their runs are skipped with the reason, and the
embedded twins still run.
"""
