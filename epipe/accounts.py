"""Users, projects and memberships (the CLI's `user`, `project` commands).

A project is created with its group, its owner's membership and its root directory
/Projects/<name> in one transaction (schemas/migrations/0003_projects.sql).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

import psycopg
from psycopg import errors as pg_errors

from epipe.errors import AccountError, DatabaseError

ROLES = ("owner", "member", "reader")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_PROJECT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Membership:
    project: str
    user: str
    role: str


def add_user(conn: psycopg.Connection, name: str, *, superuser: bool = False) -> int:
    if not _USER.match(name):
        raise AccountError(
            f"invalid user name {name!r}: 1-32 of a-z, 0-9, '_', '-', not starting with a digit"
        )
    try:
        row = conn.execute(
            "INSERT INTO users (name, is_superuser) VALUES (%s, %s) RETURNING id", [name, superuser]
        ).fetchone()
    except pg_errors.UniqueViolation:
        raise AccountError(f"user {name!r} already exists") from None
    assert row is not None
    return int(row[0])


def user_id(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute("SELECT id FROM users WHERE name = %s", [name]).fetchone()
    if row is None:
        raise AccountError(f"unknown user {name!r}; create it with `epipe user add {name}`")
    return int(row[0])


def create_project(conn: psycopg.Connection, name: str, owner: str) -> int:
    """Create project `name` owned by `owner`, with its directory /Projects/<name>."""
    if not _PROJECT.match(name):
        raise AccountError(
            f"invalid project name {name!r}: 1-64 of A-Z, a-z, 0-9, '_', starting with a letter"
        )
    owner_id = user_id(conn, owner)
    try:
        row = conn.execute("SELECT project_create(%s, %s, NULL)", [name, owner_id]).fetchone()
    except pg_errors.UniqueViolation:
        raise AccountError(f"project or group {name!r} already exists") from None
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot create project {name!r}: {exc.diag.message_primary}") from None
    assert row is not None
    return int(row[0])


def add_member(conn: psycopg.Connection, project: str, user: str, role: str = "member") -> None:
    """Add `user` to `project` with `role`, or change the role of an existing member."""
    if role not in ROLES:
        raise AccountError(f"invalid role {role!r}; one of {', '.join(ROLES)}")
    uid = user_id(conn, user)
    row = conn.execute("SELECT id FROM projects WHERE name = %s", [project]).fetchone()
    if row is None:
        raise AccountError(f"unknown project {project!r}")
    conn.execute(
        """INSERT INTO memberships (project_id, user_id, role) VALUES (%s, %s, %s)
           ON CONFLICT (project_id, user_id) DO UPDATE SET role = EXCLUDED.role""",
        [row[0], uid, role],
    )


def memberships(conn: psycopg.Connection, project: str | None = None) -> list[Membership]:
    rows = conn.execute(
        """SELECT p.name, u.name, m.role FROM memberships m
           JOIN projects p ON p.id = m.project_id JOIN users u ON u.id = m.user_id
           WHERE %(project)s::text IS NULL OR p.name = %(project)s
           ORDER BY p.name, u.name""",
        {"project": project},
    ).fetchall()
    return [Membership(*row) for row in rows]


@dataclass(frozen=True)
class Caller:
    """Who an API request acts for: the user and the projects they may see."""

    user: str
    user_id: int
    superuser: bool
    projects: frozenset[str]  # every project the user belongs to (any role)
    writable: frozenset[str]  # those where the role lets them write


def create_token(conn: psycopg.Connection, user: str) -> str:
    """A new bearer token for `user`; only its SHA-256 is stored, so this is the only time
    anyone sees it."""
    uid = user_id(conn, user)
    token = "epipe_" + secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO api_tokens (user_id, token_sha256) VALUES (%s, %s)",
        [uid, hashlib.sha256(token.encode()).digest()],
    )
    return token


def revoke_tokens(conn: psycopg.Connection, user: str) -> int:
    """Revoke every live token of `user`; how many were live."""
    uid = user_id(conn, user)
    cursor = conn.execute(
        "UPDATE api_tokens SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        [uid],
    )
    return cursor.rowcount


def caller_of(conn: psycopg.Connection, token: str) -> Caller | None:
    """The caller a bearer token stands for, or None if it is unknown or revoked."""
    row = conn.execute(
        """SELECT u.id, u.name, u.is_superuser,
                  coalesce(array_agg(p.name) FILTER (WHERE p.name IS NOT NULL), '{}'),
                  coalesce(array_agg(p.name) FILTER (WHERE m.role <> 'reader'), '{}')
           FROM api_tokens t JOIN users u ON u.id = t.user_id
           LEFT JOIN memberships m ON m.user_id = u.id
           LEFT JOIN projects p ON p.id = m.project_id
           WHERE t.token_sha256 = %s AND t.revoked_at IS NULL
           GROUP BY u.id, u.name, u.is_superuser""",
        [hashlib.sha256(token.encode()).digest()],
    ).fetchone()
    if row is None:
        return None
    uid, name, superuser, projects, writable = row
    return Caller(name, uid, superuser, frozenset(projects), frozenset(writable))
