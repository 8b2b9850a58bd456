"""SearchQuery -> tantivy query.

Only the words are scored, each by the best place a document holds it (epipe.index.scoring):
the largest of constant scores, never tantivy's BM25, whose statistics span every project.
Every other clause is a filter adding 0 (as Elasticsearch's filter context). Nothing the
user types reaches tantivy's query parser but the number of a range, formatted here, under a
key whose every special character is escaped.
"""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import datetime
from typing import Any

import tantivy

from epipe.index import scoring
from epipe.index.tantivy.schema import tokens
from epipe.search.query import Predicate, QueryError, SearchQuery

_PARSER_SPECIAL = set("+-&|!(){}[]^\"'`~*?:\\/ \t\n<>=")
FIELD = "annotations"  # the JSON field, keyed by namespace (Predicate.path)


def compile_query(
    query: SearchQuery, schema: tantivy.Schema, index: tantivy.Index, searcher: tantivy.Searcher
) -> tantivy.Query | None:
    """The tantivy query of `query`, or None when nothing can match (`index` parses ranges,
    `searcher` finds the `under` directory)."""
    q, occur = tantivy.Query, tantivy.Occur
    scored: list[tantivy.Query] = []
    filters: list[tantivy.Query] = []
    if query.text:
        words = tokens(query.text)
        if not words:
            raise QueryError("q", "has no searchable words")
        scored.extend(_word(schema, word) for word in words)
    if query.under not in (None, "/"):
        directory = searcher.search(q.term_query(schema, "path", query.under), 1, count=False)
        if not directory.hits:
            return None
        ids = searcher.fast_field_values("id", [directory.hits[0][1]])
        filters.append(q.term_query(schema, "ancestors", ids[0]))
    for field, value in (
        ("kind", query.type),
        ("ext", query.ext),
        ("artifact", query.artifact),
        ("owner", query.owner),
    ):
        if value is not None:
            filters.append(q.term_query(schema, field, value.lower() if field == "ext" else value))
    if query.size_min is not None or query.size_max is not None:
        filters.append(
            q.range_query(
                schema, "size", tantivy.FieldType.Unsigned, query.size_min, query.size_max
            )
        )
    if query.modified_after is not None or query.modified_before is not None:
        filters.append(
            q.range_query(
                schema,
                "mtime",
                tantivy.FieldType.Date,
                _clamp(query.modified_after),
                _clamp(query.modified_before),
            )
        )
    filters.extend(_predicate(predicate, schema, index) for predicate in query.xattr)
    if query.projects is not None:
        if not query.projects:
            return None
        # A disjunction of terms: measured faster than a term set on a million files.
        filters.append(
            q.boolean_query(
                [
                    (occur.Should, q.term_query(schema, "project", project))
                    for project in sorted(query.projects)
                ]
            )
        )
    clauses = scored + [q.const_score_query(f, 0.0) for f in filters]
    if not clauses:
        return q.all_query()
    return q.boolean_query([(occur.Must, clause) for clause in clauses])


_WORD_FIELDS = (
    ("name_words", scoring.NAME),
    ("path_words", scoring.PATH),
    ("annotation_words", scoring.ANNOTATIONS),
)


def _word(schema: tantivy.Schema, word: str) -> tantivy.Query:
    """Documents holding `word` in their name, path or annotations, scoring the weight of
    the best of these (a constant: no statistics of the index enter)."""
    q = tantivy.Query
    return q.disjunction_max_query(
        [
            q.const_score_query(q.term_query(schema, field, word, index_option="basic"), weight)
            for field, weight in _WORD_FIELDS
        ],
        tie_breaker=0.0,
    )


# The score groups of q are queries while q has at most this many distinct words (up to
# 3**4 = 81 ways to split a score among them); beyond, keyset.py reads scores otherwise.
GROUP_WORDS = 4


