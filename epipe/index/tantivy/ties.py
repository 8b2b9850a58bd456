"""Reading a group of equal sort keys apart, in id order (tantivy orders by one key only).

A field's key can be searched for: one search ordered by id gives the group exactly. A score
cannot once `q` has more words than compile.GROUP_WORDS (below that, keyset.py reads each
score's group by a query), so two ways are taken:
- bounded: when the window holds `count` of them, the answer's ids are at most the
  `count`-th of those; one search by score among ids in (lowest, that id] holds all of the
  group there once it reaches a lower score (its limit grows until it does);
- streamed: otherwise matches are read in id order a chunk per round (the first sized by the
  group's known share of the matches, then four times larger), re-scored by the same query
  restricted to their ids (which adds exactly 0.0 to each score), and those scoring `key`
  kept.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import tantivy

from epipe.index.paging import Order
from epipe.index.tantivy.document import ids

Entry = tuple[Any, int, tantivy.DocAddress]  # (sort key, id, where the document is)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Ties:
    """The matches whose sort key is `key`, with ids above `lowest`, in id order."""

    def __init__(
        self,
        schema: tantivy.Schema,
        searcher: tantivy.Searcher,
        compiled: tantivy.Query,
        order: Order,
        key: Any,
        lowest: int | None,
        share: float,
    ) -> None:
        self.schema, self.searcher, self.compiled = schema, searcher, compiled
        self.order, self.key, self.lowest = order, key, lowest
        self.share = share  # the group's share of all matches, as far as known
        self.found: list[Entry] = []
        self.chunk = 0
        self.exhausted = False

    def read(self, count: int, sample: list[int], above: int) -> list[Entry] | None:
        """The first `count` of them (fewer if there are no more); None while unknown.
        `sample`: ids of some of them (the window's, above `lowest`, ascending); `above`: at
        least as many as the matches sorting before them."""
        if self.order.field is not None:
            return self._search([self._equal(self.order.field)], count)
        if not self.found and len(sample) >= count:
            return self._bounded(count, sample[count - 1], above)
        if len(self.found) < count and not self.exhausted:
            self.chunk = self.chunk * 4 or 2 * math.ceil(count / max(self.share, 1e-9)) + 64
            chunk = self._search([], self.chunk)
            self.exhausted = len(chunk) < self.chunk
            if chunk:
                self.lowest = chunk[-1][1]
                scores = self._scores([inode_id for _, inode_id, _ in chunk])
                self.found += [(self.key, i, a) for _, i, a in chunk if scores.get(i) == self.key]
        if len(self.found) >= count or self.exhausted:
            return self.found[:count]
        return None

    def _bounded(self, count: int, highest: int, above: int) -> list[Entry]:
        q = tantivy.Query
        within = q.range_query(
            self.schema,
            "id",
            tantivy.FieldType.Unsigned,
            self.lowest,
            highest,
            include_lower=self.lowest is None,
        )
        bounded = q.boolean_query(
            [
                (tantivy.Occur.Must, self.compiled),
                (tantivy.Occur.Must, q.const_score_query(within, 0.0)),
            ]
        )
        limit = above + 16 * count + 1024  # a retry costs a pass; a longer list, little
        while True:
            result = self.searcher.search(bounded, limit, count=False)
            if len(result.hits) < limit or result.hits[-1][0] != self.key:
                break
            limit *= 4
        addresses = [address for score, address in result.hits if score == self.key]
        group = sorted(zip(ids(self.searcher, addresses), addresses, strict=True))
        return [(self.key, inode_id, address) for inode_id, address in group[:count]]

    def _search(self, extra: list[tantivy.Query], limit: int) -> list[Entry]:
        """Matches (with `extra` clauses) above `lowest`, in id order."""
        q = tantivy.Query
        must = [self.compiled, *extra]
        if self.lowest is not None:
            must.append(
                q.range_query(
                    self.schema,
                    "id",
                    tantivy.FieldType.Unsigned,
                    self.lowest,
                    None,
                    include_lower=False,
                )
            )
        result = self.searcher.search(
            q.boolean_query([(tantivy.Occur.Must, m) for m in must]),
            limit,
            count=False,
            order_by_field="id",
            order=tantivy.Order.Asc,
        )
        return [(self.key, inode_id, address) for inode_id, address in result.hits]

    def _scores(self, group: list[int]) -> dict[int, float]:
        q = tantivy.Query
        only = q.const_score_query(q.term_set_query(self.schema, "id", group), 0.0)
        scored = self.searcher.search(
            q.boolean_query([(tantivy.Occur.Must, self.compiled), (tantivy.Occur.Must, only)]),
            len(group),
            count=False,
        )
        addresses = [address for _, address in scored.hits]
        return dict(
            zip(ids(self.searcher, addresses), (score for score, _ in scored.hits), strict=True)
        )

    def _equal(self, field: str) -> tantivy.Query:
        """Matches whose sort field holds `key` (as a sorted search returns it)."""
        q, schema, key = tantivy.Query, self.schema, self.key
        if field == "size":
            return q.range_query(schema, "size", tantivy.FieldType.Unsigned, key, key)
        if field == "mtime":  # keys of dates are nanoseconds since the epoch
            when = _EPOCH + timedelta(microseconds=key // 1000)
            return q.range_query(schema, "mtime", tantivy.FieldType.Date, when, when)
        return q.term_query(schema, field, key)
