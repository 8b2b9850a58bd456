"""The composition root: the one module that chooses adapters from `Settings` and builds them.

The CLI, the REST API and the benchmarks get every adapter here (the bus, the source, the
index store, each consumer's sink) and nowhere else is one constructed. Consumers are
registered in `CONSUMERS`, by name; docs/architecture.md has the recipes for adding a
consumer or a source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg

from epipe.bus import Bus
from epipe.db.server import connect
from epipe.errors import ConfigError
from epipe.index.engine import IndexStore
from epipe.pipeline.runner import ConsumerSpec, Runner
from epipe.pipeline.store import PipelineStore
from epipe.settings import Settings
from epipe.sink import Sink
from epipe.source import Source

if TYPE_CHECKING:
    from epipe.hms.locations import LocationMap
    from epipe.hms.metastore import Metastore


def open_index_store(settings: Settings, root: Path | None = None) -> IndexStore:
    """The search index of the settings: tantivy under EPIPE_HOME/index (or `root`), or
    Elasticsearch at EPIPE_ES_URL."""
    if settings.index == "tantivy":
        return open_tantivy_store(root or settings.home.resolve() / "index")
    if not settings.es_url:
        raise ConfigError("EPIPE_INDEX=elasticsearch needs EPIPE_ES_URL (http://host:9200)")
    from epipe.index.elasticsearch import ElasticsearchStore

    return ElasticsearchStore(settings.es_url)


def open_tantivy_store(root: Path) -> IndexStore:
    """The embedded index under `root` (what `epipe serve` opens with EPIPE_HOME=root/..)."""
    from epipe.index.tantivy import TantivyStore

    return TantivyStore(root)


def open_bus(settings: Settings) -> Bus:
    """The in-process bus (embedded), or Kafka at EPIPE_KAFKA_BOOTSTRAP: epipe's topics, or
    (EPIPE_BUS=connect) those Kafka Connect's Debezium connector writes."""
    if settings.bus == "inprocess":
        from epipe.bus.inprocess import InProcessBus

        return InProcessBus()
    if not settings.kafka_bootstrap:
        raise ConfigError(
            f"EPIPE_BUS={settings.bus} needs EPIPE_KAFKA_BOOTSTRAP (host:port of a broker)"
        )
    group = {  # how a consumer group notices a member gone
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
    }
    if settings.bus == "connect":
        from epipe.bus.connect import ConnectBus

        return ConnectBus(
            settings.kafka_bootstrap,
            topic_prefix=settings.connect_topic_prefix,
            group_prefix=settings.kafka_prefix,
            replication=settings.kafka_replication,
            **group,
        )
    from epipe.bus.kafka import KafkaBus

    return KafkaBus(
        settings.kafka_bootstrap,
        partitions=settings.kafka_partitions,
        replication=settings.kafka_replication,
        prefix=settings.kafka_prefix,
        **group,
    )


CONNECT_READS_ONLY = (
    "EPIPE_BUS=connect: Kafka Connect's Debezium connector reads the change log and writes "
    "the topics; run only consumers here (`epipe consume NAME`)"
)


def open_source(
    settings: Settings, dsn: str, *, backfill: bool = False, backfill_chunk: int | None = None
) -> Source:
    """The change stream: PostgreSQL's change log through slot EPIPE_SLOT, read by the
    built-in tailer or (EPIPE_SOURCE=debezium) Debezium's embedded engine. `backfill`: emit
    every existing row again (as when the slot is new)."""
    if settings.bus == "connect":
        raise ConfigError(CONNECT_READS_ONLY)
    if settings.source == "debezium":
        from epipe.db.server import tcp_dsn
        from epipe.source.debezium import DebeziumSource

        return DebeziumSource(
            dsn,
            tcp_dsn(settings, dsn),
            PipelineStore(dsn),
            home=settings.home,
            slot=settings.slot,
            publication=settings.publication,
            backfill=backfill,
            heartbeat_interval=settings.heartbeat_interval,
            heap_mb=settings.debezium_heap_mb,
        )
    from epipe.source.postgres import PostgresSource

    return PostgresSource(
        dsn,
        PipelineStore(dsn),
        slot=settings.slot,
        publication=settings.publication,
        backfill=backfill,
        backfill_chunk=backfill_chunk,
        heartbeat_interval=settings.heartbeat_interval,
    )


def runner(
    settings: Settings,
    dsn: str,
    consumers: Sequence[ConsumerSpec],
    *,
    source: Source | None = None,
) -> Runner:
    """Consumers (and, given a source, the tailer) of one process on the settings' bus."""
    return Runner(
        bus=open_bus(settings),
        store=lambda: PipelineStore(dsn),
        consumers=consumers,
        source=source,
    )


