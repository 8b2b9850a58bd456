"""The search document of an inode: built from its current row, pure.

    {id, parent_id, name, path, ancestors, kind, ext, artifact, size, mode, owner, group,
     project, mtime, ctime, xattrs, version} (+ skipped)

`ancestors` (ids of every directory above, root first) make subtree search one term query
and keep working after renames of the ancestors' names (ids never change); a directory move
rewrites the moved subtree's documents. `artifact` is the entry's artifact kind, from its
own name (epipe.prov.artifacts.classify): a rename rewrites the document, and so the kind.
`xattrs` maps display names (`labels`, `user.system.acl`, `system.acl`) to the JSON values;
the engines index them by namespace (`indexed_annotations`), so no user key reaches a system
attribute's path. Annotations the
index cannot hold (more than MAX_ANNOTATION_VALUES leaf values, nested deeper than MAX_DEPTH,
a part epipe could not read as a value) are left out, named in `skipped`, and reported with
the reason.
docs/search-index.md has the rationale; schemas/index/document.schema.json the shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, NotRequired, TypedDict

import orjson

from epipe import jsonvalue
from epipe.fs.reader import path_of
from epipe.fs.xattrs import MAX_DEPTH, split_name
from epipe.prov.artifacts import classify


class Document(TypedDict):
    """One inode's document, as schemas/index/document.schema.json draws it."""

    id: int
    parent_id: int | None  # None: the root
    name: str
    path: str
    ancestors: list[int]  # ids of the directories above, root first
    kind: Literal["file", "dir"]
    ext: str  # lower-case extension of a file's name, '' if none
    artifact: str | None  # model, dataset, …: epipe.prov.artifacts.KINDS; None if none
    size: int
    mode: int
    owner: str
    group: str
    project: str | None  # <p> of /Projects/<p>/...
    mtime: str  # ISO 8601
    ctime: str
    xattrs: dict[str, Any]  # display name (labels, system.acl) -> JSON value
    version: int  # commit LSN of the change last applied (or of the rebuild's snapshot)
    skipped: NotRequired[list[str]]  # xattrs left out: too many values to index


FIELDS: tuple[str, ...] = tuple(Document.__annotations__)  # in the schema's order

MAX_ANNOTATION_VALUES = 10_000  # Elasticsearch's nested-object limit per document
MAX_TEXT_BYTES = 8_191  # longer strings are not indexed as exact terms (still stored)


def extension(name: str, kind: str) -> str:
    """Lower-case extension of a file name ('' for directories and names without one)."""
    if kind != "file":
        return ""
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem and ext else ""


def project_of(path: str) -> str | None:
    """'/Projects/cars/x' -> 'cars'; None outside /Projects/<name>."""
    parts = path.split("/")
    return parts[2] if len(parts) > 2 and parts[1] == "Projects" and parts[2] else None


def leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every scalar in a JSON value with its dotted key path; array items share their key.
    (Iterative, in document order: this runs for every document indexed.)"""
    out: list[tuple[str, Any]] = []
    stack: list[tuple[str, Any]] = [(prefix, value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{key}.{k}" if key else str(k), v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((key, v) for v in reversed(item))
        else:
            out.append((key, item))
    return out


def indexed_annotations(xattrs: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The annotations as the engines index them: {namespace: {name in it: value}}, e.g.
    {"user": {"labels": …, "system.acl": …}, "system": {"acl": …}}. Predicates name these
    paths (`Predicate.path`); the engines split keys at dots, and the namespace level keeps
    a user's `system.acl` (or `system` holding `acl`) from meeting the system `acl`."""
    out: dict[str, dict[str, Any]] = {}
    for shown, value in xattrs.items():
        namespace, name = split_name(shown)
        out.setdefault(namespace, {})[name] = value
    return out


