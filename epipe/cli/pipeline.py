"""`epipe run`, `epipe tail`, `epipe status`, `epipe wait`."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import click

from epipe import wiring
from epipe.cli.context import Context, echo_json
from epipe.errors import ConfigError
from epipe.lsn import lsn_from_str, lsn_to_str
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.runner import Runner
from epipe.pipeline.store import PipelineStore
from epipe.pipeline.supervisor import Supervisor

pass_context = click.make_pass_decorator(Context)


def _supervise(attempt: Callable[[bool], Runner]) -> None:
    """Run `attempt(first)`'s runner, and a new one after each failure that may pass (one
    line on stderr each), until SIGTERM or Ctrl-C."""
    supervisor = Supervisor(attempt, report=lambda line: click.echo(f"epipe: {line}", err=True))

    def handler(signum: int, frame: FrameType | None) -> None:
        supervisor.stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    supervisor.run()


def _require_kafka(ctx: Context, what: str, *buses: str) -> None:
    """Commands of the scale-out mode: the in-process bus does not cross processes."""
    if ctx.settings.bus == "connect" and "connect" not in buses:
        raise ConfigError(wiring.CONNECT_READS_ONLY)
    if ctx.settings.bus not in buses:
        raise ConfigError(
            f"{what}: set EPIPE_BUS={' or '.join(buses)} and EPIPE_KAFKA_BOOTSTRAP, or run the "
            "embedded pipeline with `epipe run`"
        )


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # kafka-python logs each failed attempt to reach a broker; ours is one line
        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        # psycopg warns again of a connection lost in a crash ("error ignored terminating"),
        # which epipe's one-line retry report already says
        logging.getLogger("psycopg").setLevel(logging.ERROR)


@click.command()
@click.option(
    "--events-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="also append every event to this JSON-lines file (an archive of the stream)",
)
@click.option(
    "--backfill", is_flag=True, help="emit every existing row again (as when the slot is new)"
)
@click.option(
    "--backfill-chunk",
    type=click.IntRange(min=1),
    default=None,
    hidden=True,
    help="rows per backfill chunk (tests)",
)
@click.option("-v", "--verbose", is_flag=True)
@pass_context
def run(
    ctx: Context,
    events_file: Path | None,
    backfill: bool,
    backfill_chunk: int | None,
    verbose: bool,
) -> None:
    """The whole pipeline in one process: tailer and consumers, until SIGTERM or Ctrl-C
    (exit 0). A lost database, bus or index write is one line on stderr, then a new start
    after a pause; an error that waiting cannot cure ends it with exit 1."""
    _logging(verbose)
    ctx.connection()  # schema present and current
    dsn, settings = ctx.dsn(), ctx.settings
    consumers = wiring.enabled_consumers(settings, dsn)
    if events_file is not None:
        consumers.append(wiring.events_file_consumer(events_file))

    def attempt(first: bool) -> Runner:
        # a forced backfill starts once; a later attempt resumes it where it was confirmed
        source = wiring.open_source(
            settings, dsn, backfill=backfill and first, backfill_chunk=backfill_chunk
        )
        return wiring.runner(settings, dsn, consumers, source=source)

    _supervise(attempt)


@click.command(
    epilog="Registered consumers: "
    + "; ".join(f"{name} ({entry.summary})" for name, entry in sorted(wiring.CONSUMERS.items()))
)
@click.argument("name", type=click.Choice(sorted(wiring.CONSUMERS)), metavar="NAME")
@click.option("-v", "--verbose", is_flag=True)
@pass_context
def consume(ctx: Context, name: str, verbose: bool) -> None:
    """One registered consumer alone, reading the bus (Kafka in scale-out mode)."""
    _logging(verbose)
    _require_kafka(ctx, "`epipe consume` reads Kafka", "kafka", "connect")
    ctx.connection()
    dsn, settings = ctx.dsn(), ctx.settings
    consumer = wiring.consumer(name, settings, dsn)
    _supervise(lambda first: wiring.runner(settings, dsn, [consumer]))


@click.command()
@click.option("--backfill", is_flag=True, help="emit every existing row again")
@click.option("-v", "--verbose", is_flag=True)
@pass_context
def tail(ctx: Context, backfill: bool, verbose: bool) -> None:
    """The tailer alone: the change log to Kafka (EPIPE_BUS=kafka)."""
    _logging(verbose)
    _require_kafka(ctx, "`epipe tail` publishes to Kafka", "kafka")
    ctx.connection()
    dsn, settings = ctx.dsn(), ctx.settings
    _supervise(
        lambda first: wiring.runner(
            settings, dsn, [], source=wiring.open_source(settings, dsn, backfill=backfill and first)
        )
    )


@click.command()
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Slot position, retained WAL, each consumer's position and lag, dead letters."""
    state = pipeline_status.status(ctx.connection(), ctx.settings.slot)
    recent = PipelineStore.on(ctx.connection()).recent_dead_letters()
    if as_json:
        letters = [{"consumer": c, "lsn": lsn, "reason": r} for c, lsn, r in recent]
        echo_json({**state, "recent_dead_letters": letters})
        return
    click.echo(f"current WAL position  {state['current_lsn']}")
    slot = state["slot"]
    if slot is None:
        click.echo(f"slot {ctx.settings.slot}: none yet (`epipe run` creates it)")
    else:
        click.echo(
            f"slot {slot['name']}: {'active' if slot['active'] else 'inactive'}, "
            f"confirmed {slot['confirmed_lsn']}, restart {slot['restart_lsn']}, "
            f"lag {slot['lag_bytes']:,} bytes"
        )
    click.echo(f"retained WAL          {state['retained_wal_bytes']:,} bytes")
    for consumer in state["consumers"]:
        click.echo(
            f"consumer {consumer['name']}: applied {consumer['applied_lsn']}, lag "
            f"{consumer['lag_bytes']:,} bytes / {consumer['lag_seconds']:.3f} s, "
            f"dead letters {consumer['dead_letters']}"
        )
        if consumer["waiting"]:
            click.echo(f"  waiting: {consumer['waiting']}")
    click.echo(f"dead letters          {state['dead_letters']}")
    for consumer, lsn, reason in recent:  # the latest, newest first
        click.echo(f"  {consumer} at {lsn}: {reason if len(reason) < 300 else reason[:300] + '…'}")
    for work in state["running"]:
        click.echo(work)


@click.command()
@click.option("--token", default=None, help="consistency token (default: the current WAL end)")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=30.0, show_default=True, help="seconds"
)
@pass_context
def wait(ctx: Context, token: str | None, timeout: float) -> None:
    """Block until every consumer has applied TOKEN; exit 1 on timeout."""
    try:
        target = None if token is None else lsn_from_str(token)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--token") from None
    reached, lagging = pipeline_status.wait(ctx.connection(), ctx.settings.slot, target, timeout)
    if lagging:
        click.echo(
            f"epipe: timed out after {timeout} s waiting for {lsn_to_str(reached)}; "
            f"behind: {', '.join(lagging)}",
            err=True,
        )
        raise SystemExit(1)
    click.echo(lsn_to_str(reached))
