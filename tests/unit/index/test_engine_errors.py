"""Each adapter lets no exception of its library out but as EngineError, and a malformed
query stays a QueryError (a 400, not a 503)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import tantivy
from elasticsearch import Elasticsearch

from epipe.index.elasticsearch import ElasticsearchIndex, ElasticsearchStore
from epipe.index.engine import EngineError
from epipe.index.tantivy import TantivyIndex, TantivyStore, map_exceptions
from epipe.search.query import Predicate, QueryError, SearchQuery

UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1: refused at once


@pytest.fixture
def tantivy_store(tmp_path: Path) -> TantivyStore:
    return TantivyStore(tmp_path / "index")


def test_a_second_writer_on_a_generation_is_an_engine_error(tantivy_store: TantivyStore) -> None:
    writer = tantivy_store.current(writable=True)
    with pytest.raises(EngineError, match=r"cannot open the tantivy index at .*LockBusy"):
        tantivy_store.current(writable=True)
    writer.close()


def test_a_tantivy_panic_is_an_engine_error(tantivy_store: TantivyStore) -> None:
    index = tantivy_store.current(writable=False)
    with pytest.raises(EngineError, match=r"cannot read the tantivy index at .*panicked"):
        next(index.scan(batch=0))  # tantivy asserts a limit above 0 (a Rust panic)


def test_a_generation_removed_under_an_index_is_an_engine_error(
    tantivy_store: TantivyStore,
) -> None:
    generation, index = tantivy_store.new_generation()
    index.close()
    shutil.rmtree(tantivy_store.root / generation)
    with pytest.raises(EngineError, match="cannot open the tantivy index at"):
        TantivyIndex(tantivy_store.root / generation, tantivy_store.schema, writable=False)


def test_an_index_of_other_fields_is_not_opened(tmp_path: Path) -> None:
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("id", indexed=True)
    (tmp_path / "g1").mkdir()
    tantivy.Index(builder.build(), str(tmp_path / "g1"))
    (tmp_path / "current").symlink_to("g1")
    with pytest.raises(EngineError, match="another epipe version: run `epipe reindex`"):
        TantivyStore(tmp_path).current(writable=False)


def test_a_read_only_tantivy_index_refuses_writes(tantivy_store: TantivyStore) -> None:
    with pytest.raises(EngineError, match="read-only"):
        tantivy_store.current(writable=False).commit()


@pytest.mark.parametrize(
    ("query", "part"),
    [
        # words of 20 letters to Python (epipe.search.words), one of 43 bytes to tantivy,
        # which counts the vowel sign between them a letter and drops words from 40 bytes
        (SearchQuery(text="a" * 20 + "\u093f" + "a" * 20), "q"),
        (SearchQuery(xattr=(Predicate(("labels", "n"), ">", math.inf),)), "xattr"),
        (SearchQuery(xattr=(Predicate(("labels", "n"), "<", "seven"),)), "xattr"),
    ],
)
def test_a_malformed_query_stays_a_query_error_in_tantivy(
    tantivy_store: TantivyStore, query: SearchQuery, part: str
) -> None:
    with pytest.raises(QueryError) as caught:
        tantivy_store.current(writable=False).search(query)
    assert caught.value.part == part


def test_map_exceptions_lets_other_base_exceptions_through() -> None:
    with pytest.raises(KeyboardInterrupt), map_exceptions("wait"):
        raise KeyboardInterrupt


def test_an_unreachable_elasticsearch_is_an_engine_error_naming_the_setting() -> None:
    with pytest.raises(EngineError, match=r"install the index template .*EPIPE_ES_URL"):
        ElasticsearchStore(UNREACHABLE)
    with pytest.raises(EngineError, match="EPIPE_ES_URL"):
        ElasticsearchStore("not a url")


@pytest.mark.parametrize(
    "call",
    [
        lambda index: index.get([1]),
        lambda index: next(index.scan()),
        lambda index: index.count(),
        lambda index: index.commit(),
        lambda index: index.delete_all(),
        lambda index: index.delete([1], version=2),
        lambda index: index.search(SearchQuery(text="rain")),
        lambda index: index.search(SearchQuery(under="/Projects")),
    ],
)
def test_every_elasticsearch_call_fails_as_an_engine_error(
    call: Callable[[ElasticsearchIndex], object],
) -> None:
    index = ElasticsearchIndex(Elasticsearch(UNREACHABLE), "epipe-files-1")
    with pytest.raises(EngineError, match=r"cannot .* epipe-files-1"):
        call(index)


def test_a_malformed_query_stays_a_query_error_in_elasticsearch() -> None:
    index = ElasticsearchIndex(Elasticsearch(UNREACHABLE), "epipe-files-1")
    too_long = Predicate(("labels", "note"), "=", "x" * 10_000)
    with pytest.raises(QueryError):
        index.search(SearchQuery(xattr=(too_long,)))
