"""Values past the limits of docs/xattr-values.md on the real server: the database refuses what
the namespace layer refuses, and rows that hold such values anyway (written before migration
0008) are read, left out of the index with the reason, and never stop anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from epipe.errors import FsError
from epipe.fs.namespace import Namespace, translate_error
from epipe.fs.reader import NamespaceReader
from epipe.fs.xattrs import MAX_DEPTH, parse_value
from epipe.index.document import build
from epipe.index.engine import upsert_files
from epipe.index.rebuild import rebuild
from epipe.index.state import DocumentSource
from epipe.index.tantivy import TantivyStore
from epipe.index.verify import verify
from epipe.jsonvalue import JsonText
from epipe.pipeline.store import PipelineStore
from epipe.search.query import SearchQuery
from tests.integration.helpers import older_row, snapshot
from tests.integration.pipeline_helpers import index_consumer, running
from tests.json_texts import json_texts, nested

BIG = "1" + "0" * 309  # the integer of the issue: infinity as a double
POISON = {
    "big": f'{{"n": {BIG}}}',
    "deep": nested("1", 300, "object"),
    "deeper": nested("1", 990, "array"),
    "tiny": "[1e-400, 1e131071]",
}


def set_raw(conn: psycopg.Connection, path: str, name: str, text: str) -> None:
    """fs_setxattr over plain SQL, as a client that skips the namespace layer."""
    parts = path.strip("/").split("/")
    conn.execute(
        "SELECT fs_setxattr(0, NULL, %s::text[], 'user', %s, %s::jsonb)", [parts, name, text]
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (nested("1", MAX_DEPTH + 1, "mixed"), "nested more than 64 levels deep"),
        (nested("1", 990, "array"), "nested more than 64 levels deep"),
        (f"[{BIG}]", "beyond the range of a double"),
        ('{"x": 1e-400}', "beyond the range of a double"),
        ("-1.7976931348623159e308", "beyond the range of a double"),
    ],
)
def test_the_database_refuses_values_past_the_limits_from_any_client(
    ns: Namespace, conn: psycopg.Connection, text: str, reason: str
) -> None:
    ns.put("/f")
    before = snapshot(conn)
    with pytest.raises(psycopg.Error) as caught:
        set_raw(conn, "/f", "x", text)
    error = translate_error(caught.value, "/f")
    assert isinstance(error, FsError)
    assert error.code == "EINVAL"
    assert reason in str(error)
    with pytest.raises(psycopg.Error, match="EINVAL"):
        conn.execute(
            "INSERT INTO xattrs VALUES (%s, 'user', 'y', %s::jsonb)", [ns.stat("/f").id, text]
        )
    assert snapshot(conn) == before


@pytest.mark.parametrize(
    "text",
    [
        nested("1", MAX_DEPTH, "mixed"),
        "[1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -0, 0.0]",
        "[18446744073709551615, -9223372036854775808]",
        "1" + "0" * 30,  # within a double: jsonb cannot tell it from 1e30
    ],
)
def test_the_database_takes_values_at_the_limits(
    ns: Namespace, conn: psycopg.Connection, text: str
) -> None:
    ns.put("/f")
    set_raw(conn, "/f", "x", text)
    assert ns.getxattr("/f", "x") == {"x": orjson.loads(text)}  # 10^30: the nearest double


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(text=json_texts)
def test_the_namespace_layer_and_the_database_agree(
    ns: Namespace, conn: psycopg.Connection, text: str
) -> None:
    """What the namespace layer takes, the database takes and gives back unchanged; what it
    refuses for depth or the range of a double, the database refuses too."""
    if not ns.ls("/"):
        ns.put("/f")
    refused = refusal(text)
    if refused is None:
        value = parse_value(text)
        ns.setxattr("/f", "x", value)
        assert same_json(ns.getxattr("/f", "x")["x"], value)
    elif past_the_database_limits(refused):
        try:
            set_raw(conn, "/f", "raw", text)
        except psycopg.Error:  # EINVAL, or not JSON to jsonb either
            return
        # taken: a repeated key dropped what was refused (jsonb keeps the last)
        kept = conn.execute("SELECT value::text FROM xattrs WHERE name = 'raw'").fetchone()
        assert not past_the_database_limits(refusal(kept[0])), (text, kept)  # type: ignore[index]


def refusal(text: str) -> FsError | None:
    try:
        parse_value(text)
    except FsError as exc:
        return exc
    return None


def past_the_database_limits(refused: FsError | None) -> bool:
    return refused is not None and ("levels deep" in refused.detail or "double" in refused.detail)


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON: jsonb keeps no exponent, so 6.6e16 reads back as 66000000000000000."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float) and bool not in (type(a), type(b)):
        return float(a) == float(b)
    return type(a) is type(b) and a == b


def test_older_rows_past_the_limits_read_back_and_build_without_them(
    ns: Namespace, conn: psycopg.Connection, tmp_path: Path
) -> None:
    inode = ns.put("/f").inode_id
    ns.setxattr("/f", "labels", {"camera": "front"})
    for name, text in POISON.items():
        older_row(conn, inode, name, text)
    read = ns.getxattr("/f")
    assert read["big"] == {"n": BIG}
    assert isinstance(read["big"]["n"], JsonText)
    assert read["tiny"] == [0.0, "1" + "0" * 131_071]
    (doc,), _, ((_, reasons),) = DocumentSource(NamespaceReader(conn)).documents({inode: 1})
    assert doc["xattrs"] == {"labels": {"camera": "front"}}
    assert doc["skipped"] == ["big", "deep", "deeper", "tiny"]
    assert reasons == [
        "annotation big holds a number beyond the range of a double",
        "annotation deep is nested deeper than 64 levels",
        "annotation deeper is nested deeper than 64 levels",
        "annotation tiny holds a number beyond the range of a double",
    ]
    report, index = rebuild(conn, TantivyStore(tmp_path / "index"))
    assert (report.documents, report.rejected, report.skipped) == (2, [], [(inode, reasons)])
    drift = verify(conn, index)
    assert not drift
    assert drift.left_out == 1
    index.close()


def test_poison_rows_are_dead_lettered_and_every_file_stays_searchable(
    dsn: str, conn: psycopg.Connection, ns: Namespace, tmp_path: Path
) -> None:
    store = TantivyStore(tmp_path / "index")
    with running(dsn, tmp_path, consumers=[index_consumer(dsn, tmp_path / "index")]) as pipeline:
        pipeline.backfilled(conn)
        poisoned = ns.put("/poisoned.jpg").inode_id
        ns.setxattr("/poisoned.jpg", "labels", {"camera": "rear"})
        for name, text in POISON.items():
            older_row(conn, poisoned, name, text)
        ns.put("/other.jpg")
        pipeline.wait(conn, ns.setxattr("/other.jpg", "labels", {"camera": "front"}).token)
        reader = store.current(writable=False)
        (hit,) = reader.search(SearchQuery(text="poisoned")).hits
        assert hit.doc["xattrs"] == {"labels": {"camera": "rear"}}
        assert hit.doc["skipped"] == sorted(POISON)
        assert reader.search(SearchQuery(text="front")).total == 1
        assert not verify(conn, reader)
    reasons = [reason for _, _, reason in PipelineStore.on(conn).recent_dead_letters(50)]
    assert reasons
    assert all(reason.startswith(f"inode {poisoned}: annotation ") for reason in reasons)
    assert "annotation deep is nested deeper than 64 levels" in reasons[0]


def test_a_document_the_engine_refuses_is_indexed_without_its_annotations(
    tmp_path: Path,
) -> None:
    doc, _ = build(
        {
            "id": 7,
            "parent_id": 1,
            "name": "f.jpg",
            "kind": "file",
            "size": 1,
            "mode": 0o644,
            "owner": "root",
            "group": "root",
            "mtime": "2026-01-01T00:00:00+00:00",
            "ctime": "2026-01-01T00:00:00+00:00",
        },
        ["", "f.jpg"],
        [1],
        {"ok": 1},
        1,
    )
    doc["xattrs"]["deep"] = json.loads(nested("1", 253, "array"))  # past what build keeps
    index = TantivyStore(tmp_path / "index").current(writable=True)
    ((inode, reason),) = upsert_files(index, [doc])
    index.commit()
    assert inode == 7
    assert reason.endswith("; indexed without its annotations")
    (hit,) = index.search(SearchQuery(text="f")).hits
    assert (hit.doc["xattrs"], hit.doc["skipped"]) == ({}, ["deep", "ok"])
    index.close()
