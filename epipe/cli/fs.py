"""`epipe fs …`: the namespace operations from the shell.

Commands that take several operands run one transaction per operand, in order. As coreutils
and `hdfs dfs` do, a file-system error with one operand is reported (one line on stderr) and
the others go on; the exit code is 1 if any failed. Human output escapes names (a name may
hold a newline or an escape sequence); `--json` keeps them exact.
"""

from __future__ import annotations

import dataclasses
import itertools
import stat as stat_mode
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from epipe.cli.context import Context
from epipe.errors import FsError
from epipe.fs import paths, xattrs
from epipe.fs.display import escape, json_text, utc_iso, utc_minute
from epipe.fs.model import Actor, Change, Entry
from epipe.fs.namespace import Namespace

F = TypeVar("F", bound=Callable[..., Any])
pass_context = click.make_pass_decorator(Context)


def _actor_options(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True, help="machine-readable output")(func)
    func = click.option("--app", "app_id", default=None, help="application id (provenance)")(func)
    return click.option("--user", default="root", show_default=True, help="acting user")(func)


def _operands(func: F) -> F:
    return click.argument("operands", metavar="PATH...", nargs=-1, required=True)(func)


def _namespace(ctx: Context, user: str, app_id: str | None) -> Namespace:
    return Namespace(ctx.connection(), Actor(user, app_id))


def _report(exc: FsError) -> None:
    click.echo(f"epipe: {escape(str(exc))}", err=True)


def _echo_json(value: Any) -> None:
    click.echo(json_text(value, indent=2))


def _each(operands: Sequence[str], action: Callable[[str], Any], as_json: bool) -> None:
    """`action` on each operand in order; a failed one is reported and the rest go on.

    With --json, what the actions return is printed at the end: one operand's result as it
    is, several operands' as a list, each result tagged with its operand's path."""
    results: list[Any] = []
    failed = False
    for operand in operands:
        try:
            result = action(operand)
        except FsError as exc:
            _report(exc)
            failed = True
            continue
        if as_json:
            results.append(_tagged(operand, result) if len(operands) > 1 else result)
    if as_json and (results or len(operands) > 1):
        _echo_json(results if len(operands) > 1 else results[0])
    if failed:
        sys.exit(1)


def _tagged(operand: str, result: Any) -> dict[str, Any]:
    tag = {"path": paths.normalise(operand)}
    return {**tag, **result} if isinstance(result, dict) else {**tag, "entries": result}


def _changes(operands: Sequence[str], op: Callable[[str], Change], as_json: bool) -> None:
    """A write per operand, each printing its token."""

    def one(operand: str) -> dict[str, Any]:
        change = op(operand)
        if not as_json:
            click.echo(change.token)
        return dataclasses.asdict(change)

    _each(operands, one, as_json)


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        **dataclasses.asdict(entry),
        "mtime": utc_iso(entry.mtime),
        "ctime": utc_iso(entry.ctime),
    }


def _entry_line(entry: Entry) -> str:
    kind = stat_mode.S_IFDIR if entry.kind == "dir" else stat_mode.S_IFREG
    mode = stat_mode.filemode(kind | entry.mode)
    owner, group, name = escape(entry.owner), escape(entry.group), escape(entry.name)
    return f"{mode} {owner:<8} {group:<8} {entry.size:>12} {utc_minute(entry.mtime)} {name}"


class _Listing:
    """`ls` output as GNU ls lays it out: with several operands, a directory's entries come
    under a `PATH:` header, a file is its own line, and a blank line sets directories apart."""

    def __init__(self, ns: Namespace, *, headers: bool) -> None:
        self._ns = ns
        self._headers = headers
        self._printed = False
        self._in_dir = False

    def show(self, path: str) -> None:
        is_dir = self._headers and self._ns.stat(path).kind == "dir"
        entries = self._ns.iter_ls(path)
        first = list(itertools.islice(entries, 1))  # an error comes before any output
        if is_dir:
            if self._printed:
                click.echo("")
            click.echo(f"{escape(paths.normalise(path))}:")
        elif self._in_dir:
            click.echo("")
        for entry in itertools.chain(first, entries):
            click.echo(_entry_line(entry))
        self._printed, self._in_dir = True, is_dir


