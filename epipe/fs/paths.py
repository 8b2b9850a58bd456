"""Paths and names of the file system: pure validation, no I/O.

A path is absolute and `/`-separated; repeated and trailing slashes are normalised away.
A name is 1-255 bytes of UTF-8 without `/` or NUL, and is neither `.` nor `..` (paths are
taken literally, never resolved against a working directory).
"""

from __future__ import annotations

from epipe.errors import FsError

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 8192


def utf8_size(text: str, *, path: str, what: str) -> int:
    """Bytes of `text` in UTF-8; EINVAL if it holds lone surrogates (undecodable input)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        printable = path.encode("utf-8", "replace").decode()
        raise FsError("EINVAL", printable, f"{what} is not valid UTF-8") from None


def check_name(name: str, *, path: str = "") -> str:
    """`name` unchanged if it is a valid entry name, else FsError EINVAL saying why."""
    where = path or name
    if not name:
        raise FsError("EINVAL", where, "empty name")
    if "/" in name:
        raise FsError("EINVAL", where, f"name {name!r} contains '/'")
    if "\x00" in name:
        raise FsError("EINVAL", where, "name contains a NUL byte")
    if name in (".", ".."):
        raise FsError("EINVAL", where, f"'{name}' is not allowed as a name")
    size = utf8_size(name, path=where, what="name")
    if size > MAX_NAME_BYTES:
        raise FsError("EINVAL", where, f"name is {size} bytes, the limit is {MAX_NAME_BYTES}")
    return name


def split_path(path: str) -> list[str]:
    """'/a//b/' -> ['a', 'b']; '/' -> []. FsError EINVAL for anything that is not a path."""
    if not isinstance(path, str):
        raise FsError("EINVAL", repr(path), "path must be a string")
    if not path.startswith("/"):
        raise FsError("EINVAL", path, "path must be absolute (start with '/')")
    if "\x00" in path:
        raise FsError("EINVAL", path.replace("\x00", "\\0"), "path contains a NUL byte")
    size = utf8_size(path, path=path, what="path")
    if size > MAX_PATH_BYTES:
        raise FsError("EINVAL", path[:64] + "...", f"path is {size} bytes, limit {MAX_PATH_BYTES}")
    parts = [part for part in path.split("/") if part]
    for part in parts:
        check_name(part, path=path)
    return parts


def join_path(parts: list[str] | tuple[str, ...]) -> str:
    """['a', 'b'] -> '/a/b'."""
    return "/" + "/".join(parts)


def normalise(path: str) -> str:
    """The canonical form of a valid path."""
    return join_path(split_path(path))


def is_within(path: list[str], ancestor: list[str]) -> bool:
    """True if `path` is `ancestor` or lies below it."""
    return path[: len(ancestor)] == ancestor
