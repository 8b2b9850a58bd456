"""`epipe fs …`: the namespace operations from the shell."""

from __future__ import annotations

import dataclasses
import json
import stat as stat_mode
from collections.abc import Callable
from typing import Any, TypeVar

import click

from epipe.cli.context import Context, echo_json
from epipe.fs import xattrs
from epipe.fs.model import Actor, Change, Entry
from epipe.fs.namespace import Namespace

F = TypeVar("F", bound=Callable[..., Any])
pass_context = click.make_pass_decorator(Context)


def _actor_options(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True, help="machine-readable output")(func)
    func = click.option("--app", "app_id", default=None, help="application id (provenance)")(func)
    return click.option("--user", default="root", show_default=True, help="acting user")(func)


def _namespace(ctx: Context, user: str, app_id: str | None) -> Namespace:
    return Namespace(ctx.connection(), Actor(user, app_id))


def _print_change(change: Change, as_json: bool) -> None:
    if as_json:
        echo_json(dataclasses.asdict(change))
    else:
        click.echo(change.token)


def _entry_json(entry: Entry) -> dict[str, Any]:
    return dataclasses.asdict(entry)


def _entry_line(entry: Entry) -> str:
    kind = stat_mode.S_IFDIR if entry.kind == "dir" else stat_mode.S_IFREG
    mode = stat_mode.filemode(kind | entry.mode)
    when = entry.mtime.strftime("%Y-%m-%d %H:%M")
    return f"{mode} {entry.owner:<8} {entry.group:<8} {entry.size:>12} {when} {entry.name}"


@click.group()
def fs() -> None:
    """File-system operations; each one transaction, printing its consistency token."""


@fs.command()
@click.option("-p", "--parents", is_flag=True, help="create missing parents; no error if it exists")
@click.argument("path")
@_actor_options
@pass_context
def mkdir(
    ctx: Context, path: str, parents: bool, user: str, app_id: str | None, as_json: bool
) -> None:
    """Create directory PATH."""
    _print_change(_namespace(ctx, user, app_id).mkdir(path, parents=parents), as_json)


@fs.command()
@click.argument("path")
@click.option("--size", type=click.IntRange(min=0), default=0, show_default=True, help="bytes")
@click.option("-f", "--force", is_flag=True, help="rewrite the file if it exists")
@_actor_options
@pass_context
def put(
    ctx: Context, path: str, size: int, force: bool, user: str, app_id: str | None, as_json: bool
) -> None:
    """Create file PATH of SIZE bytes (with -f, rewrite an existing file)."""
    _print_change(_namespace(ctx, user, app_id).put(path, size=size, overwrite=force), as_json)


@fs.command()
@click.argument("src")
@click.argument("dst")
@_actor_options
@pass_context
def mv(ctx: Context, src: str, dst: str, user: str, app_id: str | None, as_json: bool) -> None:
    """Move SRC to DST atomically (DST must not exist)."""
    _print_change(_namespace(ctx, user, app_id).mv(src, dst), as_json)


@fs.command()
@click.option("-r", "--recursive", is_flag=True, help="remove a directory and everything below")
@click.argument("path")
@_actor_options
@pass_context
def rm(
    ctx: Context, path: str, recursive: bool, user: str, app_id: str | None, as_json: bool
) -> None:
    """Remove a file or an empty directory (with -r, a whole subtree)."""
    _print_change(_namespace(ctx, user, app_id).rm(path, recursive=recursive), as_json)


@fs.command()
@click.argument("path")
@_actor_options
@pass_context
def ls(ctx: Context, path: str, user: str, app_id: str | None, as_json: bool) -> None:
    """List directory PATH (a file lists as itself)."""
    entries = _namespace(ctx, user, app_id).iter_ls(path)
    if as_json:
        echo_json([_entry_json(e) for e in entries])
    else:
        for entry in entries:
            click.echo(_entry_line(entry))


@fs.command()
@click.argument("path")
@_actor_options
@pass_context
def stat(ctx: Context, path: str, user: str, app_id: str | None, as_json: bool) -> None:
    """Show the metadata of PATH."""
    entry = _namespace(ctx, user, app_id).stat(path)
    if as_json:
        echo_json(_entry_json(entry))
    else:
        for key, value in _entry_json(entry).items():
            click.echo(f"{key}: {oct(value) if key == 'mode' else value}")


@fs.command()
@click.argument("path")
@_actor_options
@pass_context
def cat(ctx: Context, path: str, user: str, app_id: str | None, as_json: bool) -> None:
    """Read file PATH (recorded for provenance; epipe stores metadata, not content)."""
    _print_change(_namespace(ctx, user, app_id).cat(path), as_json)


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
    _print_change(_namespace(ctx, user, app_id).setxattr(path, name, parsed), as_json)


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
        echo_json(found)
    else:
        for key, value in found.items():
            click.echo(f"{key}={json.dumps(value, ensure_ascii=False)}")


@fs.command()
@click.argument("path")
@click.argument("name")
@_actor_options
@pass_context
def rmxattr(
    ctx: Context, path: str, name: str, user: str, app_id: str | None, as_json: bool
) -> None:
    """Remove extended attribute NAME of PATH."""
    _print_change(_namespace(ctx, user, app_id).rmxattr(path, name), as_json)
