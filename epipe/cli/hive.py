"""`epipe hive ls | repair`: the Hive metastore as the file system sees it."""

from __future__ import annotations

import click

from epipe.cli.context import Context, echo_json
from epipe.wiring import hive_locations, open_metastore

pass_context = click.make_pass_decorator(Context)


@click.group()
def hive() -> None:
    """The Hive metastore's objects located in the file system."""


@hive.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def ls(ctx: Context, as_json: bool) -> None:
    """Every database, table and partition with its location, its path and whether the path
    exists (state: ok, orphan, stale, kept, outside)."""
    from epipe.hms.verify import inspect

    metastore = open_metastore(ctx.settings)
    try:
        found = inspect(ctx.connection(), metastore, hive_locations(ctx.settings))
    finally:
        metastore.close()
    if as_json:
        echo_json({"objects": [item.as_json() for item in found.listed], **found.summary()})
        return
    for item in found.listed:
        where = item.path if item.path is not None else item.object.location or "-"
        note = f"  ({item.detail})" if item.detail else ""
        click.echo(f"{item.state:<8} {item.object.kind:<9} {item.object.key}  {where}{note}")


@hive.command(name="repair")
@pass_context
def repair_command(ctx: Context) -> None:
    """Make the metastore what the namespace implies: drop orphans, rewrite stale locations,
    ask again what the metastore refused before. Exit 1 if drift remains."""
    from epipe.hms.verify import inspect, repair

    conn, locations = ctx.connection(), hive_locations(ctx.settings)
    metastore = open_metastore(ctx.settings)
    try:
        for line in repair(conn, metastore, locations):
            click.echo(line)
        left = inspect(conn, metastore, locations)
    finally:
        metastore.close()
    counts = left.summary()
    click.echo(f"orphan {counts['orphan']}, stale {counts['stale']}, kept {counts['kept']}")
    if left:
        raise SystemExit(1)
