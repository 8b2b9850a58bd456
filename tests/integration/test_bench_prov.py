"""`epipe bench prov` end to end at a tiny size: figures, not timings, are checked."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from epipe.cli import cli

KINDS = {
    f"{direction} {scope}"
    for direction in ("upstream", "downstream")
    for scope in ("operator", "project")
}


def test_bench_prov_reports_the_cost_of_recording_and_lineage_latency(
    dsn: str, tmp_path: Path
) -> None:
    figures = tmp_path / "prov.json"
    sizes = ["--ops", "1000", "--mix-ops", "400", "--rounds", "2", "--queries", "10"]
    result = CliRunner().invoke(
        cli,
        ["bench", "prov", *sizes, "--json", str(figures)],
        env={"EPIPE_DSN": dsn, "EPIPE_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, (result.output, result.stderr)
    assert "ops/s with provenance" in result.stdout
    assert "overhead (1 - on/off)" in result.stdout
    data = json.loads(figures.read_text())

    assert len(data["rounds"]) == 2
    assert (data["mix_ops"], data["mix_clients"], data["mix_batch"]) == (400, 2, 50)
    assert data["ops_per_s_on"] > 0 and data["ops_per_s_off"] > 0
    assert data["overhead_min"] <= data["overhead"] <= data["overhead_max"] < 1
    for r in data["rounds"]:
        assert abs(r["overhead"] - (1 - r["on"] / r["off"])) < 0.01
    assert data["mix_errors"] == 0
    assert data["log_rows_off"] == 0  # without provenance the mix writes no log row
    # changes write a row, reads a message (migration 0015); stat and ls nothing
    assert data["log_rows_per_op_on"] > 0.02 and data["read_messages_per_op_on"] > 0.5
    assert data["log_rows_per_op_on"] + data["read_messages_per_op_on"] > 0.7
    assert data["read_messages_off"] == 0
    # the embedded server runs here: CPU is measured (too few operations here to compare)
    assert data["cpu_us_per_op_on"] > 0 and data["cpu_us_per_op_off"] > 0
    assert -1 < data["cpu_overhead"] < 1
    assert "CPU overhead (1 - off/on)" in result.stdout
    assert (data["overhead_goal"], data["lineage_p99_ms_goal"]) == (0.04, 50.0)

    assert data["prov_ops"] >= 1000 and data["projects"] == 1
    assert data["graph_apps"] > 100 and data["graph_edges"] > data["graph_nodes"] > 500
    assert data["lineage_depth"] == 3 and data["lineage_queries"] == 4 * 10
    assert 0 < data["lineage_p50_ms"] <= data["lineage_p99_ms"]
    assert set(data["lineage_kinds"]) == KINDS
    assert data["lineage_avg_nodes"] > 10  # three generations of apps, each with its inputs
    assert data["lineage_max_nodes"] < 1000 and data["lineage_truncated"] == 0