class _FsGroup(click.Group):
    """Reports a file-system error as one escaped line (its path may hold a newline)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FsError as exc:
            _report(exc)
            sys.exit(1)


@click.group(cls=_FsGroup)
def fs() -> None:
    """File-system operations; each one transaction, printing its consistency token."""


@fs.command()
@click.option("-p", "--parents", is_flag=True, help="create missing parents; no error if it exists")
@_operands
@_actor_options
@pass_context
def mkdir(
    ctx: Context,
    operands: tuple[str, ...],
    parents: bool,
    user: str,
    app_id: str | None,
    as_json: bool,
) -> None:
    """Create each directory PATH, in order."""
    ns = _namespace(ctx, user, app_id)
    _changes(operands, lambda path: ns.mkdir(path, parents=parents), as_json)


@fs.command()
@_operands
@click.option("--size", type=click.IntRange(min=0), default=0, show_default=True, help="bytes")
@click.option("-f", "--force", is_flag=True, help="rewrite the file if it exists")
@_actor_options
@pass_context
def put(
    ctx: Context,
    operands: tuple[str, ...],
    size: int,
    force: bool,
    user: str,
    app_id: str | None,
    as_json: bool,
) -> None:
    """Create each file PATH of SIZE bytes (with -f, rewrite an existing file)."""
    ns = _namespace(ctx, user, app_id)
    _changes(operands, lambda path: ns.put(path, size=size, overwrite=force), as_json)


@fs.command()
@click.argument("sources", metavar="SRC...", nargs=-1, required=True)
@click.argument("dst")
@_actor_options
@pass_context
def mv(
    ctx: Context,
    sources: tuple[str, ...],
    dst: str,
    user: str,
    app_id: str | None,
    as_json: bool,
) -> None:
    """Move SRC to DST atomically (DST must not exist); with several SRC, move each into
    the existing directory DST, one transaction each."""
    ns = _namespace(ctx, user, app_id)
    if len(sources) == 1:
        _changes(sources, lambda src: ns.mv(src, dst), as_json)
        return
    into = paths.split_path(dst)
    if ns.stat(dst).kind != "dir":
        raise FsError("ENOTDIR", dst, "moving several sources needs a directory to move into")
    _changes(sources, lambda src: ns.mv(src, paths.join_path(into + _base(src))), as_json)


def _base(path: str) -> list[str]:
    """The last name of `path` as a list: empty for '/', whose move the namespace refuses."""
    return paths.split_path(path)[-1:]


@fs.command()
@click.option("-r", "--recursive", is_flag=True, help="remove a directory and everything below")
@_operands
@_actor_options
@pass_context
def rm(
    ctx: Context,
    operands: tuple[str, ...],
    recursive: bool,
    user: str,
    app_id: str | None,
    as_json: bool,
) -> None:
    """Remove each file or empty directory PATH (with -r, whole subtrees), in order."""
    ns = _namespace(ctx, user, app_id)
    _changes(operands, lambda path: ns.rm(path, recursive=recursive), as_json)


@fs.command()
@_operands
@_actor_options
@pass_context
def ls(
    ctx: Context, operands: tuple[str, ...], user: str, app_id: str | None, as_json: bool
) -> None:
    """List each directory PATH (a file lists as itself); times are UTC."""
    ns = _namespace(ctx, user, app_id)
    if as_json:
        _each(operands, lambda path: [_entry_json(e) for e in ns.iter_ls(path)], as_json)
    else:
        _each(operands, _Listing(ns, headers=len(operands) > 1).show, as_json)


@fs.command()
@_operands
@_actor_options
@pass_context
def stat(
    ctx: Context, operands: tuple[str, ...], user: str, app_id: str | None, as_json: bool
) -> None:
    """Show the metadata of each PATH; times are UTC."""
    ns = _namespace(ctx, user, app_id)

    def one(path: str) -> dict[str, Any]:
        fields = _entry_json(ns.stat(path))
        if not as_json:
            if len(operands) > 1:  # each block starts with its path, as in GNU stat
                click.echo(f"path: {escape(paths.normalise(path))}")
            for key, value in fields.items():
                click.echo(f"{key}: {oct(value) if key == 'mode' else escape(str(value))}")
        return fields

    _each(operands, one, as_json)


@fs.command()
@_operands
@_actor_options
@pass_context
def cat(
    ctx: Context, operands: tuple[str, ...], user: str, app_id: str | None, as_json: bool
) -> None:
    """Read each file PATH (recorded for provenance; epipe stores metadata, not content)."""
    ns = _namespace(ctx, user, app_id)
    _changes(operands, ns.cat, as_json)


@fs.command()
@click.argument("path")
@click.argument("name")
@click.argument("value", metavar="JSON")
@_actor_options
@pass_context
def setxattr(
    ctx: Context, path: str, name: str, value: str, user: str, app_id: str | None, as_json: bool
) -> None:
    """Set extended attribute NAME (user.NAME or system.NAME) of PATH to a JSON value."""
    parsed = xattrs.parse_value(value, path=path)
    ns = _namespace(ctx, user, app_id)
    _changes([path], lambda target: ns.setxattr(target, name, parsed), as_json)


@fs.command()
@click.argument("path")
@click.argument("name", required=False)
@_actor_options
@pass_context
def getxattr(
    ctx: Context, path: str, name: str | None, user: str, app_id: str | None, as_json: bool
) -> None:
    """Show the extended attributes of PATH (or only NAME)."""
    found = _namespace(ctx, user, app_id).getxattr(path, name)
    if as_json:
        _echo_json(found)
    else:
        for key, value in found.items():
            click.echo(f"{escape(key)}={json_text(value)}")


@fs.command()
@click.argument("path")
@click.argument("name")
@_actor_options
@pass_context
def rmxattr(
    ctx: Context, path: str, name: str, user: str, app_id: str | None, as_json: bool
) -> None:
    """Remove extended attribute NAME of PATH."""
    ns = _namespace(ctx, user, app_id)
    _changes([path], lambda target: ns.rmxattr(target, name), as_json)
