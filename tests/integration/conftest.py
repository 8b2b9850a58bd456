"""Fixtures of the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.kafka_helpers import Site


@pytest.fixture
def site(dsn: str, tmp_path: Path, kafka_bootstrap: str) -> Iterator[Site]:
    running = Site(dsn, tmp_path, kafka_bootstrap)
    try:
        yield running
    finally:
        running.reap()  # before pytest deletes their files
