"""`epipe db start|stop|status|url` and `epipe init`."""

from __future__ import annotations

import click

from epipe.cli.context import Context, echo_json
from epipe.db.embedded import EmbeddedPostgres
from epipe.db.migrate import current_version, migrate
from epipe.errors import ConfigError

pass_context = click.make_pass_decorator(Context)


def _embedded(ctx: Context) -> EmbeddedPostgres:
    if not ctx.settings.embedded:
        raise ConfigError(
            "EPIPE_DSN is set: the database is external, `epipe db` manages only the embedded "
            "one (unset EPIPE_DSN to use it)"
        )
    return EmbeddedPostgres(ctx.settings.home)


@click.group()
def db() -> None:
    """The embedded PostgreSQL server (data under EPIPE_HOME)."""


@db.command()
@pass_context
def start(ctx: Context) -> None:
    """Start the server, initialising its data directory on first use."""
    server = _embedded(ctx)
    started = server.start()
    click.echo(f"{'started' if started else 'already running'}: {server.url()}")


@db.command()
@pass_context
def stop(ctx: Context) -> None:
    """Stop the server (fast shutdown: open sessions are disconnected)."""
    stopped = _embedded(ctx).stop()
    click.echo("stopped" if stopped else "not running")


@db.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Whether the server runs, its pid, data directory and URL. Exit 1 when stopped."""
    server = _embedded(ctx)
    state = server.status()
    if as_json:
        echo_json(
            {
                "running": state.running,
                "pid": state.pid,
                "url": server.url(),
                "data_dir": str(state.data_dir),
            }
        )
    else:
        click.echo(
            f"{'running' if state.running else 'stopped'}"
            + (f" (pid {state.pid})" if state.pid else "")
            + f"\ndata: {state.data_dir}\nurl:  {server.url()}"
        )
    if not state.running:
        raise SystemExit(1)


@db.command()
@pass_context
def url(ctx: Context) -> None:
    """Print the connection URL (for psql and other tools)."""
    click.echo(_embedded(ctx).url())


@click.command()
@pass_context
def init(ctx: Context) -> None:
    """Create or migrate the metadata schema (idempotent)."""
    conn = ctx.connection(migrated=False)
    applied = migrate(conn)
    for migration in applied:
        click.echo(f"applied {migration.version:04d}_{migration.name}")
    click.echo(f"schema at version {current_version(conn)}")
