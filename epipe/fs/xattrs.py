"""Extended-attribute names and values: pure validation, no I/O.

Names are `user.<name>` (annotations; a bare `<name>` means the same) or `system.<name>`.
Values are any JSON value whose compact UTF-8 encoding is at most 64 KiB.
"""

from __future__ import annotations

import json
from typing import Any

from epipe.errors import FsError
from epipe.fs.paths import MAX_NAME_BYTES, utf8_size

MAX_VALUE_BYTES = 64 * 1024
NAMESPACES = ("user", "system")


def parse_name(name: str, *, path: str = "") -> tuple[str, str]:
    """'user.labels' | 'labels' -> ('user', 'labels'); 'system.x' -> ('system', 'x')."""
    namespace, dot, rest = name.partition(".")
    if dot and namespace in NAMESPACES:
        bare = rest
    else:
        namespace, bare = "user", name
    if not bare:
        raise FsError("EINVAL", path, f"xattr name {name!r} is empty")
    if "\x00" in bare:
        raise FsError("EINVAL", path, "xattr name contains a NUL byte")
    size = utf8_size(bare, path=path, what="xattr name")
    if size > MAX_NAME_BYTES:
        raise FsError("EINVAL", path, f"xattr name is {size} bytes, limit {MAX_NAME_BYTES}")
    return namespace, bare


def display_name(namespace: str, name: str) -> str:
    """How a name is shown: annotations bare, system attributes with their prefix."""
    return name if namespace == "user" else f"{namespace}.{name}"


def parse_value(text: str, *, path: str = "") -> Any:
    """JSON text -> value, FsError EINVAL if it is not JSON."""

    def reject_constant(token: str) -> Any:
        raise ValueError(f"{token} is not valid JSON")

    try:
        value = json.loads(text, parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:
        raise FsError("EINVAL", path, f"xattr value is not valid JSON: {exc}") from None
    encode_value(value, path=path)
    return value


def encode_value(value: Any, *, path: str = "") -> str:
    """The compact JSON text stored for `value`, after checking size and content."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise FsError("EINVAL", path, f"xattr value is not JSON-serialisable: {exc}") from None
    size = utf8_size(text, path=path, what="xattr value")
    if size > MAX_VALUE_BYTES:
        raise FsError("EINVAL", path, f"xattr value is {size} bytes, the limit is 65536")
    if "\\u0000" in text and _contains_nul(value):
        raise FsError("EINVAL", path, "xattr value contains a NUL character")
    return text


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(v) for v in value)
    return False
