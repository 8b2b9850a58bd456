"""tantivy's exceptions as EngineError, at the edge of the adapter.

tantivy-py raises ValueError for its own errors (a locked or corrupt index, a bad query),
OSError for the file system, and pyo3's PanicException when Rust panics; that last one
derives from BaseException only, so it is recognised by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from epipe.errors import EpipeError
from epipe.index.engine import EngineError
from epipe.search.query import QueryError, SearchQuery


@contextmanager
def map_exceptions(action: str) -> Iterator[None]:
    """Failures of tantivy inside the block raise EngineError("cannot {action}: …").
    epipe's own errors (a QueryError for a malformed query, an EngineError) pass as they are."""
    try:
        yield
    except EpipeError:
        raise
    except (OSError, ValueError) as exc:
        raise EngineError(f"cannot {action}: {exc}") from None
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise EngineError(f"cannot {action}: tantivy panicked: {exc}") from None


def is_panic(exc: BaseException) -> bool:
    kind = type(exc)
    return kind.__module__ == "pyo3_runtime" and kind.__name__ == "PanicException"


@contextmanager
def refused_queries(query: SearchQuery) -> Iterator[None]:
    """What the user typed that tantivy refuses or panics on, as a QueryError naming the part
    (a 400, not a 500): annotation predicates, and the cursor's sort key. Other failures pass
    to map_exceptions. The query parser validates what it can; this is the net below it."""
    try:
        yield
    except EpipeError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
        raise _refusal(query, exc) or exc from None
    except BaseException as exc:
        if not is_panic(exc):
            raise
        raise _refusal(query, exc) or exc from None


def _refusal(query: SearchQuery, exc: BaseException) -> QueryError | None:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, TypeError | OverflowError) and query.after is not None:
        return QueryError("cursor", f"does not fit this query: {reason}")
    if query.xattr and not isinstance(exc, TypeError):
        shown = ", ".join(repr(p.text) for p in query.xattr)
        return QueryError(f"xattr {shown}", f"the index cannot run this predicate: {reason}")
    return None
