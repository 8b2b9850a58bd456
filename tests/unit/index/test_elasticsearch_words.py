"""The words of free text on Elasticsearch: the template's analyzer and the adapter's query
agree with each other and with epipe.search.words. No Elasticsearch runs here (its contract
run needs Docker), so what can be checked without one is checked here: the names, the
definition, and the error an index of an older template gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NoReturn, cast

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import BadRequestError, Elasticsearch

from epipe.index.elasticsearch import ANALYZER, TEXT_FIELDS, ElasticsearchIndex
from epipe.index.engine import EngineError
from epipe.search.query import SearchQuery
from epipe.search.words import MAX_WORD_BYTES

ROOT = Path(__file__).parents[3]
TEMPLATE = json.loads((ROOT / "schemas/index/elasticsearch-template.json").read_text())
ANALYSIS = TEMPLATE["template"]["settings"]["analysis"]
BUILT_IN_FILTERS = {"lowercase"}


def mapping_of(field: str) -> dict[str, Any]:
    """The mapping of `field` (`path.text`: the sub-field `text` of `path`)."""
    top, _, sub = field.partition(".")
    mapped: dict[str, Any] = TEMPLATE["template"]["mappings"]["properties"][top]
    return cast(dict[str, Any], mapped["fields"][sub]) if sub else mapped


def free_text_clause(query: SearchQuery) -> dict[str, Any]:
    index = ElasticsearchIndex(Elasticsearch("http://127.0.0.1:1"), "epipe-files-1")
    compiled = index._compile(query)  # text alone: no request is made
    assert compiled is not None
    (clause,) = compiled["bool"]["must"]
    return cast(dict[str, Any], clause["multi_match"])


def test_the_query_names_the_analyzer_the_template_defines() -> None:
    clause = free_text_clause(SearchQuery(text="rain.txt"))
    assert clause["analyzer"] == ANALYZER
    assert clause["fields"] == TEXT_FIELDS
    analyzer = ANALYSIS["analyzer"][ANALYZER]
    assert analyzer["type"] == "custom"
    assert analyzer["tokenizer"] in ANALYSIS["tokenizer"]
    for name in analyzer["filter"]:
        assert name in ANALYSIS["filter"] or name in BUILT_IN_FILTERS, name


def test_every_free_text_field_is_analyzed_into_words_and_scored_by_boost_alone() -> None:
    for field in TEXT_FIELDS:
        mapped = mapping_of(field.partition("^")[0])
        assert mapped["type"] == "text"
        assert mapped["analyzer"] == ANALYZER  # at index time, and at query time by default
        assert "search_analyzer" not in mapped
        assert mapped["similarity"] == "boolean"


def test_the_analyzer_makes_the_words_tantivy_makes() -> None:
    """The definition, pinned: a word is a longest run of Unicode Alphabetic or Number
    characters (Rust's char::is_alphanumeric, tantivy's simple tokenizer); a word of 40
    bytes or more is dropped (tantivy counts bytes, the length filter characters: the same
    for ASCII), then lowercase, in tantivy's order."""
    analyzer = ANALYSIS["analyzer"][ANALYZER]
    tokenizer = ANALYSIS["tokenizer"][analyzer["tokenizer"]]
    assert tokenizer == {"type": "pattern", "pattern": r"[^\p{IsAlphabetic}\p{N}]+"}
    length, lowercase = analyzer["filter"]
    assert ANALYSIS["filter"][length] == {"type": "length", "max": MAX_WORD_BYTES - 1}
    assert lowercase == "lowercase"


def test_the_template_version_names_the_analyzer() -> None:
    assert TEMPLATE["version"] == 5
    assert "version 5" in TEMPLATE["description"]
    assert ANALYZER in TEMPLATE["description"]


class RefusingClient:
    """Answers a search as Elasticsearch does when the index lacks the analyzer named."""

    def search(self, **_: object) -> NoReturn:
        meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "es", 9200))
        reason = f"No analyzer found for [{ANALYZER}]"
        body = {"error": {"root_cause": [{"type": "illegal_argument_exception", "reason": reason}]}}
        raise BadRequestError("search_phase_execution_exception", meta, body)


def test_an_index_of_an_older_template_fails_free_text_saying_to_reindex() -> None:
    index = ElasticsearchIndex(cast(Elasticsearch, RefusingClient()), "epipe-files-3")
    with pytest.raises(EngineError, match=r"epipe-files-3: it has no analyzer epipe_words .*"):
        index.search(SearchQuery(text="rain"))
    with pytest.raises(EngineError, match=r"run `epipe reindex`"):
        index.search(SearchQuery(text="rain"))
