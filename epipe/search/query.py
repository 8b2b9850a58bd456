"""The query model of `GET /v1/search` and `epipe search`, and the parser of xattr
predicates: pure.

Predicates: `PATH OP VALUE` or `PATH exists`, e.g. `labels.objects.bicycle>3`,
`labels.camera=front`, `labels.weather exists`. PATH is dotted keys, the first naming the
xattr (`system.acl` for a system attribute); a key with characters outside letters, digits,
`_` and `-` is double-quoted (`labels."weird key".x>1`). OP is one of = != > >= < <=.
VALUE is a number, true, false, null, a double-quoted string, or a bare word.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from epipe.errors import EpipeError

Operator = Literal["=", "!=", ">", ">=", "<", "<=", "exists"]
Sort = Literal["score", "name", "-name", "path", "-path", "size", "-size", "mtime", "-mtime"]
SORTS: tuple[str, ...] = get_args(Sort)
MAX_LIMIT = 1000
_OPERATORS = ("!=", ">=", "<=", "=", ">", "<")
_BARE_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


class QueryError(EpipeError):
    """A malformed query; `part` names what is wrong (for a 400 answer)."""

    def __init__(self, part: str, message: str) -> None:
        self.part = part
        super().__init__(f"{part}: {message}")


@dataclass(frozen=True)
class Predicate:
    keys: tuple[str, ...]  # the xattr's display name, then keys inside its value
    op: Operator
    value: str | int | float | bool | None = None

    @property
    def text(self) -> str:
        shown = ".".join(k if _BARE_KEY.fullmatch(k) else json.dumps(k) for k in self.keys)
        if self.op == "exists":
            return f"{shown} exists"
        return f"{shown}{self.op}{json.dumps(self.value)}"


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None
    under: str | None = None
    type: Literal["file", "dir"] | None = None
    ext: str | None = None
    owner: str | None = None
    size_min: int | None = None
    size_max: int | None = None
    modified_after: datetime | None = None
    modified_before: datetime | None = None
    xattr: tuple[Predicate, ...] = ()
    sort: Sort = "score"
    limit: int = 20
    offset: int = 0
    projects: frozenset[str] | None = None  # None: every file (the superuser)
    after: tuple[Any, int] | None = None  # keyset cursor: (sort key, id) of the last hit seen

    @property
    def effective_sort(self) -> str:
        """Relevance needs words to rank by; without them results go in path order."""
        return self.sort if self.sort != "score" or self.text else "path"

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError("limit", f"must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if self.sort not in SORTS:
            raise QueryError("sort", f"must be one of {', '.join(SORTS)}")
        for name in ("size_min", "size_max"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise QueryError(name, "must be >= 0")
        if self.type not in (None, "file", "dir"):
            raise QueryError("type", "must be file or dir")
        for name in ("modified_after", "modified_before"):  # a time without a zone is UTC
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))


def parse_predicate(text: str) -> Predicate:
    """'labels.objects.bicycle>3' -> Predicate(('labels', 'objects', 'bicycle'), '>', 3)."""
    source = text.strip()
    keys, rest = _keys(source, text)
    rest = rest.strip()
    if rest == "exists":
        return Predicate(keys, "exists")
    for op in _OPERATORS:
        if rest.startswith(op):
            value = _value(rest[len(op) :].strip(), text)
            if op in (">", ">=", "<", "<=") and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise QueryError(f"xattr {text!r}", f"{op} compares numbers; got {value!r}")
            return Predicate(keys, op, value)  # type: ignore[arg-type]
    raise QueryError(
        f"xattr {text!r}", "expected an operator (= != > >= < <=) or 'exists' after the key path"
    )


def _keys(source: str, text: str) -> tuple[tuple[str, ...], str]:
    keys: list[str] = []
    pos = 0
    while True:
        if pos < len(source) and source[pos] == '"':
            end = pos + 1
            while end < len(source) and source[end] != '"':
                end += 2 if source[end] == "\\" else 1
            if end >= len(source):
                raise QueryError(f"xattr {text!r}", "unterminated quoted key")
            try:
                keys.append(json.loads(source[pos : end + 1]))
            except json.JSONDecodeError as exc:
                raise QueryError(f"xattr {text!r}", f"bad quoted key: {exc}") from None
            pos = end + 1
        else:
            match = _BARE_KEY.match(source, pos)
            if match is None:
                raise QueryError(
                    f"xattr {text!r}", f"expected a key at position {pos + 1} (quote unusual keys)"
                )
            keys.append(match.group())
            pos = match.end()
        if pos < len(source) and source[pos] == ".":
            pos += 1
            continue
        break
    if keys[0] == "system" and len(keys) > 1:  # system.acl is one xattr name
        keys = [f"system.{keys[1]}", *keys[2:]]
    elif keys[0] == "user" and len(keys) > 1:
        keys = keys[1:]
    return tuple(keys), source[pos:]


def _value(text: str, whole: str) -> str | int | float | bool | None:
    if not text:
        raise QueryError(f"xattr {whole!r}", "missing value after the operator")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if _NUMBER.fullmatch(text):
        number: int | float = json.loads(text)
        if (isinstance(number, int) and not -(2**63) <= number < 2**63) or (
            isinstance(number, float) and not math.isfinite(number)
        ):
            raise QueryError(f"xattr {whole!r}", f"number {text} is out of range")
        return number
    if text.startswith('"'):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise QueryError(f"xattr {whole!r}", f"bad quoted value: {exc}") from None
        if not isinstance(value, str):
            raise QueryError(f"xattr {whole!r}", "a quoted value must be a string")
        return value
    return text
