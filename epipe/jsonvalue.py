"""JSON values read back from PostgreSQL (jsonb columns, pgoutput's text of them): every text
becomes a value and none raises. Pure. The rules: docs/xattr-values.md.

orjson reads nearly every value (the fast path). A part it cannot hold becomes `JsonText`, a
string with that part's exact JSON text and the reason, and the rest of the value is kept:
- a number beyond the range of a double (jsonb keeps up to 131,072 digits; orjson refuses);
- an array or object nested deeper than LOAD_DEPTH (never parsed: bounded work and stack);
- text that is not JSON at all (then the whole value).
Other numbers read as orjson reads them: integers within 64 bits exactly, the rest as the
nearest double.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import orjson

# Above the namespace's limit (64) even inside an aggregate of annotations, and far enough
# below orjson's (254) for events and documents that wrap a value in a few levels.
LOAD_DEPTH = 128
TOO_DEEP = f"is nested deeper than {LOAD_DEPTH} levels"  # the reasons, as `JsonText.reason`
BEYOND_DOUBLE = "holds a number beyond the range of a double"

_SPACE = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_LITERALS = (("true", True), ("false", False), ("null", None))
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)  # strings are skipped whole


class JsonText(str):
    """The exact JSON text of a part of a value that epipe cannot hold, and why (a phrase:
    "is nested deeper than 128 levels"). A string: events carry it as one."""

    reason: str

    def __new__(cls, text: str, reason: str) -> JsonText:
        self = super().__new__(cls, text)
        self.reason = reason
        return self


def load(data: str | bytes) -> Any:
    """The value of JSON text as PostgreSQL writes it; never raises."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        return _load_slowly(data)
    if brackets(data) > LOAD_DEPTH and depth(value) > LOAD_DEPTH:
        return _load_slowly(data)
    return value


def brackets(data: str | bytes) -> int:
    """Opening brackets in JSON text: a bound of its depth that costs next to nothing."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def depth(value: Any) -> int:
    """How deep arrays and objects nest in a value (a scalar: 0, `[]`: 1). Iterative."""
    deepest = 0
    stack = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest


def parts(value: Any) -> Iterator[Any]:
    """Every key and every scalar of a value. Iterative."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield from item.keys()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


def text_depth(text: str) -> int:
    """How deep arrays and objects nest in JSON text, strings skipped. Iterative: for text
    that may be too deep to parse."""
    level = deepest = 0
    for match in _BRACKETS.finditer(text):
        token = match[0]
        if token in ("[", "{"):
            level += 1
            deepest = max(deepest, level)
        elif token in ("]", "}"):
            level -= 1
    return deepest


class _NotJson(Exception):
    pass


def _load_slowly(data: str | bytes) -> Any:
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    reader = _Reader(text)
    try:
        value = reader.value(0)
        if _SPACE.match(text, reader.pos).end() != len(text):  # type: ignore[union-attr]
            raise _NotJson(f"extra data at {reader.pos}")
    except _NotJson as exc:
        return JsonText(text, f"is not JSON ({exc})")
    return value


class _Reader:
    """Recursive descent, at most LOAD_DEPTH levels: deeper parts are cut out as JsonText."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def value(self, level: int) -> Any:
        text = self.text
        pos = self._skip_space()
        char = text[pos : pos + 1]
        if char in ("[", "{"):
            if level >= LOAD_DEPTH:
                self.pos = _closing(text, pos)
                return JsonText(text[pos : self.pos], TOO_DEEP)
            return self._array(level) if char == "[" else self._object(level)
        if char == '"':
            return self._string()
        number = _NUMBER.match(text, pos)
        if number is not None:
            self.pos = number.end()
            return _number(number[0], integral=not (number[1] or number[2]))
        for word, literal in _LITERALS:
            if text.startswith(word, pos):
                self.pos = pos + len(word)
                return literal
        raise _NotJson(f"no JSON value at {pos}")

    def _array(self, level: int) -> list[Any]:
        out: list[Any] = []
        self.pos += 1
        if self._peek() == "]":
            self.pos += 1
            return out
        while True:
            out.append(self.value(level + 1))
            if self._take(",]") == "]":
                return out

    def _object(self, level: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        self.pos += 1
        if self._peek() == "}":
            self.pos += 1
            return out
        while True:
            if self._peek() != '"':
                raise _NotJson(f"a key expected at {self.pos}")
            key = self._string()
            self._take(":")
            out[key] = self.value(level + 1)  # a repeated key: the last wins, as in jsonb
            if self._take(",}") == "}":
                return out

    def _string(self) -> str:
        match = _STRING.match(self.text, self.pos)
        if match is None:
            raise _NotJson(f"bad string at {self.pos}")
        self.pos = match.end()
        token = match[0]
        return token[1:-1] if "\\" not in token else str(json.loads(token))

    def _skip_space(self) -> int:
        self.pos = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
        return self.pos

    def _peek(self) -> str:
        pos = self._skip_space()
        return self.text[pos : pos + 1]

    def _take(self, expected: str) -> str:
        char = self._peek()
        if not char or char not in expected:
            raise _NotJson(f"one of {expected!r} expected at {self.pos}")
        self.pos += 1
        return char


def _closing(text: str, start: int) -> int:
    """The end of the array or object opening at `start` (strings skipped; iterative)."""
    level = 0
    for match in _BRACKETS.finditer(text, start):
        token = match[0]
        if token in ("[", "{"):
            level += 1
        elif token in ("]", "}"):
            level -= 1
            if level == 0:
                return match.end()
    raise _NotJson(f"unclosed bracket at {start}")


def _number(text: str, *, integral: bool) -> Any:
    if integral and len(text) <= 20:
        number = int(text)
        if -(2**63) <= number < 2**64:
            return number
    nearest = float(text)
    if math.isinf(nearest):
        return JsonText(text, BEYOND_DOUBLE)
    return nearest
