"""A Document as tantivy holds it: the fields of tantivy-fields.json, and the whole
document as JSON in `source`, which is what reads return."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import orjson
import tantivy

from epipe.index.document import MAX_TEXT_BYTES, Document, annotation_text, indexed_annotations


def to_tantivy(doc: Document) -> tantivy.Document:
    out = tantivy.Document()
    out.add_unsigned("id", doc["id"])
    if doc["parent_id"] is not None:
        out.add_unsigned("parent_id", doc["parent_id"])
    for ancestor in doc["ancestors"]:
        out.add_unsigned("ancestors", ancestor)
    out.add_text("name_sort", doc["name"])
    out.add_text("path", doc["path"])
    out.add_text("kind", doc["kind"])
    out.add_text("ext", doc["ext"])
    if doc["artifact"] is not None:
        out.add_text("artifact", doc["artifact"])
    out.add_text("owner", doc["owner"])
    out.add_text("group", doc["group"])
    if doc["project"] is not None:
        out.add_text("project", doc["project"])
    out.add_unsigned("size", doc["size"])
    out.add_date("mtime", datetime.fromisoformat(doc["mtime"]))
    out.add_date("ctime", datetime.fromisoformat(doc["ctime"]))
    source = orjson.dumps(doc)
    if doc["xattrs"]:  # no string can be too long to index in a short document
        xattrs = indexed_annotations(doc["xattrs"])
        out.add_json("annotations", xattrs if len(source) <= MAX_TEXT_BYTES else _indexable(xattrs))
    # free text: each place a word can be found scores its own weight (epipe.index.scoring)
    out.add_text("name_words", doc["name"])
    out.add_text("path_words", doc["path"].rpartition("/")[0])
    if doc["xattrs"]:
        out.add_text("annotation_words", annotation_text(doc["xattrs"]))
    out.add_unsigned("version", doc["version"])
    out.add_bytes("source", source)
    return out


def stored(searcher: tantivy.Searcher, address: tantivy.DocAddress) -> Document:
    """The document stored at `address`."""
    doc: Document = orjson.loads(searcher.doc(address)["source"][0])
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
