"""The entries of one page, exactly in (sort key, id) order, from tantivy's one-key order.

Relevance, while `q` has few words: each score's documents are a query (compile.score_groups),
read highest score first, each group in id order by one search. Otherwise a window of hits
is fetched in tantivy's order and ordered exactly here; when the page ends inside a group of
equal keys that may reach past the window, the window widens and, for a large group, the
group is also read apart in id order (`Ties`), whichever settles the page first.
"""

from __future__ import annotations

from typing import Any

import tantivy

from epipe.index.paging import Order, beyond, in_order, strictly_past
from epipe.index.tantivy.compile import score_groups
from epipe.index.tantivy.document import ids
from epipe.index.tantivy.ties import Entry, Ties
from epipe.search.query import SearchQuery


def page_entries(
    schema: tantivy.Schema,
    searcher: tantivy.Searcher,
    compiled: tantivy.Query,
    query: SearchQuery,
    order: Order,
) -> tuple[list[Entry], int]:
    """The entries of `query`'s page (after its cursor, from its offset), and how many
    documents match."""
    if order.by_score:
        groups = score_groups(query, schema)
        if groups is not None:
            return _by_score_groups(schema, searcher, compiled, query, groups)
    descending, after = order.descending, query.after
    need = query.offset + query.limit
    # Relevance ties are common and costly to settle; a wide first window costs little.
    window = first = max(2 * need, 1024 if order.by_score else 64)
    ties: Ties | None = None
    while True:
        result = searcher.search(
            compiled,
            window,
            count=True,
            order_by_field=order.field,
            order=tantivy.Order.Desc if descending else tantivy.Order.Asc,
        )
        entries = _ordered(searcher, result.hits, descending)
        if after is not None:
            entries = [e for e in entries if beyond(e[0], e[1], after, descending)]
        if len(result.hits) < window:
            break  # every match is in the window
        end = result.hits[-1][0]
        if len(entries) >= need and strictly_past(end, entries[need - 1][0], descending):
            break
        if after is None or not strictly_past(after[0], end, descending):
            above = [e for e in entries if e[0] != end]
            in_window = sum(1 for k, _ in result.hits if k == end)
            if ties is None or ties.key != end:
                lowest = after[1] if after is not None and after[0] == end else None
                share = in_window / max(_matches(result), window)  # of matches, at least
                ties = Ties(schema, searcher, compiled, order, end, lowest, share)
            sample = [e[1] for e in entries if e[0] == end]
            # A small group at the window's end is found sooner by widening the window.
            large = in_window * 2 >= window or len(sample) >= need - len(above)
            if not order.by_score or large or window > first:
                tied = ties.read(need - len(above), sample, len(result.hits) - in_window)
                if tied is not None and len(above) + len(tied) == need:
                    entries = above + tied
                    break
        window *= 4  # the page reaches past the window's last key
    return entries[query.offset : need], _matches(result)


def _by_score_groups(
    schema: tantivy.Schema,
    searcher: tantivy.Searcher,
    compiled: tantivy.Query,
    query: SearchQuery,
    groups: list[tuple[float, tantivy.Query]],
) -> tuple[list[Entry], int]:
    """The page read group by group, highest score first, each in id order; every group is
    counted (a group before the cursor, or after the page, only counted)."""
    q, must = tantivy.Query, tantivy.Occur.Must
    need, after = query.offset + query.limit, query.after
    entries: list[Entry] = []
    total = 0
    for score, group in groups:
        matching = q.boolean_query([(must, compiled), (must, group)])
        lowest = after[1] if after is not None and after[0] == score else None
        if len(entries) < need and (after is None or score <= after[0]):
            within = matching
            if lowest is not None:
                above = q.range_query(
                    schema, "id", tantivy.FieldType.Unsigned, lowest, None, include_lower=False
                )
                within = q.boolean_query([(must, matching), (must, q.const_score_query(above, 0))])
            result = searcher.search(
                within,
                need - len(entries),
                count=lowest is None,
                order_by_field="id",
                order=tantivy.Order.Asc,
            )
            entries += [(score, inode_id, address) for inode_id, address in result.hits]
            if lowest is None:
                total += _matches(result)
                continue
        total += _matches(searcher.search(matching, 1, count=True))
    return entries[query.offset : need], total


def _ordered(
    searcher: tantivy.Searcher, hits: list[tuple[Any, tantivy.DocAddress]], descending: bool
) -> list[Entry]:
    """(key, id, address) by key (descending or not), ties by id ascending."""
    addresses = [address for _, address in hits]
    keys = (key for key, _ in hits)
    return in_order(zip(keys, ids(searcher, addresses), addresses, strict=True), descending)


def _matches(result: tantivy.SearchResult) -> int:
    """How many documents match, as a search with count=True counts them."""
    return result.count or 0  # type: ignore[attr-defined]  # the stub has no `count`
