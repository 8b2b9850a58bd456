"""Hive locations <-> epipe paths: pure functions, no I/O.

An HMS object belongs to the file system when its location is the prefix followed by an
epipe path. Locations are compared in the form HMS itself stores them (Hadoop's `Path`
string, measured on HMS 2.3): the scheme in lower case, `file://localhost/x` and
`file:///x` both `file:/x`, repeated slashes and `.` segments collapsed, no trailing slash.
A `%` is a literal character, as in HMS (`file:///a%20b` is stored as `file:/a%20b` and
names the directory `a%20b`), so a location and a path match character for character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(.*)$", re.DOTALL)


class LocationError(ValueError):
    """A location that cannot be read as a URI or a path."""


def normalise(location: str) -> str:
    """The canonical form of a location (see the module's docstring)."""
    match = _SCHEME.match(location)
    if match is None:
        if not location.startswith("/"):
            raise LocationError(f"location {location!r} is neither a URI nor an absolute path")
        return _clean_path(location)
    scheme, rest = match.group(1).lower(), match.group(2)
    authority = ""
    if rest.startswith("//"):
        end = rest.find("/", 2)
        authority, rest = (rest[2:], "/") if end < 0 else (rest[2:end], rest[end:])
        if scheme == "file" and authority.lower() in ("", "localhost"):
            authority = ""
    if not rest.startswith("/"):
        raise LocationError(f"location {location!r} has no absolute path")
    path = _clean_path(rest)
    return f"{scheme}://{authority}{path}" if authority else f"{scheme}:{path}"


def _clean_path(path: str) -> str:
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def is_under(path: str, root: str) -> bool:
    """`path` is `root` or inside it, on `/` boundaries (`/a/b` is not under `/a/bc`)."""
    if root == "/":
        return path.startswith("/")
    return path == root or path.startswith(root + "/")


def rebase(path: str, old_root: str, new_root: str) -> str:
    """`path` under `old_root` moved to the same place under `new_root`."""
    if not is_under(path, old_root):
        raise ValueError(f"{path!r} is not under {old_root!r}")
    tail = path[len(old_root) :] if old_root != "/" else path
    return (new_root.rstrip("/") + tail) or "/"


@dataclass(frozen=True)
class LocationMap:
    """Maps between HMS locations and epipe paths under one prefix (`file:/srv/fs`: the
    epipe path `/a/b` is the location `file:/srv/fs/a/b`)."""

    prefix: str

    @classmethod
    def of(cls, prefix: str) -> LocationMap:
        return cls(normalise(prefix))

    def path(self, location: str | None) -> str | None:
        """The epipe path of `location`, or None when it is not in the file system (elsewhere,
        empty, or not a location at all)."""
        if not location:
            return None
        try:
            canonical = normalise(location)
        except LocationError:
            return None
        prefix = self.prefix
        if prefix.endswith("/"):  # a scheme's root (file:/): every path of it
            return "/" + canonical[len(prefix) :] if canonical.startswith(prefix) else None
        if canonical == prefix:
            return "/"
        return canonical[len(prefix) :] if canonical.startswith(prefix + "/") else None

    def location(self, path: str) -> str:
        """The location of the epipe path `path` (as HMS will store it)."""
        return normalise(self.prefix.rstrip("/") + "/" + path.lstrip("/"))
