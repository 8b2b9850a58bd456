"""The query model of `GET /v1/search` and `epipe search`, and the parser of xattr
predicates: pure.

Predicates: `PATH OP VALUE` or `PATH exists`, e.g. `labels.objects.bicycle>3`,
`labels.camera=front`, `labels.weather exists`. PATH is dotted keys, the first naming the
xattr; a first key `system` or `user` followed by more names the namespace (`system.acl`,
`user.system.acl`), otherwise it is `user` (docs/namespace.md, "xattr names"). A key with
characters outside letters, digits, `_` and `-` is double-quoted (`labels."weird key".x>1`);
a quoted key is never split, so `"system.acl"` is the annotation of that name. OP is one of
= != > >= < <=. VALUE is a number, true, false, null, a double-quoted string, or a bare word.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from epipe.errors import EpipeError
from epipe.prov.artifacts import KINDS
from epipe.search.words import MAX_WORD_BYTES, words

Operator = Literal["=", "!=", ">", ">=", "<", "<=", "exists"]
Sort = Literal["score", "name", "-name", "path", "-path", "size", "-size", "mtime", "-mtime"]
SORTS: tuple[str, ...] = get_args(Sort)
MAX_LIMIT = 1000
_OPERATORS = ("!=", ">=", "<=", "=", ">", "<")
_BARE_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_MAX_INTEGER_DIGITS = 20  # 2^64 has 20 digits: a longer integer is out of range
NAMESPACES = ("user", "system")  # as epipe.fs.xattrs names them
_UNNAMEABLE = ("\x00", "\x01")  # the engines end and separate JSON paths with these


class QueryError(EpipeError):
    """A malformed query; `part` names what is wrong (for a 400 answer)."""

    def __init__(self, part: str, message: str) -> None:
        self.part = part
        super().__init__(f"{part}: {message}")


@dataclass(frozen=True)
class Predicate:
    keys: tuple[str, ...]  # the xattr's name in its namespace, then keys inside its value
    op: Operator
    value: str | int | float | bool | None = None
    namespace: Literal["user", "system"] = "user"

    @property
    def path(self) -> tuple[str, ...]:
        """Where the engines index the value: the namespace first (a user's key cannot
        reach another namespace; epipe.index.document.indexed_annotations)."""
        return (self.namespace, *self.keys)

    @property
    def text(self) -> str:
        keys = self.keys
        if self.namespace != "user" or (keys[0] in NAMESPACES and len(keys) > 1):
            keys = self.path
        shown = ".".join(k if _BARE_KEY.fullmatch(k) else json.dumps(k) for k in keys)
        if self.op == "exists":
            return f"{shown} exists"
        return f"{shown}{self.op}{json.dumps(self.value)}"


@dataclass(frozen=True)
class SearchQuery:
    text: str | None = None  # free text: every word (epipe.search.words) must match
    under: str | None = None
    type: Literal["file", "dir"] | None = None
    ext: str | None = None
    artifact: str | None = None  # one of epipe.prov.artifacts.KINDS
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
        if self.text is not None and not words(self.text):  # blank, or no letter or digit
            raise QueryError(
                "q",
                "has no searchable words (a word is a run of letters or digits, shorter "
                f"than {MAX_WORD_BYTES} bytes); leave q out to match every file",
            )
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
        if self.artifact is not None and self.artifact not in KINDS:
            raise QueryError(
                "artifact", f"must be one of {', '.join(KINDS)}; got {self.artifact!r}"
            )
        for name in ("modified_after", "modified_before"):  # a time without a zone is UTC
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))


def parse_predicate(text: str) -> Predicate:
    """'labels.objects.bicycle>3' -> Predicate(('labels', 'objects', 'bicycle'), '>', 3)."""
    source = text.strip()
    namespace, keys, rest = _keys(source, text)
    rest = rest.strip()
    if rest == "exists":
        return Predicate(keys, "exists", namespace=namespace)
    for op in _OPERATORS:
        if rest.startswith(op):
            value = _value(rest[len(op) :].strip(), text)
            if op in (">", ">=", "<", "<=") and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise QueryError(f"xattr {text!r}", f"{op} compares numbers; got {value!r}")
            return Predicate(keys, op, value, namespace)  # type: ignore[arg-type]
    raise QueryError(
        f"xattr {text!r}", "expected an operator (= != > >= < <=) or 'exists' after the key path"
    )


def _keys(source: str, text: str) -> tuple[Literal["user", "system"], tuple[str, ...], str]:
    keys: list[str] = []
    bare: list[bool] = []
    pos = 0
    while True:
        bare.append(not (pos < len(source) and source[pos] == '"'))
        if not bare[-1]:
            end = pos + 1
            while end < len(source) and source[end] != '"':
                end += 2 if source[end] == "\\" else 1
            if end >= len(source):
                raise QueryError(f"xattr {text!r}", "unterminated quoted key")
            try:
                keys.append(json.loads(source[pos : end + 1]))
            except json.JSONDecodeError as exc:
                raise QueryError(f"xattr {text!r}", f"bad quoted key: {exc}") from None
            if not keys[-1] or any(c in keys[-1] for c in _UNNAMEABLE):
                raise QueryError(
                    f"xattr {text!r}", f"key {len(keys)} is empty or holds a 0x00 or 0x01 byte"
                )
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
    if bare[0] and len(keys) > 1 and keys[0] in ("user", "system"):
        return keys[0], tuple(keys[1:]), source[pos:]  # type: ignore[return-value]
    return "user", tuple(keys), source[pos:]


def _value(text: str, whole: str) -> str | int | float | bool | None:
    if not text:
        raise QueryError(f"xattr {whole!r}", "missing value after the operator")
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if match := _NUMBER.fullmatch(text):
        if not match[2] and not match[3] and len(match[1]) > _MAX_INTEGER_DIGITS:
            # beyond 64 bits, and int() refuses more than 4,300 digits
            raise QueryError(
                f"xattr {whole!r}", f"number of {len(match[1])} digits is out of range"
            )
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
