"""The `epipe` command line: the composition root.

Settings are read once here; commands get what they need from `Context`. Every EpipeError,
and a connection to the database lost under a command, ends it with one line on stderr and
exit code 1.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from typing import Any

import click

from epipe.cli import accounts, bench, db, fs, hive, hms, index, load, pipeline, prov
from epipe.cli.context import Context
from epipe.errors import EpipeError
from epipe.pipeline.supervisor import CONNECTION_ERRORS, describe


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EpipeError as exc:
            for line in str(exc).splitlines() or [type(exc).__name__]:
                click.echo(f"epipe: {line}", err=True)
            sys.exit(1)
        except CONNECTION_ERRORS as exc:  # the database went away under a command
            click.echo(f"epipe: {describe(exc)}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="epipe")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Metadata change capture and search for a PostgreSQL-backed file system."""
    ctx.obj = ctx.with_resource(Context())


cli.add_command(db.db)
cli.add_command(db.init)
cli.add_command(hms.hms)
cli.add_command(fs.fs)
cli.add_command(load.load)
cli.add_command(accounts.user)
cli.add_command(accounts.project)
cli.add_command(accounts.token)
cli.add_command(pipeline.run)
cli.add_command(pipeline.tail)
cli.add_command(pipeline.status)
cli.add_command(pipeline.wait)
cli.add_command(pipeline.consume)
cli.add_command(index.search)
cli.add_command(index.reindex)
cli.add_command(index.verify)
cli.add_command(hive.hive)
cli.add_command(prov.lineage)
cli.add_command(prov.prov)
cli.add_command(index.serve)
cli.add_command(bench.bench)


def main() -> None:
    _python_writes_stderr_alone()
    _collect_cycles_less_often()
    try:
        cli(prog_name="epipe")
    except SystemExit as exc:
        _end_past_the_jvm(exc.code)
        raise
    _end_past_the_jvm(0)


# Python's cyclic collector runs every 700 new containers by default: in the tailer (every
# row change makes a few dicts and tuples, the bus holds thousands of events) it took a
# fifth of the thread's time. Every 50,000 the tailer reads about 30 % more row changes a
# second (`bench capture` A/B, docs/performance.md); cycles are still collected, later.
GC_THRESHOLDS = (50_000, 20, 20)


def _collect_cycles_less_often() -> None:
    gc.freeze()  # what the imports made lives as long as the process: never scanned again
    gc.set_threshold(*GC_THRESHOLDS)


def _end_past_the_jvm(code: object) -> None:
    """With Debezium's JVM in the process (EPIPE_SOURCE=debezium), end without Python's
    finalization. The engine's own threads may still call into Python then (a last batch,
    a commit); Python 3.11 makes such a thread exit by unwinding it, which JPype's native
    frames do not survive: a stop now and then ended in SIGABRT (its report lost with fd
    2). Everything epipe owns is closed by now."""
    jpype = sys.modules.get("jpype")
    if jpype is None or not jpype.isJVMStarted():
        return
    if code is not None and not isinstance(code, int):
        click.echo(str(code), err=True)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def _python_writes_stderr_alone() -> None:
    """Rust's panic hook (tantivy's, on a corrupted index) writes a report and a backtrace
    to file descriptor 2 before pyo3 turns the panic into an exception, which the index
    adapter reports in one line. So Python's stderr moves to a copy of the descriptor and
    the descriptor itself to /dev/null: what epipe says is all that is shown."""
    try:
        copy = os.dup(2)
        quiet = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no stderr at all: nothing to keep apart
        return
    sys.stderr.flush()
    sys.stderr = open(  # noqa: SIM115 (the process's stderr, open for its whole life)
        copy, "w", buffering=1, encoding=sys.stderr.encoding, errors="backslashreplace"
    )
    os.dup2(quiet, 2)
    os.close(quiet)
