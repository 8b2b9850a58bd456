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


def test_bench_index_prints_its_figures_beside_the_engine_alone(dsn: str, tmp_path: Path) -> None:
    figures = tmp_path / "index.json"
    result = CliRunner().invoke(
        cli,
        [
            *("bench", "index", "--images", "300", "--subtree", "200", "--rm-files", "400"),
            *("--mix-seconds", "1", "--json", str(figures)),
        ],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "raw engine docs/s (baseline)" in result.stdout
    data = json.loads(figures.read_text())
    assert data["docs"] >= 300 and data["subtree_files"] == 200  # images and their dirs
    for key in ("docs_per_s", "rebuild_docs_per_s", "raw_engine_docs_per_s"):
        assert data[key] > 0, key
    for key in ("docs_per_s", "rebuild_docs_per_s"):
        assert data[f"{key}_vs_raw_engine"] == round(data[key] / data["raw_engine_docs_per_s"], 3)
    assert 0 < data["lag_p50_ms"] <= data["lag_p99_ms"]
    assert data["mv_100k_s"] > 0 and data["rm_r_100k_s"] > 0 and data["rm_r_1m_s"] > 0
    assert data["rm_files"] == 400 and data["rm_peak_rss_mb"] >= data["rm_rss_before_mb"] > 0
    assert data["rm_r_1m_caught_up_s"] >= data["rm_r_1m_s"]
    assert data["rm_r_1m_db_s"] > 0 and data["rm_r_100k_db_s"] > 0


def test_bench_capture_prints_the_tailer_beside_pg_recvlogical(dsn: str, tmp_path: Path) -> None:
    figures = tmp_path / "capture.json"
    result = CliRunner().invoke(
        cli,
        ["bench", "capture", "--images", "100", "--json", str(figures)],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "pg_recvlogical (baseline)" in result.stdout
    assert "not built" not in result.stdout
    data = json.loads(figures.read_text())
    assert data["changes"] >= 600 and data["compiled_parse"] is True  # 6 row changes an image
    assert len(data["runs"]["epipe"]) == len(data["runs"]["recvlogical"]) == 2
    # the ratio is of the unrounded rates
    assert abs(data["ratio"] - data["events_per_s"] / data["baseline_events_per_s"]) < 0.002
