"""The tantivy schema of the file index, built from schemas/index/tantivy-fields.json, and
the analyzer that turns free text into the words of the `text` field."""

from __future__ import annotations

import json
from typing import Any

import tantivy

from epipe.db.migrate import schemas_dir
from epipe.index.engine import EngineError
from epipe.index.tantivy.errors import map_exceptions

_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(40))
    .filter(tantivy.Filter.lowercase())
    .build()
)
SORT_FIELDS = {"name": "name_sort", "path": "path", "size": "size", "mtime": "mtime"}


def tokens(text: str) -> list[str]:
    """The terms tantivy's default tokenizer makes of `text`, as the free-text fields hold
    them (free text never goes through the query parser)."""
    with map_exceptions("split the query's text into words"):
        return list(_ANALYZER.analyze(text))


def build_schema() -> tantivy.Schema:
    with map_exceptions("build the tantivy schema from tantivy-fields.json"):
        spec = json.loads((schemas_dir() / "index" / "tantivy-fields.json").read_text())
        builder = tantivy.SchemaBuilder()
        for field in spec["fields"]:
            _add(builder, field)
        return builder.build()


def _add(builder: tantivy.SchemaBuilder, field: dict[str, Any]) -> None:
    name, kind = field["name"], field["type"]
    stored, fast = field.get("stored", False), field.get("fast", False)
    indexed = field.get("indexed", False)
    if kind == "unsigned":
        builder.add_unsigned_field(name, stored=stored, indexed=indexed, fast=fast)
    elif kind == "date":
        builder.add_date_field(name, stored=stored, indexed=indexed, fast=fast)
    elif kind == "text":
        builder.add_text_field(
            name,
            stored=stored,
            fast=fast,
            tokenizer_name=field["tokenizer"],
            index_option=field.get("index_option", "position"),
        )
    elif kind == "json":
        tokenizer, expand = field["tokenizer"], field.get("expand_dots", False)
        builder.add_json_field(
            name, stored=stored, fast=fast, tokenizer_name=tokenizer, expand_dots_enabled=expand
        )
    elif kind == "bytes":
        builder.add_bytes_field(name, stored=stored, indexed=False, fast=False)
    else:
        raise EngineError(f"tantivy-fields.json: unknown field type {kind!r}")
