"""`epipe bench [NAME] [--json FILE]`: benchmarks with their baselines, as a table.

The JSON file holds the figures of NAME at the top level, or of every benchmark by name.
`hive` needs Java and the metastore's jars (`epipe[hms]`); without them it is skipped, in
one line (and as {"skipped": why} in the JSON)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from epipe.cli.context import Context

pass_context = click.make_pass_decorator(Context)
BENCHMARKS = ("capture", "index", "search", "hive", "prov")


@click.command()
@click.argument("name", type=click.Choice(BENCHMARKS), required=False)
@click.option(
    "--json",
    "json_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write the figures to this file",
)
@click.option(
    "--images",
    type=click.IntRange(min=100),
    default=50_000,
    show_default=True,
    help="capture: images loaded then removed (6 row changes each)",
)
@click.option(
    "--subtree",
    type=click.IntRange(min=100),
    default=100_000,
    show_default=True,
    help="index: files in the directory moved and removed",
)
@click.option(
    "--rm-files",
    type=click.IntRange(min=100),
    default=1_000_000,
    show_default=True,
    help="index: files in the directory removed last (rm_r_1m_s, with the peak RSS)",
)
@click.option(
    "--mix-seconds",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="index: how long the lag is measured under load mix",
)
@click.option(
    "--files",
    type=click.IntRange(min=1_000),
    default=1_000_000,
    show_default=True,
    help="search: files in the searched dataset (built once, then reused)",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="search: rebuild the dataset even if one of this size exists",
)
@click.option(
    "--tables",
    type=click.IntRange(min=1, max=100),
    default=20,
    show_default=True,
    help="hive: tables in the database moved and removed",
)
@click.option(
    "--partitions-per-table",
    type=click.IntRange(min=1, max=1000),
    default=100,
    show_default=True,
    help="hive: partitions of each table",
)
@click.option(
    "--ops",
    type=click.IntRange(min=1_000),
    default=1_000_000,
    show_default=True,
    help="prov: operations in the provenance log the lineage queries run over",
)
@click.option(
    "--mix-ops",
    type=click.IntRange(min=100),
    default=10_000,
    show_default=True,
    help="prov: load mix operations of a round with provenance, and as many without",
)
@click.option(
    "--rounds",
    type=click.IntRange(min=1),
    default=9,
    show_default=True,
    help="prov: rounds of load mix, each alternating the two batch by batch",
)
@click.option(
    "--queries",
    type=click.IntRange(min=10),
    default=200,
    show_default=True,
    help="prov: lineage queries of each direction and scope",
)
@pass_context
def bench(
    ctx: Context,
    name: str | None,
    json_file: Path | None,
    images: int,
    subtree: int,
    rm_files: int,
    mix_seconds: float,
    files: int,
    fresh: bool,
    tables: int,
    partitions_per_table: int,
    ops: int,
    mix_ops: int,
    rounds: int,
    queries: int,
) -> None:
    """Run benchmarks (all, or NAME) and print figures with their baselines."""
    results: dict[str, Any] = {}
    for bench_name in [name] if name else list(BENCHMARKS):
        if bench_name == "capture":
            results["capture"] = _capture(ctx, images)
        elif bench_name == "index":
            results["index"] = _index(ctx, images, subtree, rm_files, mix_seconds)
        elif bench_name == "search":
            results["search"] = _search(ctx, files, fresh)
        elif bench_name == "hive":
            results["hive"] = _hive(ctx, tables, partitions_per_table)
        elif bench_name == "prov":
            results["prov"] = _prov(ctx, ops, mix_ops, rounds, queries)
    if json_file is not None:
        figures = results[name] if name else results  # one benchmark: its keys at the top
        json_file.write_text(json.dumps(figures, indent=2) + "\n")
        click.echo(f"figures written to {json_file}")
    if name and "skipped" in results[name]:
        sys.exit(1)  # the one benchmark asked for could not run


def _capture(ctx: Context, images: int) -> dict[str, Any]:
    from epipe.bench import capture

    result = capture.run(
        ctx.dsn(),
        ctx.settings,
        images=images,
        progress=lambda line: click.echo(f"  {line}", err=True),
    )
    click.echo(f"capture: {result['changes']:,} committed row changes")
    click.echo(f"  {'':<36}{'changes/s':>12}{'ratio':>8}")
    click.echo(
        f"  {'pg_recvlogical (baseline)':<36}{result['baseline_events_per_s']:>12,}{1.0:>8.2f}"
    )
    click.echo(
        f"  {'epipe -> in-process bus':<36}{result['events_per_s']:>12,}{result['ratio']:>8.2f}"
        + ("" if result["compiled_parse"] else "   (the compiled tuple parse is not built)")
    )
    if "kafka_events_per_s" in result:
        click.echo(
            f"  {'epipe -> Kafka':<36}{result['kafka_events_per_s']:>12,}"
            f"{result['kafka_ratio']:>8.2f}"
        )
    else:
        click.echo("  epipe -> Kafka: not measured (EPIPE_KAFKA_BOOTSTRAP is not set)")
    if "debezium_events_per_s" in result:
        click.echo(
            f"  {'Debezium (embedded) -> in-process':<36}{result['debezium_events_per_s']:>12,}"
            f"{result['debezium_ratio']:>8.2f}   (its start: {result['debezium_start_s']} s)"
        )
    else:
        click.echo(f"  Debezium: not measured ({result['debezium_skipped']})")
    return result


def _index(
    ctx: Context, images: int, subtree: int, rm_files: int, mix_seconds: float
) -> dict[str, Any]:
    from epipe.bench import index

    result = index.run(
        ctx.dsn(),
        ctx.settings,
        images=images,
        big=subtree,
        huge=rm_files,
        mix_seconds=mix_seconds,
        progress=lambda line: click.echo(f"  {line}", err=True),
    )
    click.echo(f"index: embedded stack (tantivy), {result['docs']:,} documents loaded")
    for key, what in (("compiled_parse", "tuple parse"), ("compiled_checks", "document checks")):
        if not result[key]:
            click.echo(f"  (the compiled {what} is not built: these figures are without it)")
    click.echo(f"  {'':<34}{'measured':>12}{'goal':>10}{'ratio':>8}{'vs raw':>8}")
    click.echo(f"  {'raw engine docs/s (baseline)':<34}{result['raw_engine_docs_per_s']:>12,}")
    for key, label in (("docs_per_s", "pipeline docs/s"), ("rebuild_docs_per_s", "rebuild docs/s")):
        click.echo(
            f"  {label:<34}{result[key]:>12,}{result[key + '_goal']:>10,}"
            f"{result[key + '_ratio']:>8.2f}{result[key + '_vs_raw_engine']:>8.2f}"
        )
    for key, label in (
        ("lag_p50_ms", "lag p50 ms"),
        ("lag_p99_ms", "lag p99 ms"),
        ("rm_r_100k_s", "rm -r 100k files s, from commit"),
        ("mv_100k_s", "mv 100k files s"),
        ("rm_r_1m_s", "rm -r 1M files s, from commit"),
    ):
        vs_raw = result.get(key + "_vs_raw_engine")
        click.echo(
            f"  {label:<34}{result[key]:>12,}{result[key + '_goal']:>10,}"
            f"{result[key + '_ratio']:>8.2f}" + ("" if vs_raw is None else f"{vs_raw:>8.2f}")
        )
    click.echo(
        f"  (rm -r of {result['rm_files']:,} files: the database's delete took "
        f"{result['rm_r_1m_db_s']} s, every event of its cascade was applied "
        f"{result['rm_r_1m_caught_up_s']} s after its commit; peak RSS "
        f"{result['rm_peak_rss_mb']:,} MB, {result['rm_rss_before_mb']:,} MB before; the "
        f"files were indexed at {result['rm_load_docs_per_s']:,} docs/s.\n"
        f"   rm -r of the {result['subtree_files']:,}: the database's delete took "
        f"{result['rm_r_100k_db_s']} s)"
    )
    cores = result["cores"]
    for key, label in (("cpu", "draining"), ("rebuild_cpu", "rebuild")):
        per = result[f"{key}_us_per_doc"]
        click.echo(
            f"  CPU µs a document, {label}: {per['total']:,.0f}, which {cores} cores allow "
            f"{result[f'{key}_ceiling_docs_per_s']:,} docs/s at best\n    ({_places(per)})"
        )
    per = result["mv_cpu_us_per_doc"]
    click.echo(
        f"  CPU µs a document, mv of {result['mv_docs']:,}: {per['total']:,.0f}, which {cores} "
        f"cores allow {result['mv_cpu_floor_s']} s at best\n    ({_places(per)})"
    )
    goal = index.RATE_GOALS["docs_per_s"]
    click.echo(
        f"  (draining kept {result['cpu_cores_busy']} of {cores} cores busy; the engine alone "
        f"{result['raw_engine_cpu_us_per_doc']:,.0f} µs a document; {goal:,} docs/s needs "
        f"<= {cores * 1e6 / goal:,.0f})"
    )
    click.echo(
        f"  (lag: {result['lag_samples']} probes during load mix at "
        f"{result['lag_mix_rate_ops_s']:.0f} ops/s; ratio: >= 1 meets a rate's goal, "
        "<= 1 a time's;\n"
        f"   vs raw: the share of the engine's own rate, the same documents with no pipeline)"
    )
    return result


def _places(per: dict[str, float]) -> str:
    return ", ".join(f"{place} {us:,.0f}" for place, us in per.items() if place != "total")


def _search(ctx: Context, files: int, fresh: bool) -> dict[str, Any]:
    from epipe.bench import search

    result = search.run(
        ctx.dsn(),
        ctx.settings.home.resolve(),
        files=files,
        fresh=fresh,
        progress=lambda line: click.echo(f"  {line}", err=True),
    )
    click.echo(
        f"search: HTTP latency over {result['docs']:,} indexed files, "
        f"{result['requests']:,} requests"
    )
    click.echo(f"  {'':<12}{'p50 ms':>10}{'p99 ms':>10}")
    for kind in ("text", "under", "range", "combined"):
        click.echo(f"  {kind:<12}{result[kind]['p50_ms']:>10}{result[kind]['p99_ms']:>10}")
    click.echo(
        f"  {'all':<12}{result['p50_ms']:>10}{result['p99_ms']:>10}   goal p99 < "
        f"{result['goal_p99_ms']:.0f} ms (ratio {result['ratio_p99']:.2f})"
    )
    return result


def _hive(ctx: Context, tables: int, partitions: int) -> dict[str, Any]:
    from epipe.bench import hive
    from epipe.hms.java import unavailable

    reason = unavailable()
    if reason:
        click.echo(f"hive: skipped ({reason})")
        return {"skipped": reason}
    r = hive.run(
        ctx.dsn(),
        ctx.settings,
        tables=tables,
        partitions=partitions,
        progress=lambda line: click.echo(f"  {line}", err=True),
    )
    click.echo(
        f"hive: 1 database, {r['tables']:,} tables, {r['partitions']:,} partitions in one "
        f"directory (local metastore, HMS 2.3 on Derby; {r['parallel']} connections)"
    )
    click.echo(f"  {'':<44}{'measured s':>11}{'baseline s':>11}{'ratio':>8}{'goal':>7}")
    for label, key, baseline, ratio in (
        ("rm -r / drop_database cascade", "rm_r_s", "baseline_drop_s", "rm_r_ratio"),
        ("mv / metatool -updateLocation", "mv_s", "baseline_mv_s", "mv_ratio"),
    ):
        click.echo(
            f"  {label:<44}{r[key]:>11.2f}{r[baseline]:>11.2f}{r[ratio]:>8.2f}"
            f"{r[ratio + '_goal']:>7.2f}"
        )
    net = r["mv_net_ratio"]
    click.echo(
        f"  (the metatool's {r['baseline_mv_s']:.2f} s include its JVM's start and the opening "
        f"of the store: a -listFSRoot run took {r['baseline_mv_jvm_s']:.2f} s, leaving "
        f"{r['baseline_mv_net_s']:.2f} s for the update"
        + (f", ratio {net:.2f} against that)" if net is not None else ")")
    )
    click.echo("  (ratio <= goal meets the goal)")
    return r


def _prov(ctx: Context, ops: int, mix_ops: int, rounds: int, queries: int) -> dict[str, Any]:
    from epipe.bench import prov

    r = prov.run(
        ctx.dsn(),
        mix_ops=mix_ops,
        rounds=rounds,
        ops=ops,
        queries=queries,
        progress=lambda line: click.echo(f"  {line}", err=True),
    )
    click.echo(
        f"prov: load mix, {r['mix_clients']} clients, {len(r['rounds'])} rounds of "
        f"{r['mix_ops']:,} operations with provenance and as many without, alternating every "
        f"{r['mix_batch']} (medians of the rounds)"
    )
    click.echo(f"  {'':<30}{'measured':>10}{'goal':>8}{'ratio':>8}")
    click.echo(f"  {'ops/s with provenance':<30}{r['ops_per_s_on']:>10,}")
    click.echo(f"  {'ops/s without':<30}{r['ops_per_s_off']:>10,}")
    click.echo(
        f"  {'overhead (1 - on/off)':<30}{r['overhead']:>10.3f}{r['overhead_goal']:>8.2f}"
        f"{r['overhead_ratio']:>8.2f}   rounds {r['overhead_min']:.3f} .. {r['overhead_max']:.3f}"
    )
    if r["cpu_overhead"] is not None:  # the server runs on this machine
        click.echo(
            f"  {'CPU per op, client + server':<30}{r['cpu_us_per_op_on']:>10,.0f}"
            f"   us with, {r['cpu_us_per_op_off']:,.0f} without"
        )
        click.echo(f"  {'CPU overhead (1 - off/on)':<30}{r['cpu_overhead']:>10.3f}")
    click.echo(
        f"prov: lineage at depth {r['lineage_depth']} over {r['prov_ops']:,} operations "
        f"({r['graph_apps']:,} apps, {r['graph_edges']:,} edges, {r['graph_nodes']:,} files), "
        f"{r['lineage_queries']:,} queries, {r['lineage_avg_nodes']:.0f} nodes an answer"
    )
    click.echo(f"  {'':<30}{'p50 ms':>10}{'p99 ms':>8}{'nodes':>8}")
    for kind, k in r["lineage_kinds"].items():
        click.echo(f"  {kind:<30}{k['p50_ms']:>10.2f}{k['p99_ms']:>8.2f}{k['avg_nodes']:>8.0f}")
    click.echo(
        f"  {'all':<30}{r['lineage_p50_ms']:>10.2f}{r['lineage_p99_ms']:>8.2f}"
        f"{r['lineage_avg_nodes']:>8.0f}   goal p99 < {r['lineage_p99_ms_goal']:.0f} ms "
        f"(ratio {r['lineage_p99_ms_ratio']:.2f})"
    )
    click.echo(
        f"  (graph rebuilt from the log in {r['rebuild_s']:.1f} s; ratio <= 1 meets the goal)"
    )
    return r
