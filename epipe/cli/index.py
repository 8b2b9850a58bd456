"""`epipe search`, `epipe reindex`, `epipe verify`."""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from epipe.cli.context import Context, echo_json
from epipe.errors import EpipeError
from epipe.index.engine import REINDEX, RUN, EngineError, IndexBusy, SearchIndex
from epipe.index.rebuild import rebuild
from epipe.index.verify import verify as verify_index
from epipe.pipeline import status as pipeline_status
from epipe.pipeline.rebuilds import RebuildRequests
from epipe.prov.artifacts import KINDS
from epipe.search.query import SORTS, SearchQuery, parse_predicate
from epipe.source.slot import slot_state
from epipe.wiring import hive_locations, metastore_uri, open_index_store, open_metastore

pass_context = click.make_pass_decorator(Context)
UNSERVED_SECONDS = 30  # a running pipeline takes a request between two batches
if TYPE_CHECKING:
    from epipe.hms.verify import HiveDrift
    from epipe.prov.verify import GraphDrift

DRIFT, CANNOT_CHECK = 1, 2  # exit codes of `epipe verify`
CONSUMER_FRESH_SECONDS = 10  # an idle consumer reports at each heartbeat (1 s by default)


@click.command()
@click.argument("text", required=False)
@click.option("--under", default=None, help="only below this directory")
@click.option(
    "--xattr",
    "predicates",
    multiple=True,
    help="annotation predicate, e.g. 'labels.objects.bicycle>3' (repeatable)",
)
@click.option("--type", "kind", type=click.Choice(["file", "dir"]), default=None)
@click.option("--ext", default=None, help="file extension, e.g. jpg")
@click.option(
    "--artifact",
    type=click.Choice(KINDS),
    default=None,
    help="artifact kind from the name (docs/provenance.md)",
)
@click.option("--owner", default=None)
@click.option("--size-min", type=click.IntRange(min=0), default=None)
@click.option("--size-max", type=click.IntRange(min=0), default=None)
@click.option("--modified-after", type=click.DateTime(), default=None)
@click.option("--modified-before", type=click.DateTime(), default=None)
@click.option("--sort", type=click.Choice(SORTS), default="score", show_default=True)
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def search(
    ctx: Context,
    text: str | None,
    under: str | None,
    predicates: tuple[str, ...],
    kind: str | None,
    ext: str | None,
    artifact: str | None,
    owner: str | None,
    size_min: int | None,
    size_max: int | None,
    modified_after: datetime | None,
    modified_before: datetime | None,
    sort: str,
    limit: int,
    as_json: bool,
) -> None:
    """Search files by TEXT and filters (as the superuser: every project)."""
    query = SearchQuery(
        text=text,
        under=under,
        type=kind,  # type: ignore[arg-type]
        ext=ext,
        artifact=artifact,
        owner=owner,
        size_min=size_min,
        size_max=size_max,
        modified_after=modified_after,
        modified_before=modified_before,
        xattr=tuple(parse_predicate(p) for p in predicates),
        sort=sort,  # type: ignore[arg-type]
        limit=limit,
    )
    index = open_index_store(ctx.settings).current(writable=False)
    started = time.perf_counter()
    page = index.search(query)
    took_ms = round((time.perf_counter() - started) * 1000, 2)
    if as_json:
        echo_json(
            {
                "hits": [{**h.doc, "score": h.score} for h in page.hits],
                "total": page.total,
                "took_ms": took_ms,
            }
        )
        return
    for hit in page.hits:
        doc = hit.doc
        labels = json.dumps(doc["xattrs"], ensure_ascii=False)
        click.echo(
            f"{doc['path']}  {doc['size']:,} B  {doc['mtime'][:19]}  "
            f"{labels[:120]}{'…' if len(labels) > 120 else ''}"
        )
    click.echo(f"{page.total:,} match(es), {len(page.hits)} shown, {took_ms} ms", err=True)


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=3600,
    show_default=True,
    help="seconds to wait for the running pipeline to rebuild",
)
@pass_context
def reindex(ctx: Context, timeout: float) -> None:
    """Rebuild the search index from the database into a new index, then swap it in.

    With the pipeline running (its slot is active, or its index consumer holds the index),
    its index consumer rebuilds; otherwise this command does, whatever state the current
    index is in (it is not opened)."""
    conn = ctx.connection()
    store = open_index_store(ctx.settings)
    live = _live_pipeline(ctx)
    if live is not None:
        _request_rebuild(ctx, timeout, live)
        return
    try:
        lock = store.hold_writer(REINDEX)
    except IndexBusy as busy:
        if busy.role != RUN:
            raise EpipeError(f"{busy}: wait for it to finish") from None
        _request_rebuild(ctx, timeout, f"its index consumer holds the index (pid {busy.pid})")
        return
    with lock:
        if not lock.exclusive and (live := _live_pipeline(ctx, recent=True)) is not None:
            lock.release()
            _request_rebuild(ctx, timeout, live)
            return
        with click.progressbar(length=1, label="reindex", file=sys.stderr, show_pos=True) as bar:

            def progress(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)

            report, index = rebuild(conn, store, progress=progress)
            index.close()
    click.echo(
        f"rebuilt {report.generation}: {report.documents:,} documents in "
        f"{report.seconds:.1f} s"
        + (f", {len(report.rejected)} refused" if report.rejected else "")
        + (f", {len(report.skipped)} with annotations left out" if report.skipped else "")
    )


