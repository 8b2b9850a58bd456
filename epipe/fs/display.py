"""How names, values and times are shown to people: pure functions, no I/O.

A name may hold any character but `/` and NUL, so printed raw it could split a listing into
false lines or drive the terminal (ESC sequences). Human output goes through `escape`, in
the style of GNU `ls --quoting-style=escape`; JSON output keeps the exact text, with the
characters JSON leaves alone but terminals act on written as `\\uXXXX`.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

_C_ESCAPES = {
    "\\": "\\\\",  # escaped too, so that `a\nb` printed always means a newline in the name
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
}
# controls (C0, DEL, C1), lone surrogates, and the line and paragraph separators
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# what json.dumps(ensure_ascii=False) leaves raw of the above (it escapes C0 itself)
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def escape(text: str) -> str:
    """`text` printable on one line: backslash, controls and separators escaped.

    C escapes where C has one (`\\n`, `\\t`, ...), else the octal of the UTF-8 bytes
    (ESC is `\\033`, U+009B is `\\302\\233`); an undecodable byte of the command line
    (a surrogate escape) is the octal of that byte. Spaces stay as they are."""
    if text.isprintable() and "\\" not in text:
        return text  # the usual name, at C speed
    return "".join(_escape_char(char) for char in text)


def _escape_char(char: str) -> str:
    if char in _C_ESCAPES:
        return _C_ESCAPES[char]
    if unicodedata.category(char) not in _UNSAFE_CATEGORIES:
        return char
    try:
        raw = char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate that stands for no byte
        raw = char.encode("utf-8", "surrogatepass")
    return "".join(f"\\{byte:03o}" for byte in raw)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """`value` as JSON text that decodes to the exact value and holds no raw control."""
    text = json.dumps(value, ensure_ascii=False, indent=indent)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def utc_iso(when: datetime) -> str:
    """An aware time as ISO 8601 in UTC: '2026-11-30T16:07:41.500000+00:00'."""
    return when.astimezone(UTC).isoformat()


def utc_minute(when: datetime) -> str:
    """An aware time to the minute, ISO 8601 in UTC, for listings: '2026-11-30T16:07Z'."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
