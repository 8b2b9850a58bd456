"""Values the namespace layer hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Kind = Literal["file", "dir"]
KINDS: dict[str, Kind] = {"f": "file", "d": "dir"}  # inodes.kind as stored -> as shown


@dataclass(frozen=True)
class Actor:
    """Who performs an operation: a user name and, optionally, the application's id."""

    user: str = "root"
    app_id: str | None = None


@dataclass(frozen=True)
class Change:
    """The outcome of a write: the inode it touched and the consistency token.

    The token is a commit position (LSN, e.g. '0/1A2B3C8') at or after the operation's
    commit: once a consumer has applied the token, it has applied the operation.
    """

    inode_id: int
    token: str


@dataclass(frozen=True)
class Entry:
    """An inode as `stat` and `ls` show it."""

    id: int
    parent_id: int | None
    name: str
    kind: Kind
    size: int
    mode: int
    mtime: datetime
    ctime: datetime
    owner: str
    group: str
