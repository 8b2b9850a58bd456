"""PGTZ and TZ in a process's environment change nothing epipe reads, stores or prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from epipe.db.server import connect
from tests.integration.helpers import wait_until
from tests.integration.pipeline_helpers import PipelineProcess, epipe_command, new_slot, streaming

ELSEWHERE = {"PGTZ": "Asia/Kathmandu", "TZ": "America/St_Johns"}  # odd offsets: +05:45, -03:30


def test_connections_use_utc_whatever_pgtz_says(dsn: str) -> None:
    probe = (
        "import sys\n"
        "from epipe.db.server import connect\n"
        "for autocommit in (True, False):\n"
        "    with connect(sys.argv[1], autocommit=autocommit) as conn:\n"
        "        zone = conn.execute('SHOW TimeZone').fetchone()[0]\n"
        "        when = conn.execute('SELECT now()').fetchone()[0]\n"
        "        print(zone, when.utcoffset().total_seconds())\n"
    )
    env = {**os.environ, **ELSEWHERE}
    result = subprocess.run(
        [sys.executable, "-c", probe, dsn], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout == "UTC 0.0\nUTC 0.0\n"


def test_pgtz_in_the_pipelines_environment_makes_no_false_staleness(
    dsn: str, tmp_path: Path
) -> None:
    base = {**os.environ, "EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)}
    elsewhere = {**base, **ELSEWHERE}
    slot = new_slot()
    events = tmp_path / "events.jsonl"
    pipeline = PipelineProcess(dsn, tmp_path, slot, events)
    pipeline.env.update(ELSEWHERE)
    pipeline.start()
    try:
        with connect(dsn) as conn:  # so that the files below come as streamed events
            wait_until(lambda: streaming(conn, slot), timeout=120)
        assert epipe_command(elsewhere, "fs", "mkdir", "-p", "/d/e").returncode == 0
        made = epipe_command(elsewhere, "fs", "put", "/d/e/f", "--size", "3")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        waited = epipe_command(
            {**base, "EPIPE_SLOT": slot}, "wait", "--token", token, "--timeout", "60"
        )
        assert waited.returncode == 0, waited.stderr
        verified = epipe_command(base, "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        stat = json.loads(epipe_command(elsewhere, "fs", "stat", "/d/e/f", "--json").stdout)
        assert stat["mtime"].endswith("+00:00") and stat["ctime"].endswith("+00:00")
        listing = epipe_command(elsewhere, "fs", "ls", "/d/e").stdout
        with connect(dsn) as conn:
            row = conn.execute(
                "SELECT to_char(mtime, 'YYYY-MM-DD\"T\"HH24:MI') FROM inodes WHERE name = 'f'"
            ).fetchone()
        assert row is not None and f" {row[0]}Z f\n" in listing
    finally:
        assert pipeline.stop() == 0, pipeline.log.read_text()
    streamed = [json.loads(line) for line in events.read_text().splitlines()]
    rows = [event["inode"] for event in streamed if "inode" in event and "snapshot" not in event]
    assert {row["name"] for row in rows} >= {"d", "e", "f"}
    assert [row["mtime"] for row in rows if not row["mtime"].endswith("+00:00")] == []


def test_the_apis_connections_use_utc_whatever_pgtz_says(
    dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastapi.testclient import TestClient

    from epipe.settings import Settings
    from search_api import create_app
    from search_api.services import Services

    monkeypatch.setenv("PGTZ", ELSEWHERE["PGTZ"])  # libpq reads it at every connect
    with TestClient(create_app(Settings(dsn=dsn, home=tmp_path))) as client:  # type: ignore[arg-type]
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        with services.connection() as conn:
            assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
