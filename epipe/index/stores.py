"""The index store the settings name: tantivy under EPIPE_HOME (default) or Elasticsearch."""

from __future__ import annotations

from epipe.errors import ConfigError
from epipe.index.engine import IndexStore
from epipe.settings import Settings


def open_store(settings: Settings) -> IndexStore:
    if settings.index == "tantivy":
        from epipe.index.tantivy import TantivyStore

        return TantivyStore(settings.home.resolve() / "index")
    if not settings.es_url:
        raise ConfigError("EPIPE_INDEX=elasticsearch needs EPIPE_ES_URL (http://host:9200)")
    from epipe.index.elasticsearch import ElasticsearchStore

    return ElasticsearchStore(settings.es_url)
