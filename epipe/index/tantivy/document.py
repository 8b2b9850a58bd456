"""A Document as tantivy holds it: the fields of tantivy-fields.json, and the whole
document as JSON in `source`, which is what reads return.

Two ways to hand tantivy a document's `fields` (one list of them): `as_json`, as JSON
text for `IndexWriter.add_json` (parsed in Rust: about half the time of building it
here), and `to_tantivy`, a tantivy.Document built field by field, for the documents that
text cannot carry exactly (see `as_json`)."""

from __future__ import annotations

import base64
import math
import re
from datetime import datetime
from typing import Any, cast

import orjson
import tantivy

from epipe.index.document import MAX_TEXT_BYTES, Document, annotation_text, indexed_annotations

try:  # the compiled twins of the two checks below, built by `make install` (hatch_build.py)
    from epipe.index.tantivy import _plain
except ImportError:  # no compiler where epipe was installed: the definitions themselves
    _plain = None  # type: ignore[assignment]


def fields(doc: Document) -> dict[str, Any]:
    """The values of each field of tantivy-fields.json for `doc` (times as ISO text, `source`
    as bytes); a field without a value is left out."""
    source = orjson.dumps(doc)
    out: dict[str, Any] = {
        "id": doc["id"],
        "ancestors": doc["ancestors"],
        "name_sort": doc["name"],
        "path": doc["path"],
        "kind": doc["kind"],
        "ext": doc["ext"],
        "owner": doc["owner"],
        "group": doc["group"],
        "size": doc["size"],
        "mtime": doc["mtime"],
        "ctime": doc["ctime"],
        # free text: each place a word can be found scores its own weight (index.scoring)
        "name_words": doc["name"],
        "path_words": doc["path"].rpartition("/")[0],
        "version": doc["version"],
        "source": source,
    }
    if doc["parent_id"] is not None:
        out["parent_id"] = doc["parent_id"]
    if doc["artifact"] is not None:
        out["artifact"] = doc["artifact"]
    if doc["project"] is not None:
        out["project"] = doc["project"]
    if doc["xattrs"]:  # no string can be too long to index in a short document
        xattrs = indexed_annotations(doc["xattrs"])
        out["annotations"] = xattrs if len(source) <= MAX_TEXT_BYTES else _indexable(xattrs)
        out["annotation_words"] = annotation_words(doc["xattrs"])
    return out


def annotation_words(xattrs: dict[str, Any]) -> str:
    """`annotation_text` with JSON's quotes as spaces: the same words (tantivy's tokenizer
    splits at either), and text that tantivy's JSON reader takes without unescaping a quote
    around every key and string (5 % of the engine's CPU for a bench image)."""
    return annotation_text(xattrs).replace('"', " ")


_UNSIGNED = frozenset({"id", "parent_id", "size", "version"})
_DATES = frozenset({"mtime", "ctime"})


def to_tantivy(doc: Document) -> tantivy.Document:
    """`fields(doc)` as a tantivy.Document built field by field."""
    out = tantivy.Document()
    for name, value in fields(doc).items():
        if name == "ancestors":
            for ancestor in value:
                out.add_unsigned(name, ancestor)
        elif name in _UNSIGNED:
            out.add_unsigned(name, value)
        elif name in _DATES:
            out.add_date(name, datetime.fromisoformat(value))
        elif name == "annotations":
            out.add_json(name, value)
        elif name == "source":
            out.add_bytes(name, value)
        else:
            out.add_text(name, value)
    return out


def as_json(doc: Document) -> str | None:
    """`fields(doc)` as the JSON text `IndexWriter.add_json` reads, or None when that text
    would not index what `to_tantivy` does:
    - a time that is not an ISO 8601 time with its offset as Python writes it, between
      1678 and 2261 (outside those years tantivy's date fields hold no time; the
      field-by-field path refuses it with the message it always gave);
    - a fraction or exponent in the annotations that tantivy's JSON reader would not read
      back as the same double. It reads digits times 10^exponent in one rounded operation
      (serde_json without its `float_roundtrip` feature), exact only while the digits fit a
      double's 53 bits and 10^exponent is exact (|exponent| ≤ 22); orjson writes the
      shortest text of a double, which may need 17 digits."""
    if not (plain_time(doc["mtime"]) and plain_time(doc["ctime"])):
        return None
    if doc["xattrs"] and not exact_numbers(doc["xattrs"]):
        return None
    out = fields(doc)
    out["source"] = base64.b64encode(out["source"]).decode()  # how JSON text holds bytes
    return orjson.dumps(out).decode()


# What `datetime.isoformat` writes for an aware time (second 60 is RFC 3339's but not
# Python's: left to the field-by-field path, which refuses it as before).
_ISO = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{6})?[+-][0-9]{2}:[0-9]{2}"
)
_EXACT_DIGITS = 2**53
_EXACT_POWER = 22  # 10^22 is the largest power of ten a double holds exactly


def plain_time_python(text: str) -> bool:
    """Whether `text` is a time as `as_json` hands tantivy (what `datetime.isoformat` writes
    for an aware time in tantivy's years)."""
    return _ISO.fullmatch(text) is not None and "1678" <= text[:4] <= "2261"


def exact_numbers_python(value: Any) -> bool:
    """Whether tantivy reads every double in `value` back from orjson's text of it (its
    digits and power of ten, e.g. 0.938 is 938 and -3). Integers are read exactly."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)  # exact types: a walk over every document's annotations
        if kind is dict:
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is float:
            if not math.isfinite(item):
                return False  # orjson writes null: left to the field-by-field path
            mantissa, _, exponent = orjson.dumps(item).partition(b"e")
            whole, _, fraction = mantissa.partition(b".")
            digits = int(whole.lstrip(b"-") + fraction)
            power = int(exponent or b"0") - len(fraction)
            if digits > _EXACT_DIGITS or abs(power) > _EXACT_POWER:
                return False
    return True


def _compiled_exact_numbers(value: Any) -> bool:
    return _plain.exact_numbers(value, orjson.dumps)


# the compiled twins where they were built: a tenth of the index consumer's time in Python
COMPILED = _plain is not None
plain_time = plain_time_python if _plain is None else _plain.plain_time
exact_numbers = exact_numbers_python if _plain is None else _compiled_exact_numbers


def stored(searcher: tantivy.Searcher, address: tantivy.DocAddress) -> Document:
    """The document stored at `address`."""
    doc: Document = orjson.loads(cast(bytes, searcher.doc(address).get_first("source")))
    return doc


def ids(searcher: tantivy.Searcher, addresses: list[tantivy.DocAddress]) -> list[int]:
    """The inode ids of the documents at `addresses` (a fast field: no document is read)."""
    return cast(list[int], searcher.fast_field_values("id", addresses))


def _indexable(xattrs: Any) -> Any:
    """Strings longer than MAX_TEXT_BYTES stay in the source but are not indexed as terms."""
    if isinstance(xattrs, dict):
        return {
            k: _indexable(v)
            for k, v in xattrs.items()
            if not (isinstance(v, str) and len(v.encode()) > MAX_TEXT_BYTES)
        }
    if isinstance(xattrs, list):
        return [
            _indexable(v)
            for v in xattrs
            if not (isinstance(v, str) and len(v.encode()) > MAX_TEXT_BYTES)
        ]
    return xattrs