def build(
    row: dict[str, Any],
    names: list[str],
    ancestors: list[int],
    xattrs: dict[str, Any] | None,
    version: int,
) -> tuple[Document, list[str]]:
    """The document of one inode, and why each xattr left out of it was
    ("annotation NAME has more than 10,000 values").

    `row`: id, parent_id, name, kind ('file'|'dir'), size, mode, owner, group, mtime, ctime
    (datetimes); `names`: the names from the root down to the inode; `ancestors`: the ids
    above it, root first."""
    path = path_of(names)
    kept: dict[str, Any] = {}
    skipped: list[str] = []
    reasons: list[str] = []
    if not isinstance(xattrs, dict | None):  # not an object: nothing to take apart
        xattrs, reasons = None, [f"annotations cannot be read: {_cut(str(xattrs))}"]
    for name, value in sorted((xattrs or {}).items()):
        reason = unindexable(value)
        if reason is None:
            kept[name] = value
        else:
            skipped.append(name)
            reasons.append(f"annotation {name} {reason}")
    doc: Document = {
        "id": row["id"],
        "parent_id": row["parent_id"],
        "name": row["name"] if row["parent_id"] is not None else "/",
        "path": path,
        "ancestors": ancestors,
        "kind": row["kind"],
        "ext": extension(row["name"], row["kind"]),
        "artifact": classify(row["name"], directory=row["kind"] == "dir"),
        "size": row["size"],
        "mode": row["mode"],
        "owner": row["owner"],
        "group": row["group"],
        "project": project_of(path),
        "mtime": _iso(row["mtime"]),
        "ctime": _iso(row["ctime"]),
        "xattrs": kept,
        "version": version,
    }
    if skipped:
        doc["skipped"] = skipped
    return doc, reasons


def relocated(doc: Document, names: list[str], ancestors: list[int], version: int) -> Document:
    """The document of an inode whose directory moved: what its place decides (path,
    ancestors, project) made anew, the rest as stored. (A move changes no other column of
    the entries below the moved directory.)"""
    path = path_of(names)
    return {
        **doc,
        "path": path,
        "ancestors": ancestors,
        "project": project_of(path),
        "version": version,
    }


def without_annotations(doc: Document) -> Document:
    """The document with every annotation left out (and named in `skipped`)."""
    return {**doc, "xattrs": {}, "skipped": sorted([*doc.get("skipped", []), *doc["xattrs"]])}


def unindexable(value: Any) -> str | None:
    """Why an annotation cannot be indexed ("is nested deeper than 64 levels"), or None.
    One orjson pass (which every document takes anyway) finds what it cannot encode; the
    counts run only when the encoded size says they might find something."""
    unreadable: list[str] = []

    def refuse(part: Any) -> Any:
        unreadable.append(getattr(part, "reason", f"holds a {type(part).__name__}"))
        raise TypeError

    try:
        encoded = orjson.dumps(value, default=refuse, option=orjson.OPT_PASSTHROUGH_SUBCLASS)
    except orjson.JSONEncodeError as exc:
        if unreadable:
            return _ENCODING_REASONS.get(unreadable[0], unreadable[0])
        return _ENCODING_REASONS.get(str(exc), f"cannot be encoded as JSON ({exc})")
    if jsonvalue.brackets(encoded) > MAX_DEPTH and jsonvalue.depth(value) > MAX_DEPTH:
        return f"is nested deeper than {MAX_DEPTH} levels"
    # a leaf takes at least 2 bytes of JSON ("0,"): shorter values need no counting
    if len(encoded) > 2 * MAX_ANNOTATION_VALUES and len(leaves(value)) > MAX_ANNOTATION_VALUES:
        return f"has more than {MAX_ANNOTATION_VALUES:,} values"
    return None


_ENCODING_REASONS = {  # what orjson and the reader say, as the reason a user reads
    jsonvalue.TOO_DEEP: f"is nested deeper than {MAX_DEPTH} levels",
    "Recursion limit reached": f"is nested deeper than {MAX_DEPTH} levels",
    "Integer exceeds 64-bit range": "holds an integer beyond 64 bits",
    "str is not valid UTF-8: surrogates not allowed": "holds text that is not valid Unicode",
}


def _cut(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:80]}…"


def annotation_text(xattrs: dict[str, Any]) -> str:
    """What free text searches in the annotations: their JSON text, whose words are the keys
    and the values (the engines' tokenizers split on punctuation; built in C, this costs
    little per document)."""
    return orjson.dumps(xattrs).decode()


def _iso(value: datetime | str) -> str:
    return value if isinstance(value, str) else value.isoformat()
