"""Scope before lookup: a path a caller names is placed among the caller's projects before
anything looks it up. A path in a project the caller does not belong to is then answered
from the path alone, exactly as a missing path there: the same answer, the same work, the
same time, whether or not it exists."""

from __future__ import annotations

import enum
from typing import Literal

from epipe.accounts import Caller
from epipe.errors import FsError
from epipe.fs.paths import join_path, split_path


class _Outside(enum.Enum):
    OUTSIDE = "outside"


OUTSIDE = _Outside.OUTSIDE  # a place that holds nothing the caller may see


def within_projects(parts: list[str], caller: Caller) -> bool:
    """Whether the path (its components) lies in, or is the root of, one of the caller's
    projects; the superuser's paths all do."""
    return caller.superuser or (
        len(parts) >= 2 and parts[0] == "Projects" and parts[1] in caller.projects
    )


def search_under(under: str | None, caller: Caller) -> str | Literal[_Outside.OUTSIDE] | None:
    """The directory a search of `caller` below `under` (a normalised path) looks up: None
    when no lookup is needed (`/` and `/Projects` hold every project), OUTSIDE when the
    search can find nothing, without a lookup."""
    if under is None:
        return None
    parts = split_path(under)
    if caller.superuser:
        return under
    if parts in ([], ["Projects"]):
        return None  # the project filter already keeps every hit below them
    return under if within_projects(parts, caller) else OUTSIDE


def require_within_projects(path: str, caller: Caller) -> None:
    """FsError EACCES (answered 404, as a missing file) for a path outside the caller's
    projects, before the database is asked anything; FsError EINVAL for a malformed path."""
    parts = split_path(path)
    if not within_projects(parts, caller):
        raise FsError("EACCES", join_path(parts))
