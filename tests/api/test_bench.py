"""`epipe bench search` end to end on a small dataset: figures, not timings, are checked."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from epipe.cli import cli


def test_bench_search_reports_each_kind(dsn: str, tmp_path: Path) -> None:
    figures = tmp_path / "search.json"
    result = CliRunner().invoke(
        cli,
        ["bench", "search", "--files", "1000", "--json", str(figures)],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "search: HTTP latency over 1,000 indexed files, 1,000 requests" in result.stdout
    data = json.loads(figures.read_text())
    assert data["docs"] == 1000 and data["requests"] == 1000
    assert 0 < data["p50_ms"] <= data["p99_ms"]
    for kind in ("text", "under", "range", "combined"):
        assert 0 < data[kind]["p50_ms"] <= data[kind]["p99_ms"], kind
        assert data[kind]["max_total"] > 0, kind  # every kind of query finds something
