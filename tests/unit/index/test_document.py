"""The search document (pure) and how each engine indexes annotations."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from epipe.fs.xattrs import MAX_DEPTH
from epipe.index.document import (
    FIELDS,
    MAX_ANNOTATION_VALUES,
    annotation_text,
    build,
    extension,
    indexed_annotations,
    leaves,
    project_of,
    without_annotations,
)
from epipe.index.elasticsearch import attrs, body, document
from epipe.jsonvalue import BEYOND_DOUBLE, JsonText, load
from epipe.prov.artifacts import KINDS
from tests.json_texts import json_texts, nested

ROOT = Path(__file__).parents[3]
DOC_SCHEMA = json.loads((ROOT / "schemas/index/document.schema.json").read_text())
TEMPLATE = json.loads((ROOT / "schemas/index/elasticsearch-template.json").read_text())
NOW = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    return {
        "id": 42,
        "parent_id": 7,
        "name": "frame_0001.JPG",
        "kind": "file",
        "size": 10,
        "mode": 0o644,
        "owner": "alice",
        "group": "cars",
        "mtime": NOW,
        "ctime": NOW,
        **changes,
    }


def test_a_document_carries_path_ancestors_project_and_annotations() -> None:
    labels = {"objects": {"bicycle": 4}, "camera": "front", "tags": ["a", "b"]}
    doc, skipped = build(
        row(),
        ["", "Projects", "cars", "img", "frame_0001.JPG"],
        [1, 3, 5, 7],
        {"labels": labels},
        version=99,
    )
    assert skipped == []
    assert doc["path"] == "/Projects/cars/img/frame_0001.JPG"
    assert doc["ancestors"] == [1, 3, 5, 7]
    assert (doc["project"], doc["ext"], doc["kind"]) == ("cars", "jpg", "file")
    assert doc["mtime"] == "2026-01-02T03:04:05.600000+00:00"
    assert doc["xattrs"] == {"labels": labels}
    jsonschema.validate(doc, DOC_SCHEMA)


def test_the_document_type_has_the_fields_of_the_schema() -> None:
    assert set(FIELDS) == set(DOC_SCHEMA["properties"])
    assert [f for f in FIELDS if f != "skipped"] == DOC_SCHEMA["required"]


def test_the_root_and_directories() -> None:
    root, _ = build(row(id=1, parent_id=None, name="", kind="dir"), [""], [], None, 1)
    assert (root["path"], root["name"], root["ext"], root["project"]) == ("/", "/", "", None)
    jsonschema.validate(root, DOC_SCHEMA)
    assert build(row(name="a.b", kind="dir"), ["", "a.b"], [1], None, 1)[0]["ext"] == ""


@pytest.mark.parametrize(
    ("name", "kind", "artifact"),
    [
        ("model.PB", "file", "model"),
        ("train.csv", "file", "dataset"),
        ("frame_0001.JPG", "file", "image"),
        ("readme.txt", "file", None),
        ("images", "dir", "dataset"),
        ("events.parquet", "dir", "dataset"),
        ("model.pb", "dir", None),  # a directory is classified by the directory rules
        ("", "dir", None),  # the root
    ],
)
def test_a_document_carries_the_artifact_kind_of_its_name(
    name: str, kind: str, artifact: str | None
) -> None:
    doc, _ = build(row(name=name, kind=kind), ["", name], [1], None, 1)
    assert doc["artifact"] == artifact
    jsonschema.validate(doc, DOC_SCHEMA)


def test_the_schema_names_every_artifact_kind() -> None:
    assert DOC_SCHEMA["properties"]["artifact"]["enum"] == [*KINDS, None]


@pytest.mark.parametrize(
    ("name", "ext"),
    [("a.JPG", "jpg"), ("archive.tar.gz", "gz"), (".hidden", ""), ("noext", ""), ("trailing.", "")],
)
def test_extension(name: str, ext: str) -> None:
    assert extension(name, "file") == ext


@pytest.mark.parametrize(
    ("path", "project"),
    [
        ("/Projects/cars/x", "cars"),
        ("/Projects/cars", "cars"),
        ("/Projects", None),
        ("/other/cars", None),
        ("/", None),
    ],
)
def test_project_of(path: str, project: str | None) -> None:
    assert project_of(path) == project


def test_annotations_with_too_many_values_are_left_out_and_named() -> None:
    huge = {"points": list(range(MAX_ANNOTATION_VALUES + 1))}
    doc, reasons = build(row(), ["", "f"], [1], {"huge": huge, "labels": {"a": 1}}, 5)
    assert reasons == ["annotation huge has more than 10,000 values"]
    assert doc["xattrs"] == {"labels": {"a": 1}}
    assert doc["skipped"] == ["huge"]
    jsonschema.validate(doc, DOC_SCHEMA)


def test_leaves_flatten_nested_objects_and_arrays() -> None:
    value = {"a": {"b": 1, "c": [2, {"d": "x"}]}, "e": True, "f": None}
    assert list(leaves(value)) == [("a.b", 1), ("a.c", 2), ("a.c.d", "x"), ("e", True), ("f", None)]
    text = annotation_text({"labels": {"camera": "front left", "n": 3}})
    assert {"labels", "camera", "front", "left"} <= set(
        text.replace('"', " ")
        .replace("{", " ")
        .replace(":", " ")
        .replace(",", " ")
        .replace("}", " ")
        .split()
    )


def test_elasticsearch_pairs_are_typed() -> None:
    assert attrs({"l": {"n": 3, "x": 2.5, "s": "front", "b": False, "z": None, "t": ["a", 1]}}) == [
        {"key": "user.l.n", "num": 3},
        {"key": "user.l.x", "num": 2.5},
        {"key": "user.l.s", "str": "front"},
        {"key": "user.l.b", "bool": False},
        {"key": "user.l.t", "str": "a"},
        {"key": "user.l.t", "num": 1},
    ]


def test_annotations_are_indexed_by_namespace_so_no_user_name_reaches_a_system_one() -> None:
    shown = {
        "labels": 1,
        "user.system.acl": "member",
        "system": {"acl": "member"},
        "user.user.x": 2,
        "system.acl": "root",
    }
    assert indexed_annotations(shown) == {
        "user": {"labels": 1, "system.acl": "member", "system": {"acl": "member"}, "user.x": 2},
        "system": {"acl": "root"},
    }
    assert [pair["key"] for pair in attrs(shown) if pair.get("str") == "root"] == ["system.acl"]


def test_ten_thousand_distinct_keys_leave_the_mapping_as_it_is() -> None:
    """The mapping is `dynamic: strict` with a fixed set of fields; a document with 10,000
    distinct annotation keys only fills those fields (the keys become values of attrs.key)."""
    xattrs = {"labels": {f"key_{i}": (i if i % 3 else f"v{i}") for i in range(10_000)}}
    doc, skipped = build(row(), ["", "f"], [1], xattrs, 1)
    assert skipped == []
    source = body(doc)
    mapping = TEMPLATE["template"]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert set(source) <= set(mapping["properties"])
    pair_fields = set(mapping["properties"]["attrs"]["properties"])
    assert all(set(pair) <= pair_fields for pair in source["attrs"])
    assert len({pair["key"] for pair in source["attrs"]}) == 10_000
    assert mapping["properties"]["xattrs"] == {"type": "object", "enabled": False}
    assert document(source) == doc  # what the index returns is the document again


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (deep(MAX_DEPTH + 1), "is nested deeper than 64 levels"),
        (deep(300), "is nested deeper than 64 levels"),  # past orjson's own limit
        ({"n": JsonText("1" + "0" * 309, BEYOND_DOUBLE)}, BEYOND_DOUBLE),
        (load(nested("1", 300, "object")), "is nested deeper than 64 levels"),
        ({"n": 2**64}, "holds an integer beyond 64 bits"),
        (["\ud800"], "holds text that is not valid Unicode"),
        ({"set": {1}}, "holds a set"),
    ],
)
def test_an_annotation_the_index_cannot_hold_is_left_out_with_the_reason(
    value: Any, reason: str
) -> None:
    doc, reasons = build(row(), ["", "f"], [1], {"bad": value, "labels": {"a": 1}}, 5)
    assert reasons == [f"annotation bad {reason}"]
    assert doc["xattrs"] == {"labels": {"a": 1}}
    assert doc["skipped"] == ["bad"]
    jsonschema.validate(doc, DOC_SCHEMA)
    orjson.dumps(doc)  # what the engines do with it


def test_an_annotation_at_the_depth_limit_is_kept() -> None:
    doc, reasons = build(row(), ["", "f"], [1], {"deep": deep(MAX_DEPTH)}, 5)
    assert (reasons, doc["xattrs"]) == ([], {"deep": deep(MAX_DEPTH)})


def test_annotations_that_are_not_an_object_are_reported_not_crashing() -> None:
    doc, reasons = build(row(), ["", "f"], [1], JsonText("{", "is not JSON"), 5)  # type: ignore[arg-type]
    assert doc["xattrs"] == {}
    assert reasons == ["annotations cannot be read: {"]


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(json_texts, max_size=3))
def test_any_stored_value_builds_a_document_the_engines_take(texts: list[str]) -> None:
    xattrs = {f"x{i}": load(text) for i, text in enumerate(texts)}
    doc, reasons = build(row(), ["", "f"], [1], xattrs, 5)
    assert len(reasons) == len(doc.get("skipped", []))
    assert set(doc["xattrs"]) | set(doc.get("skipped", [])) == set(xattrs)
    orjson.loads(orjson.dumps(doc))
    body(doc)  # Elasticsearch's source


def test_without_annotations_names_them_all() -> None:
    doc, _ = build(row(), ["", "f"], [1], {"b": 1, "a": deep(100)}, 5)
    bare = without_annotations(doc)
    assert (bare["xattrs"], bare["skipped"]) == ({}, ["a", "b"])
    jsonschema.validate(bare, DOC_SCHEMA)
