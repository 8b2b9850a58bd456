"""The embedded search index: tantivy, on disk under EPIPE_HOME/index.

Modules by job: `store` (TantivyStore: generations g<N>/ behind the `current` symlink),
`index` (TantivyIndex: one generation's writes, reads and search), `schema` (the tantivy
schema from schemas/index/tantivy-fields.json; the words of free text), `document` (a
Document as tantivy holds it), `compile` (SearchQuery -> tantivy query), `keyset` and
`ties` (a page in exact (sort key, id) order), `errors` (map_exceptions: tantivy's
exceptions as EngineError).
"""

from epipe.index.tantivy.errors import map_exceptions
from epipe.index.tantivy.index import WRITER_HEAP, TantivyIndex
from epipe.index.tantivy.schema import build_schema, tokens
from epipe.index.tantivy.store import TantivyStore

__all__ = [
    "WRITER_HEAP",
    "TantivyIndex",
    "TantivyStore",
    "build_schema",
    "map_exceptions",
    "tokens",
]
