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
