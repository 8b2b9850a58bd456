"""`epipe bench` end to end on small datasets: figures, not timings, are checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from epipe.cli import cli


def bench(dsn: str, home: Path, *args: str) -> tuple[Result, dict[str, Any]]:
    """`epipe bench ARGS --json FILE`: what it printed, and the figures it wrote."""
    figures = home / "figures.json"
    result = CliRunner().invoke(
        cli,
        ["bench", *args, "--json", str(figures)],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(home)},
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    return result, json.loads(figures.read_text())


def test_bench_search_reports_each_kind(dsn: str, tmp_path: Path) -> None:
    result, data = bench(dsn, tmp_path, "search", "--files", "1000")
    assert "search: HTTP latency over 1,000 indexed files, 1,000 requests" in result.stdout
    assert data["docs"] == 1000 and data["requests"] == 1000
    assert 0 < data["p50_ms"] <= data["p99_ms"]
    for kind in ("text", "under", "range", "combined"):
        assert 0 < data[kind]["p50_ms"] <= data[kind]["p99_ms"], kind
        assert data[kind]["max_total"] > 0, kind  # every kind of query finds something


def test_bench_index_prints_its_figures_beside_the_engine_alone(dsn: str, tmp_path: Path) -> None:
    result, data = bench(
        dsn,
        tmp_path,
        *("index", "--images", "300", "--subtree", "200", "--rm-files", "400"),
        *("--mix-seconds", "1"),
    )
    assert "raw engine docs/s (baseline)" in result.stdout
    assert data["docs"] >= 300 and data["subtree_files"] == 200  # images and their dirs
    for key in ("docs_per_s", "rebuild_docs_per_s", "raw_engine_docs_per_s"):
        assert data[key] > 0, key
    for key in ("docs_per_s", "rebuild_docs_per_s"):
        assert data[f"{key}_vs_raw_engine"] == round(data[key] / data["raw_engine_docs_per_s"], 3)
    assert 0 < data["lag_p50_ms"] <= data["lag_p99_ms"]
    assert data["mv_100k_s"] > 0 and data["mv_docs"] > 200  # the files and their dirs
    assert data["mv_docs_per_s"] > 0
    assert data["mv_100k_s_vs_raw_engine"] == round(
        data["mv_docs_per_s"] / data["raw_engine_docs_per_s"], 3
    )
    moved = data["mv_cpu_us_per_doc"]
    assert "index consumer" in moved and moved["total"] >= 0, moved
    # all the CPU the move cost, spread over every core: the floor of its wall-clock time
    spent_s = moved["total"] * data["mv_docs"] / 1e6
    assert abs(data["mv_cpu_floor_s"] - spent_s / data["cores"]) <= 0.01 + 0.001 * len(moved)
    assert data["rm_files"] == 400 and data["rm_peak_rss_mb"] >= data["rm_rss_before_mb"] > 0
    # a few hundred files may go within the rounding (0.01 s): only the order is certain
    assert data["rm_r_1m_caught_up_s"] >= data["rm_r_1m_s"] >= 0 and data["rm_r_100k_s"] >= 0
    assert data["rm_r_1m_db_s"] >= 0 and data["rm_r_100k_db_s"] >= 0
    # where the CPU went: the pipeline's own threads, the engine's, the database's decoding
    # (each may be 0 in so short a run: CPU times come in hundredths of a second)
    drained = data["cpu_us_per_doc"]
    for place in ("tailer", "index consumer", "database: decoding the WAL", "database: queries"):
        assert place in drained, (place, drained)
    assert all(us >= 0 for us in drained.values()) and drained["total"] > 0, drained
    parts = sum(us for place, us in drained.items() if place != "total")
    assert abs(drained["total"] - parts) <= 0.1 * len(drained), drained  # each rounded to 0.1
    assert data["cpu_cores_busy"] > 0 and data["raw_engine_cpu_us_per_doc"] > 0
    cores = data["cores"]
    for key in ("cpu", "rebuild_cpu"):  # the cores' rate at that cost: cores / (s a document)
        total = data[f"{key}_us_per_doc"]["total"]
        assert (
            abs(data[f"{key}_ceiling_docs_per_s"] - cores * 1e6 / total)
            <= 0.01 * cores * 1e6 / total
        )
    assert "rebuild" in data["rebuild_cpu_us_per_doc"]
    assert "CPU µs a document, draining" in result.stdout
    assert data["compiled_parse"] is True and data["compiled_checks"] is True
    assert "not built" not in result.stdout
    assert f"CPU µs a document, mv of {data['mv_docs']:,}" in result.stdout


def test_bench_capture_prints_the_tailer_beside_pg_recvlogical(dsn: str, tmp_path: Path) -> None:
    result, data = bench(dsn, tmp_path, "capture", "--images", "100")
    assert "pg_recvlogical (baseline)" in result.stdout
    assert "not built" not in result.stdout
    assert data["changes"] >= 600 and data["compiled_parse"] is True  # 6 row changes an image
    assert len(data["runs"]["epipe"]) == len(data["runs"]["recvlogical"]) == 2
    # the ratio is of the unrounded rates
    assert abs(data["ratio"] - data["events_per_s"] / data["baseline_events_per_s"]) < 0.002
