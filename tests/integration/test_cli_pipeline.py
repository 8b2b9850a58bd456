"""`epipe status`, `epipe wait`, `epipe tail`: output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from click.testing import CliRunner

from epipe.cli import cli
from epipe.fs.namespace import Namespace
from epipe.wiring import CONSUMERS
from tests.integration.pipeline_helpers import running


def invoke(dsn: str, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(
        cli, list(args), env={"EPIPE_DSN": dsn, **env}, catch_exceptions=False
    )


def test_status_and_wait_follow_a_running_pipeline(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    before = json.loads(invoke(dsn, "status", "--json").stdout)
    assert before["slot"] is None and before["consumers"] == []
    with running(dsn, tmp_path) as pipeline:
        token = ns.mkdir("/d").token
        waited = invoke(dsn, "wait", "--token", token, "--timeout", "30", EPIPE_SLOT=pipeline.slot)
        assert (waited.exit_code, waited.stdout.strip()) == (0, token)
        state = json.loads(invoke(dsn, "status", "--json", EPIPE_SLOT=pipeline.slot).stdout)
        assert state["slot"]["active"] is True
        assert isinstance(state["retained_wal_bytes"], int)
        (consumer,) = state["consumers"]
        assert consumer["name"] == "events-file" and consumer["dead_letters"] == 0
        assert set(consumer) == {
            "name",
            "applied_lsn",
            "lag_bytes",
            "lag_seconds",
            "updated_at",
            "dead_letters",
            "waiting",
        }
        assert consumer["waiting"] is None
        text = invoke(dsn, "status", EPIPE_SLOT=pipeline.slot).stdout
        assert "retained WAL" in text and "consumer events-file: applied" in text
        assert invoke(dsn, "wait", "--timeout", "30", EPIPE_SLOT=pipeline.slot).exit_code == 0


def test_wait_times_out_naming_who_is_behind(dsn: str) -> None:
    result = invoke(dsn, "wait", "--timeout", "0.2", EPIPE_SLOT="nobody")
    assert result.exit_code == 1
    assert result.stderr.startswith("epipe: timed out after 0.2 s waiting for ")
    assert "slot nobody (missing)" in result.stderr


def test_wait_rejects_a_malformed_token(dsn: str) -> None:
    result = invoke(dsn, "wait", "--token", "not-an-lsn")
    assert result.exit_code == 2
    assert "not an LSN" in result.stderr


def test_tail_needs_kafka(dsn: str) -> None:
    result = invoke(dsn, "tail")
    assert result.exit_code == 1
    assert result.stderr.startswith("epipe: `epipe tail` publishes to Kafka: set EPIPE_BUS=kafka")
    missing = invoke(dsn, "tail", EPIPE_BUS="kafka")
    assert missing.exit_code == 1
    assert "EPIPE_KAFKA_BOOTSTRAP" in missing.stderr


def test_consume_lists_the_registered_consumers(dsn: str) -> None:
    result = invoke(dsn, "consume", "--help")
    assert result.exit_code == 0
    for name, entry in CONSUMERS.items():
        assert name in result.stdout and entry.summary in " ".join(result.stdout.split())


def test_consume_of_an_unknown_consumer_fails_naming_the_registered_ones(dsn: str) -> None:
    result = invoke(dsn, "consume", "nope", EPIPE_BUS="kafka")
    assert result.exit_code == 2
    assert "Invalid value for 'NAME': 'nope' is not" in result.stderr
    assert all(repr(name) in result.stderr for name in CONSUMERS)
