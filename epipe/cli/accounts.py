"""`epipe user …` and `epipe project …`: access control."""

from __future__ import annotations

import click

from epipe import accounts as acc
from epipe.cli.context import Context, echo_json

pass_context = click.make_pass_decorator(Context)


@click.group()
def user() -> None:
    """Users of the file system."""


@user.command("add")
@click.argument("name")
@click.option("--superuser", is_flag=True, help="no project checks (like root)")
@pass_context
def user_add(ctx: Context, name: str, superuser: bool) -> None:
    """Create user NAME."""
    uid = acc.add_user(ctx.connection(), name, superuser=superuser)
    click.echo(f"user {name} (id {uid})")


@click.group()
def project() -> None:
    """Projects: /Projects/<name> and the users who may use it."""


@project.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="user who owns the project")
@pass_context
def project_create(ctx: Context, name: str, owner: str) -> None:
    """Create project NAME with its directory /Projects/NAME."""
    acc.create_project(ctx.connection(), name, owner)
    click.echo(f"project {name}: /Projects/{name} (owner {owner})")


@project.command("add-member")
@click.argument("name")
@click.argument("member")
@click.option("--role", type=click.Choice(acc.ROLES), default="member", show_default=True)
@pass_context
def project_add_member(ctx: Context, name: str, member: str, role: str) -> None:
    """Add user MEMBER to project NAME (or change their role)."""
    acc.add_member(ctx.connection(), name, member, role)
    click.echo(f"{member} is {role} of {name}")


@project.command("members")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@pass_context
def project_members(ctx: Context, name: str | None, as_json: bool) -> None:
    """List the members of project NAME (or of every project)."""
    found = acc.memberships(ctx.connection(), name)
    if as_json:
        echo_json([m.__dict__ for m in found])
    else:
        for m in found:
            click.echo(f"{m.project}\t{m.user}\t{m.role}")


@click.group()
def token() -> None:
    """Bearer tokens of the REST API."""


@token.command("create")
@click.argument("name")
@pass_context
def token_create(ctx: Context, name: str) -> None:
    """Create a token for user NAME (printed alone on the last line; stored only hashed)."""
    secret = acc.create_token(ctx.connection(), name)
    click.echo(f"token for {name} (shown once; keep it secret):")
    click.echo(secret)


@token.command("revoke")
@click.argument("name")
@pass_context
def token_revoke(ctx: Context, name: str) -> None:
    """Revoke every token of user NAME (their next request is 401)."""
    revoked = acc.revoke_tokens(ctx.connection(), name)
    click.echo(f"revoked {revoked} token(s) of {name}")
