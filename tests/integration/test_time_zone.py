"""PGTZ and TZ in a process's environment change nothing epipe reads, stores or prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from epipe.db.server import connect
from tests.integration.pipeline_helpers import PipelineProcess, new_slot

ELSEWHERE = {"PGTZ": "Asia/Kathmandu", "TZ": "America/St_Johns"}  # odd offsets: +05:45, -03:30


def _epipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "epipe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


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
        _wait_streaming(dsn, slot)  # so that the files below come as streamed events
        assert _epipe(elsewhere, "fs", "mkdir", "-p", "/d/e").returncode == 0
        made = _epipe(elsewhere, "fs", "put", "/d/e/f", "--size", "3")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        waited = _epipe({**base, "EPIPE_SLOT": slot}, "wait", "--token", token, "--timeout", "60")
        assert waited.returncode == 0, waited.stderr
        verified = _epipe(base, "verify", "--json")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        stat = json.loads(_epipe(elsewhere, "fs", "stat", "/d/e/f", "--json").stdout)
        assert stat["mtime"].endswith("+00:00") and stat["ctime"].endswith("+00:00")
        listing = _epipe(elsewhere, "fs", "ls", "/d/e").stdout
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


def _wait_streaming(dsn: str, slot: str) -> None:
    deadline = time.monotonic() + 120
    with connect(dsn) as conn:
        query = "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s AND active"
        while conn.execute(query, [slot]).fetchone() is None:
            assert time.monotonic() < deadline, f"the pipeline never streamed slot {slot}"
            time.sleep(0.05)
