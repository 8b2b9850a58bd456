"""`epipe bench hive` end to end on a tiny layout: figures, not timings, are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from epipe.cli import cli
from epipe.hms.java import unavailable

pytestmark = pytest.mark.xdist_group("hms")

FIGURES = {
    "tables",
    "partitions_per_table",
    "partitions",
    "parallel",
    "rm_r_s",
    "baseline_drop_s",
    "rm_r_ratio",
    "rm_r_ratio_goal",
    "mv_s",
    "baseline_mv_s",
    "baseline_mv_jvm_s",
    "baseline_mv_net_s",
    "mv_ratio",
    "mv_ratio_goal",
    "mv_net_ratio",
}


def test_bench_hive_reports_every_figure_with_its_baseline(dsn: str, tmp_path: Path) -> None:
    reason = unavailable()
    if reason:
        pytest.skip(f"Hive Metastore tests skipped: {reason}")
    figures = tmp_path / "hive.json"
    result = CliRunner().invoke(
        cli,
        ["bench", "hive", "--tables", "2", "--partitions-per-table", "3", "--json", str(figures)],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path), "EPIPE_HMS_PARALLEL": "3"},
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "hive: 1 database, 2 tables, 6 partitions in one directory" in result.stdout
    assert "rm -r / drop_database cascade" in result.stdout
    assert "mv / metatool -updateLocation" in result.stdout
    data = json.loads(figures.read_text())
    assert set(data) == FIGURES
    assert (data["tables"], data["partitions_per_table"], data["partitions"]) == (2, 3, 6)
    assert data["parallel"] == 3
    assert (data["rm_r_ratio_goal"], data["mv_ratio_goal"]) == (1.25, 2.0)


def test_bench_hive_without_java_says_in_one_line_why_it_is_skipped(
    dsn: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        cli,
        ["bench", "hive"],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path), "JAVA_HOME": str(tmp_path)},
    )
    assert result.exit_code == 1
    assert (
        result.stdout
        == f"hive: skipped (epipe hms needs Java >= 17 (JAVA_HOME={tmp_path} has no bin/java))\n"
    )
