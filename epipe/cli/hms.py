"""`epipe hms start|stop|status|url`: the local Hive Metastore."""

from __future__ import annotations

import click

from epipe.cli.context import Context, echo_json
from epipe.errors import ConfigError
from epipe.hms.server import START_TIMEOUT, LocalMetastore

pass_context = click.make_pass_decorator(Context)


def _local(ctx: Context) -> LocalMetastore:
    if ctx.settings.hms_uri is not None:
        raise ConfigError(
            "EPIPE_HMS_URI is set: the metastore is external, `epipe hms` manages only the "
            "local one (unset EPIPE_HMS_URI to use it)"
        )
    return LocalMetastore(ctx.settings.home, port=ctx.settings.hms_port)


@click.group()
def hms() -> None:
    """The local Hive Metastore (HMS 2.3 on Derby, data under EPIPE_HOME; needs Java >= 17)."""


@hms.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=START_TIMEOUT,
    show_default=True,
    help="seconds to wait for the metastore to answer",
)
@pass_context
def start(ctx: Context, timeout: float) -> None:
    """Start the metastore and wait until it answers (the first start creates its database)."""
    server = _local(ctx)
    started = server.start(timeout=timeout)
    click.echo(f"{'started' if started else 'already running'}: {server.url()}")


@hms.command()
@pass_context
def stop(ctx: Context) -> None:
    """Stop the metastore."""
    stopped = _local(ctx).stop()
    click.echo("stopped" if stopped else "not running")


@hms.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Whether the metastore runs, its pid, port, URL and data directory. Exit 1 when stopped."""
    state = _local(ctx).status()
    if as_json:
        echo_json(
            {
                "running": state.running,
                "pid": state.pid,
                "port": state.port,
                "url": state.url,
                "data_dir": str(state.data_dir),
            }
        )
    else:
        click.echo(
            f"{'running' if state.running else 'stopped'}"
            + (f" (pid {state.pid})" if state.pid else "")
            + f"\ndata: {state.data_dir}\nurl:  {state.url or '(never started)'}"
        )
    if not state.running:
        raise SystemExit(1)


@hms.command()
@pass_context
def url(ctx: Context) -> None:
    """Print the metastore's Thrift URL (hive.metastore.uris)."""
    click.echo(_local(ctx).url())