def _live_pipeline(ctx: Context, *, recent: bool = False) -> str | None:
    """How a running pipeline shows (None: none does): its slot is active; with `recent`,
    also its index consumer reported within the last seconds (an engine without a lock
    the consumer holds: its consumer may run where the slot is not)."""
    conn = ctx.connection()
    slot = slot_state(conn, ctx.settings.slot)
    if slot is not None and slot.active:
        return f"its slot {ctx.settings.slot} is active (pid {slot.active_pid})"
    if recent:
        row = conn.execute(
            "SELECT extract(epoch FROM now() - updated_at)::float8 FROM epipe_consumers "
            "WHERE name = 'index'"
        ).fetchone()
        if row is not None and row[0] < CONSUMER_FRESH_SECONDS:
            return f"its index consumer reported {row[0]:.0f} s ago"
    return None


def _request_rebuild(ctx: Context, timeout: float, live: str) -> None:
    """The pipeline runs and writes to the index: ask its index consumer to rebuild."""
    requests = RebuildRequests(ctx.connection())
    request = requests.submit()
    started_waiting = unserved_since = time.monotonic()
    with click.progressbar(
        length=1, label="reindex (by the running pipeline)", file=sys.stderr, show_pos=True
    ) as bar:
        while True:
            state = requests.get(request)
            if state.total:
                bar.length = state.total
                bar.update(state.done - bar.pos)
            if state.finished_at is not None:
                break
            now = time.monotonic()
            if state.started_at is not None and requests.served(request):
                unserved_since = now
            elif state.started_at is not None and _live_pipeline(ctx) is None:
                _give_up(
                    requests,
                    request,
                    "the pipeline rebuilding the index stopped before it finished (the "
                    "current index is unchanged): run `epipe reindex` again",
                )
            elif now - unserved_since > min(UNSERVED_SECONDS, timeout):
                _give_up(
                    requests,
                    request,
                    f"the pipeline runs ({live}) but no index consumer took the rebuild "
                    f"request within {UNSERVED_SECONDS} s: is `epipe run` healthy?",
                )
            if now - started_waiting > timeout:
                raise EpipeError(f"the running pipeline did not finish rebuilding in {timeout} s")
            time.sleep(0.2)
    if state.error:
        raise EpipeError(f"rebuild failed: {state.error}")
    click.echo(f"rebuilt by the running pipeline: {state.done:,} documents")