def score_groups(
    query: SearchQuery, schema: tantivy.Schema
) -> list[tuple[float, tantivy.Query]] | None:
    """Each score `query`'s words can give, highest first, with the documents scoring exactly
    that as a query (the rest of `query` not applied); None when `query` has no words or
    more than GROUP_WORDS distinct ones.

    A word scores the weight of the first place holding it (name, path, annotations), so
    "word w scores weight k" is "the place of k holds w and no better place does"; a score is
    a sum of these over the words, so its group is the union, over each way of giving every
    word a weight that adds up to the score, of the words' conditions together."""
    q, occur = tantivy.Query, tantivy.Occur
    words = Counter(tokens(query.text or ""))  # a word repeated in q counts each time
    if not words or len(words) > GROUP_WORDS:
        return None
    ways: dict[float, list[tantivy.Query]] = {}
    for places in itertools.product(range(len(_WORD_FIELDS)), repeat=len(words)):
        score = sum(_WORD_FIELDS[p][1] * n for p, n in zip(places, words.values(), strict=True))
        conditions = [
            clause
            for word, place in zip(words, places, strict=True)
            for clause in [
                (occur.Must, _held(schema, word, place)),
                *((occur.MustNot, _held(schema, word, better)) for better in range(place)),
            ]
        ]
        ways.setdefault(score, []).append(q.boolean_query(conditions))
    return [
        (
            score,
            alike[0] if len(alike) == 1 else q.boolean_query([(occur.Should, c) for c in alike]),
        )
        for score, alike in sorted(ways.items(), reverse=True)
    ]


def _held(schema: tantivy.Schema, word: str, place: int) -> tantivy.Query:
    """Documents holding `word` in the `place`-th of the word fields (best first)."""
    return tantivy.Query.term_query(schema, _WORD_FIELDS[place][0], word, index_option="basic")


def _predicate(predicate: Predicate, schema: tantivy.Schema, index: tantivy.Index) -> tantivy.Query:
    q = tantivy.Query
    path = ".".join((FIELD, *predicate.path))
    exists = q.exists_query(path, json_subpaths=True)
    value = predicate.value
    if predicate.op == "exists" or (predicate.op == "!=" and value is None):
        return exists
    if value is None:  # = null: the key is absent
        return q.boolean_query(
            [(tantivy.Occur.Must, q.all_query()), (tantivy.Occur.MustNot, exists)]
        )
    if predicate.op in ("=", "!="):
        term = q.term_query(schema, path, value)
        if predicate.op == "=":
            return term
        return q.boolean_query([(tantivy.Occur.Must, exists), (tantivy.Occur.MustNot, term)])
    # Numeric ranges on JSON keys only go through the query parser: escape the path.
    field = ".".join((FIELD, *map(_escape, predicate.path)))
    try:
        return index.parse_query(f"{field}:{predicate.op}{_number(value)}")
    except ValueError as exc:
        raise QueryError(f"xattr {predicate.text!r}", f"not a valid range: {exc}") from None


def range_query(index: tantivy.Index, keys: tuple[str, ...], value: Any) -> tantivy.Query | None:
    """Documents whose annotation at `keys` holds the number `value`, by its fast column
    (as a range predicate reads it); None for a number a range cannot spell."""
    field = ".".join((FIELD, *map(_escape, keys)))
    try:
        number = _number(value)
        return index.parse_query(f"{field}:[{number} TO {number}]")
    except (QueryError, ValueError):
        return None


def _clamp(when: datetime | None) -> datetime | None:
    """tantivy stores dates between 1677 and 2262; no file has a time outside them."""
    if when is None:
        return None
    return min(max(when, tantivy.MIN_DATETIME), tantivy.MAX_DATETIME)


def _escape(key: str) -> str:
    return "".join("\\" + c if c in _PARSER_SPECIAL else c for c in key)


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise QueryError("xattr", f"a range needs a number, got {value!r}")
    text = repr(value)
    if "e" in text or "E" in text or "inf" in text or "nan" in text:
        raise QueryError("xattr", f"number {value!r} is out of range for a comparison")
    return text