# -- the consumer registry -------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    """A consumer `epipe consume NAME` can run and `epipe run` runs when `enabled`."""

    name: str
    summary: str
    sink: Callable[[Settings, str], Sink]  # (settings, dsn) -> a new sink
    serves_search: bool = False  # read-your-writes searches wait for it
    enabled: Callable[[Settings], bool] = lambda settings: True


def _index_sink(settings: Settings, dsn: str) -> Sink:
    return index_sink(dsn, open_index_store(settings))


def _hive_sink(settings: Settings, dsn: str) -> Sink:
    from epipe.sink.hive import HiveSink

    return HiveSink(
        _connector(dsn),
        open_metastore(settings),
        hive_locations(settings),
        scan_interval=settings.hms_scan_interval,
    )


def _provenance_sink(settings: Settings, dsn: str) -> Sink:
    from epipe.sink.provenance import ProvenanceSink

    return ProvenanceSink(_connector(dsn))


def _openlineage_sink(settings: Settings, dsn: str) -> Sink:
    if not settings.openlineage_url:
        raise ConfigError(
            "the openlineage consumer needs EPIPE_OPENLINEAGE_URL (the base URL of an "
            "OpenLineage server, e.g. http://marquez:5000)"
        )
    from epipe.sink.openlineage import HttpEndpoint, OpenLineageSink

    return OpenLineageSink(
        _connector(dsn), HttpEndpoint(settings.openlineage_url), instance=settings.instance
    )


CONSUMERS: dict[str, Registered] = {
    entry.name: entry
    for entry in (
        Registered("index", "keeps the search index equal to the file system", _index_sink, True),
        Registered(
            "hive",
            "keeps the Hive metastore's databases, tables and partitions at their directories",
            _hive_sink,
            enabled=lambda settings: metastore_uri(settings) is not None,
        ),
        Registered(
            "provenance",
            "keeps the lineage graph (apps, the files they read and wrote) from the operation log",
            _provenance_sink,
        ),
        Registered(
            "openlineage",
            "posts each app's run (what it read and wrote) to the OpenLineage server at "
            "EPIPE_OPENLINEAGE_URL",
            _openlineage_sink,
            enabled=lambda settings: settings.openlineage_url is not None,
        ),
    )
}


# -- the Hive metastore ----------------------------------------------------------------------


def metastore_uri(settings: Settings) -> str | None:
    """EPIPE_HMS_URI, else the local metastore's when it runs, else None."""
    from epipe.hms.server import metastore_uri as uri

    return uri(settings)


def open_metastore(settings: Settings) -> Metastore:
    uri = metastore_uri(settings)
    if uri is None:
        raise ConfigError(
            "no Hive metastore: set EPIPE_HMS_URI=thrift://host:port or run `epipe hms start`"
        )
    from epipe.hms.metastore import Metastore

    return Metastore(uri, parallel=settings.hms_parallel)


def hive_locations(settings: Settings) -> LocationMap:
    """EPIPE_HMS_LOCATION_PREFIX, else the local metastore's file: prefix."""
    from epipe.hms.locations import LocationMap

    if settings.hms_location_prefix:
        return LocationMap.of(settings.hms_location_prefix)
    from epipe.hms.server import local_location_prefix

    return LocationMap.of(local_location_prefix(settings.home))


def consumer(name: str, settings: Settings, dsn: str) -> ConsumerSpec:
    """The registered consumer `name`, ready to run."""
    entry = CONSUMERS.get(name)
    if entry is None:
        known = ", ".join(sorted(CONSUMERS))
        raise ConfigError(f"no consumer named {name!r}; registered consumers: {known}")
    return ConsumerSpec(entry.name, lambda: entry.sink(settings, dsn), entry.serves_search)


def enabled_consumers(settings: Settings, dsn: str) -> list[ConsumerSpec]:
    """The consumers `epipe run` runs with these settings."""
    return [consumer(name, settings, dsn) for name, e in CONSUMERS.items() if e.enabled(settings)]


def index_sink(dsn: str, store: IndexStore) -> Sink:
    """The index consumer's sink over `store` (its own connections to the database)."""
    from epipe.sink.index import IndexSink

    return IndexSink(_connector(dsn), store)


def index_consumer(dsn: str, store: IndexStore) -> ConsumerSpec:
    """The index consumer over a given store (benchmarks and tests on scratch indexes)."""
    return ConsumerSpec("index", lambda: index_sink(dsn, store), serves_search=True)


def events_file_consumer(path: Path) -> ConsumerSpec:
    """Every event appended to `path` as a JSON line (`epipe run --events-file`)."""
    from epipe.sink.events_file import EventsFileSink

    return ConsumerSpec("events-file", lambda: EventsFileSink(path))


def _connector(dsn: str) -> Callable[[], psycopg.Connection]:
    return lambda: connect(dsn)
