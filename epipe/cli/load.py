"""`epipe load images|mix`: sample data and a production-like workload."""

from __future__ import annotations

import dataclasses
import sys

import click

from epipe.cli.context import Context, echo_json
from epipe.fs.model import Actor
from epipe.load.bulk import load_images
from epipe.load.mix import run_mix

pass_context = click.make_pass_decorator(Context)


@click.group()
def load() -> None:
    """Generate workloads."""


@load.command()
@click.option("--count", type=click.IntRange(min=1), required=True, help="number of images")
@click.option("--under", default="/Projects/demo/images", show_default=True, help="target dir")
@click.option("--seed", type=int, default=1, show_default=True, help="same seed, same dataset")
@click.option(
    "--single",
    is_flag=True,
    help="one put + one setxattr transaction per image instead of the bulk path",
)
@click.option("--user", default="root", show_default=True)
@click.option("--app", "app_id", default="epipe-load", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def images(
    ctx: Context,
    count: int,
    under: str,
    seed: int,
    single: bool,
    user: str,
    app_id: str,
    as_json: bool,
) -> None:
    """Create COUNT image files, each annotated with a JSON `labels` xattr."""
    conn = ctx.connection()
    with click.progressbar(length=count, label="images", file=sys.stderr, show_pos=True) as bar:
        report = load_images(
            conn,
            Actor(user, app_id),
            under=under,
            count=count,
            seed=seed,
            single=single,
            progress=bar.update,
        )
    figures = {
        **dataclasses.asdict(report),
        "rows_per_s": round(report.rows_per_s),
        "files_per_s": round(report.files_per_s),
        "mode": "single" if single else "bulk",
    }
    if as_json:
        echo_json(figures)
    else:
        click.echo(
            f"{report.files} images in {report.directories} directories under {under}: "
            f"{report.seconds:.2f} s, {report.files_per_s:,.0f} files/s, "
            f"{report.rows_per_s:,.0f} rows/s ({figures['mode']})"
        )


@load.command()
@click.option("--ops", type=click.IntRange(min=1), required=True, help="number of operations")
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="cap on total operations per second (default: as fast as possible)",
)
@click.option("--clients", type=click.IntRange(min=1, max=64), default=1, show_default=True)
@click.option("--under", default="/mix", show_default=True, help="root of the clients' trees")
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--user", default="root", show_default=True)
@click.option("--app", "app_id", default="epipe-mix", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def mix(
    ctx: Context,
    ops: int,
    rate: float | None,
    clients: int,
    under: str,
    seed: int,
    user: str,
    app_id: str,
    as_json: bool,
) -> None:
    """Run OPS operations in the proportions of Spotify's HDFS workload."""
    ctx.connection()  # fail fast on a missing schema before starting clients
    report = run_mix(
        ctx.dsn(), Actor(user, app_id), under=under, ops=ops, clients=clients, rate=rate, seed=seed
    )
    if as_json:
        echo_json({**dataclasses.asdict(report), "ops_per_s": round(report.ops_per_s, 1)})
        return
    click.echo(
        f"{report.ops} ops, {report.clients} client(s), {report.seconds:.2f} s: "
        f"{report.ops_per_s:,.0f} ops/s"
    )
    click.echo(f"{'op':<10}{'count':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for op, figures in report.per_op.items():
        click.echo(
            f"{op:<10}{int(figures['count']):>8}{figures['p50_ms']:>10.2f}"
            f"{figures['p99_ms']:>10.2f}"
        )
    if report.errors:
        click.echo(f"errors: {report.errors}")
