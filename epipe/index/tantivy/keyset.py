"""The entries of one page, exactly in (sort key, id) order, from tantivy's one-key order.

A window of hits is fetched in tantivy's order and ordered exactly here; when the page ends
inside a group of equal keys that may reach past the window, the window widens and, for a
large group, the group is also read apart in id order (`Ties`), whichever settles the page
first.
"""

from __future__ import annotations

from typing import Any

import tantivy

from epipe.index.paging import Order, beyond, in_order, strictly_past
from epipe.index.tantivy.compile import score_group
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
                group = score_group(query, schema, end) if order.by_score else None
                ties = Ties(schema, searcher, compiled, order, end, lowest, share, group)
            sample = [e[1] for e in entries if e[0] == end]
            # A small group at the window's end is found sooner by widening the window, unless
            # a query finds it (one pass over the group, never more than a wider window).
            large = in_window * 2 >= window or len(sample) >= need - len(above)
            if not order.by_score or ties.group is not None or large or window > first:
                tied = ties.read(need - len(above), sample, len(result.hits) - in_window)
                if tied is not None and len(above) + len(tied) == need:
                    entries = above + tied
                    break
        window *= 4  # the page reaches past the window's last key
    return entries[query.offset : need], _matches(result)


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
