"""Extended-attribute names and values: pure validation, no I/O.

Names are `user.<name>` (annotations; a bare `<name>` means the same) or `system.<name>`;
a name is shown bare in the user namespace unless it starts with a namespace's prefix
(`user.system.acl` stays exactly that), so shown names never collide (docs/namespace.md).
Values are any JSON value whose compact UTF-8 encoding is at most 64 KiB, nested at most
MAX_DEPTH levels, whose integers fit in 64 bits and whose other numbers are doubles
(docs/xattr-values.md; migration 0008 holds the database to the same limits).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, NoReturn

from epipe import jsonvalue
from epipe.errors import FsError
from epipe.fs.paths import MAX_NAME_BYTES, utf8_size

MAX_VALUE_BYTES = 64 * 1024
MAX_DEPTH = 64  # well below orjson's 255 and tantivy's ~250; jsonb itself takes ~990
MIN_INTEGER, MAX_INTEGER = -(2**63), 2**64 - 1  # what the index holds exactly
NAMESPACES = ("user", "system")
_PREFIXES = tuple(f"{namespace}." for namespace in NAMESPACES)
_LONG_DIGITS = re.compile(r"[0-9]{19}")  # an integer beyond 64 bits has at least 19 digits


def parse_name(name: str, *, path: str = "") -> tuple[str, str]:
    """'user.labels' | 'labels' -> ('user', 'labels'); 'system.x' -> ('system', 'x');
    'user.system.x' -> ('user', 'system.x'). Only the first prefix names the namespace."""
    namespace, bare = split_name(name)
    if not bare:
        raise FsError("EINVAL", path, f"xattr name {name!r} is empty")
    if "\x00" in bare:
        raise FsError("EINVAL", path, "xattr name contains a NUL byte")
    size = utf8_size(bare, path=path, what="xattr name")
    if size > MAX_NAME_BYTES:
        raise FsError("EINVAL", path, f"xattr name is {size} bytes, limit {MAX_NAME_BYTES}")
    return namespace, bare


def split_name(name: str) -> tuple[str, str]:
    """The namespace and the name in it of a shown name, unchecked (parse_name checks)."""
    namespace, dot, rest = name.partition(".")
    if dot and namespace in NAMESPACES:
        return namespace, rest
    return "user", name


def display_name(namespace: str, name: str) -> str:
    """How a name is shown: annotations bare, unless the bare name would read as another
    namespace's (`user.system.acl`); system attributes with their prefix. The inverse of
    parse_name: every (namespace, name) has one shown name and no two share it."""
    if namespace == "user" and not name.startswith(_PREFIXES):
        return name
    return f"{namespace}.{name}"


def parse_value(text: str, *, path: str = "") -> Any:
    """JSON text -> value, FsError EINVAL if it is not JSON or breaks a limit."""
    if jsonvalue.brackets(text) > MAX_DEPTH and (levels := jsonvalue.text_depth(text)) > MAX_DEPTH:
        _too_deep(path, levels)  # before parsing: a deep text exhausts the stack

    def reject_constant(token: str) -> Any:
        raise ValueError(f"{token} is not valid JSON")

    def integer(token: str) -> int:
        # a longer token is out of range: no int() of up to 4,300 digits
        if len(token) > 20 or not MIN_INTEGER <= int(token) <= MAX_INTEGER:
            _integer_out_of_range(path, token)
        return int(token)

    def number(token: str) -> float:
        value = float(token)
        if math.isinf(value):
            _refuse(path, f"number {_short(token)} is beyond the range of a double (1.8e308)")
        if value == 0 and any(digit in "123456789" for digit in token.lower().partition("e")[0]):
            _refuse(path, f"number {_short(token)} is too small for a double (it would read 0)")
        return value

    try:
        value = json.loads(
            text, parse_constant=reject_constant, parse_int=integer, parse_float=number
        )
    except (ValueError, RecursionError) as exc:
        raise FsError("EINVAL", path, f"xattr value is not valid JSON: {exc}") from None
    encode_value(value, path=path)
    return value


def encode_value(value: Any, *, path: str = "") -> str:
    """The compact JSON text stored for `value`, after checking size and content."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        _too_deep(path, jsonvalue.depth(value))
    except (TypeError, ValueError) as exc:
        raise FsError("EINVAL", path, f"xattr value is not JSON-serialisable: {exc}") from None
    size = utf8_size(text, path=path, what="xattr value")
    if size > MAX_VALUE_BYTES:
        raise FsError("EINVAL", path, f"xattr value is {size} bytes, the limit is 65536")
    # the scans below run only when a cheap look at the text says they may find something
    if jsonvalue.brackets(text) > MAX_DEPTH and (levels := jsonvalue.depth(value)) > MAX_DEPTH:
        _too_deep(path, levels)
    if _LONG_DIGITS.search(text):
        for part in jsonvalue.parts(value):
            if isinstance(part, int) and not MIN_INTEGER <= part <= MAX_INTEGER:
                _integer_out_of_range(path, str(part))
    if "\\u0000" in text and any(
        isinstance(part, str) and "\x00" in part for part in jsonvalue.parts(value)
    ):
        raise FsError("EINVAL", path, "xattr value contains a NUL character")
    return text


def _refuse(path: str, detail: str) -> NoReturn:
    raise FsError("EINVAL", path, f"xattr value: {detail}")


def _too_deep(path: str, levels: int) -> NoReturn:
    _refuse(path, f"arrays and objects nest {levels} levels deep; the limit is {MAX_DEPTH}")


def _integer_out_of_range(path: str, token: str) -> NoReturn:
    _refuse(
        path,
        f"integer {_short(token)} is outside -2^63 .. 2^64-1, what the index holds exactly; "
        "write it as a string to keep every digit",
    )


def _short(token: str) -> str:
    """A number as an error message shows it: long ones cut, with their length."""
    return token if len(token) <= 24 else f"{token[:12]}…({len(token)} characters)"
