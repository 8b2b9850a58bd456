"""`epipe lineage PATH` and `epipe prov history | app`: provenance queries.

The command line answers as the operator (every project); the REST API answers each caller
within their projects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from epipe.cli.context import Context, echo_json
from epipe.errors import EpipeError
from epipe.prov import display, query

pass_context = click.make_pass_decorator(Context)
EVERYTHING = query.Scope(None)


@click.command()
@click.argument("path")
@click.option(
    "--direction",
    type=click.Choice([query.UPSTREAM, query.DOWNSTREAM]),
    default=query.UPSTREAM,
    show_default=True,
    help="upstream: what it was made from; downstream: what was made from it",
)
@click.option(
    "--depth",
    type=click.IntRange(1, query.MAX_DEPTH),
    default=3,
    show_default=True,
    help="app generations to follow",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def lineage(ctx: Context, path: str, direction: query.Direction, depth: int, as_json: bool) -> None:
    """The apps and files PATH came from (or that came from it)."""
    found = query.lineage(ctx.connection(), path, EVERYTHING, direction=direction, depth=depth)
    if as_json:
        echo_json(found.as_json())
        return
    for line in display.tree(found.as_json(), direction):
        click.echo(line)


@click.group()
def prov() -> None:
    """Provenance: who did what to which file, and which apps read and wrote what."""


@prov.command()
@click.argument("path")
@click.option(
    "--offset", type=click.IntRange(min=0), default=0, help="operations of the file to skip"
)
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def history(ctx: Context, path: str, offset: int, limit: int, as_json: bool) -> None:
    """The file's operations: who (user, app), what, when."""
    page = query.history(ctx.connection(), path, EVERYTHING, offset=offset, limit=limit)
    if as_json:
        echo_json(page)
        return
    for op in page["ops"]:
        click.echo(f"{op['at']}  {op['op']:<8} {op['user'] or '-':<12} {op['app_id'] or '-'}")
    if page["next_offset"] is not None:
        click.echo(f"(more: --offset {page['next_offset']})")


@prov.command(name="app")
@click.argument("app_id")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def app_command(ctx: Context, app_id: str, as_json: bool) -> None:
    """The files APP_ID read (inputs) and wrote (outputs), with counts and times."""
    found = query.app(ctx.connection(), app_id, EVERYTHING)
    if as_json:
        echo_json(found)
        return
    for role in ("inputs", "outputs"):
        click.echo(f"{role}: {len(found[role])}")
        for f in found[role]:
            click.echo(f"  {f['path']}  x{f['count']}  {f['first_at']} .. {f['last_at']}")


# -- epipe prov export --openlineage ---------------------------------------------------------


def timestamp(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An option's ISO 8601 timestamp (one without a zone is UTC); a usage error naming it."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 timestamp (e.g. 2024-05-01T12:00:00Z)"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@prov.command()
@click.option(
    "--openlineage",
    "openlineage_format",
    is_flag=True,
    help="OpenLineage run events, one JSON object per line (the only format so far)",
)
@click.option(
    "--since",
    callback=timestamp,
    help="only apps whose last operation is at or after this time (ISO 8601; UTC if no zone)",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path),
    default="-",
    show_default=True,
    help="file to write, whole or not at all (- for stdout)",
)
@pass_context
def export(ctx: Context, openlineage_format: bool, since: datetime | None, out: Path) -> None:
    """The lineage graph for other tools: one run per app id, its inputs and outputs named by
    path, in the namespace epipe://EPIPE_INSTANCE (docs/provenance.md)."""
    if not openlineage_format:
        raise click.UsageError("choose a format: --openlineage")
    from epipe.prov import openlineage, runs

    conn = ctx.connection()
    namespace = openlineage.namespace(runs.instance(conn, ctx.settings.instance))
    lines = (
        openlineage.to_json(event) + "\n"
        for run in runs.app_runs(conn, since=since)
        for event in openlineage.run_events(run, namespace)
    )
    if str(out) == "-":
        for line in lines:
            click.echo(line, nl=False)
        return
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("w", encoding="utf-8") as f:
            f.writelines(lines)
        partial.replace(out)
    except OSError as exc:
        raise EpipeError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)


# -- epipe prov prune ---------------------------------------------------------------------


@prov.command()
@click.option(
    "--before",
    callback=timestamp,
    required=True,
    help="remove operations before this time (ISO 8601; UTC if no zone)",
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def prune(ctx: Context, before: datetime, as_json: bool) -> None:
    """Trim the operation log before a time; every lineage answer stays the same (what the
    removed operations add to the graph is kept as aggregates). Files' histories lose them."""
    from epipe.prov.prune import prune as prune_log

    done = prune_log(ctx.connection(), before)
    if as_json:
        echo_json({"removed": done.ops, "before": done.before.isoformat()})
    else:
        click.echo(f"removed {done.ops:,} operations before {done.before.isoformat()}")
