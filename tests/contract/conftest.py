"""Adapters under contract: each test runs once per adapter of the port.

Kafka runs on a real broker in every run: Apache Kafka in a container where a Docker engine
answers, else Tansu (tests/tansu.py); each test has topics and groups of its own. Elasticsearch
runs in a container (testcontainers, fixtures in tests/conftest.py) where Docker answers;
elsewhere its runs are skipped with the reason, and the embedded twin still runs.
"""