def _give_up(requests: RebuildRequests, request: int, why: str) -> None:
    """Withdraw a request nobody serves, unless a consumer took it meanwhile."""
    if requests.withdraw(request, why):
        raise EpipeError(why)


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=30,
    show_default=True,
    help="seconds to wait for the pipeline to catch up before comparing",
)
@click.option("--json", "as_json", is_flag=True)
@pass_context
def verify(ctx: Context, timeout: float, as_json: bool) -> None:
    """Compare the index with the database; print the drift. Exit 1 on drift, 2 when the
    comparison cannot be made (the index cannot be opened or read)."""
    conn = ctx.connection()
    try:
        index: SearchIndex = open_index_store(ctx.settings).current(writable=False)
        _catch_up(ctx, timeout)
        drift = verify_index(conn, index)
        if drift:  # changes may have raced the comparison: look again at what differed
            checked, left_out = drift.checked, drift.left_out
            _catch_up(ctx, timeout)
            drift = verify_index(conn, index, only=drift.ids)
            drift.checked, drift.left_out = checked, left_out
    except EngineError as exc:
        click.echo(
            f"epipe: cannot check the index: {exc}; `epipe reindex` rebuilds it from the database",
            err=True,
        )
        raise SystemExit(CANNOT_CHECK) from None
    summary = drift.summary()
    hive = _verify_hive(ctx, timeout)
    graph = _verify_provenance(ctx, timeout)
    if as_json:
        echo_json(
            {
                **summary,
                "drift": bool(drift) or bool(hive) or bool(graph),
                "sample": {
                    k: sorted(getattr(drift, k))[:20] for k in ("missing", "extra", "stale")
                },
                **(
                    {}
                    if hive is None
                    else {
                        "hive": {
                            **hive.summary(),
                            "drift": bool(hive),
                            "sample": [
                                item.as_json() for item in hive.listed if item.state in _HIVE_DRIFT
                            ][:20],
                        }
                    }
                ),
                **({} if graph is None else {"provenance": graph.as_json()}),
            }
        )
    else:
        for kind in ("missing", "extra", "stale", "fields"):
            found: dict[str, Any] = summary[kind]
            line = ", ".join(f"{n} {k}" for k, n in sorted(found.items())) or "none"
            click.echo(f"{kind:<8} {line}")
        if drift.left_out:
            click.echo(f"left out annotations of {drift.left_out:,} documents (see epipe status)")
        click.echo(
            f"checked  {drift.checked:,} documents: "
            f"{'DRIFT' if drift else 'index equals the database'}"
        )
        if hive is not None:
            counts = hive.summary()
            for item in hive.listed:
                if item.state in _HIVE_DRIFT:
                    click.echo(f"hive     {item.state} {item.object.describe()}: {item.detail}")
            click.echo(
                f"hive     {counts['checked']:,} objects, orphan {counts['orphan']}, stale "
                f"{counts['stale']}, kept {counts['kept']}: "
                f"{'DRIFT (`epipe hive repair`)' if hive else 'metastore agrees'}"
            )
        if graph is not None:
            for name in ("missing", "extra", "stale"):
                for kind, keys in getattr(graph, name).items():
                    if keys:
                        click.echo(f"lineage  {name} {kind}: {', '.join(sorted(keys)[:5])}")
            sizes = ", ".join(f"{n:,} {kind}" for kind, n in graph.checked.items())
            click.echo(
                f"lineage  {sizes}: "
                f"{'DRIFT' if graph else 'the graph equals a rebuild from the log'}"
            )
    if drift or hive or graph:
        raise SystemExit(DRIFT)


_HIVE_DRIFT = ("orphan", "stale")


def _verify_hive(ctx: Context, timeout: float) -> HiveDrift | None:
    """The metastore's drift, when a metastore is configured (None when none is)."""
    if metastore_uri(ctx.settings) is None:
        return None
    from epipe.hms.metastore import MetastoreUnavailable
    from epipe.hms.verify import inspect

    conn, locations = ctx.connection(), hive_locations(ctx.settings)
    metastore = open_metastore(ctx.settings)
    try:
        drift = inspect(conn, metastore, locations)
        if drift:  # changes may have raced the comparison: look again
            _catch_up(ctx, timeout)
            drift = inspect(conn, metastore, locations)
        return drift
    except MetastoreUnavailable as exc:
        click.echo(f"epipe: cannot check the Hive metastore: {exc}", err=True)
        raise SystemExit(CANNOT_CHECK) from None
    finally:
        metastore.close()


def _verify_provenance(ctx: Context, timeout: float) -> GraphDrift | None:
    """The lineage graph's drift from a rebuild, when a provenance consumer made one."""
    from epipe.prov import verify as prov_verify

    conn = ctx.connection()
    if not prov_verify.held(conn):
        return None
    drift = prov_verify.compare(conn)
    if drift:  # changes may have raced the comparison: look again
        _catch_up(ctx, timeout)
        drift = prov_verify.compare(conn)
    return drift


def _catch_up(ctx: Context, timeout: float) -> None:
    conn = ctx.connection()
    slot = slot_state(conn, ctx.settings.slot)
    if slot is not None and slot.active and timeout > 0:  # a pipeline runs: let it catch up
        _, lagging = pipeline_status.wait(conn, ctx.settings.slot, None, timeout)
        if lagging:
            click.echo(
                f"epipe: warning: still behind after {timeout} s: {', '.join(lagging)}", err=True
            )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@pass_context
def serve(ctx: Context, host: str, port: int) -> None:
    """The REST API (OpenAPI at /docs)."""
    from search_api import create_app
    from search_api.server import serve as serve_app

    ctx.connection()  # the schema is current
    serve_app(create_app(ctx.settings), host, port, ctx.settings.api_header_timeout)
