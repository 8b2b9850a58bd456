"""`epipe bench [NAME] [--json FILE]`: benchmarks with their baselines, as a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from epipe.cli.context import Context

pass_context = click.make_pass_decorator(Context)
BENCHMARKS = ("capture",)


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
@pass_context
def bench(ctx: Context, name: str | None, json_file: Path | None, images: int) -> None:
    """Run benchmarks (all, or NAME) and print figures with their baselines."""
    results: dict[str, Any] = {}
    for bench_name in [name] if name else list(BENCHMARKS):
        if bench_name == "capture":
            results["capture"] = _capture(ctx, images)
    if json_file is not None:
        json_file.write_text(json.dumps(results, indent=2) + "\n")
        click.echo(f"figures written to {json_file}")


def _capture(ctx: Context, images: int) -> dict[str, Any]:
    from epipe.bench import capture

    kafka = None
    if ctx.settings.kafka_bootstrap:
        from epipe.bus.kafka import KafkaBus

        bootstrap = ctx.settings.kafka_bootstrap

        def kafka() -> KafkaBus:
            return KafkaBus(bootstrap, partitions=ctx.settings.kafka_partitions)

    result = capture.run(
        ctx.dsn(),
        images=images,
        kafka=kafka,
        progress=lambda line: click.echo(f"  {line}", err=True),
    )
    click.echo(f"capture: {result['changes']:,} committed row changes")
    click.echo(f"  {'':<36}{'changes/s':>12}{'ratio':>8}")
    click.echo(
        f"  {'pg_recvlogical (baseline)':<36}{result['baseline_events_per_s']:>12,}{1.0:>8.2f}"
    )
    click.echo(
        f"  {'epipe -> in-process bus':<36}{result['events_per_s']:>12,}{result['ratio']:>8.2f}"
    )
    if "kafka_events_per_s" in result:
        click.echo(
            f"  {'epipe -> Kafka':<36}{result['kafka_events_per_s']:>12,}"
            f"{result['kafka_ratio']:>8.2f}"
        )
    else:
        click.echo("  epipe -> Kafka: not measured (EPIPE_KAFKA_BOOTSTRAP is not set)")
    return result
