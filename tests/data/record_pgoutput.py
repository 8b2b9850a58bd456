"""Record real pgoutput payloads for the decoder's unit tests (tests/data/pgoutput_v1.json).

Run with `python -m tests.data.record_pgoutput` when the recorded cases need to change; it
starts a throw-away embedded PostgreSQL, runs a scripted history that produces every
message kind the decoder handles, and stores each message's bytes as hex.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg

from epipe.db.embedded import EmbeddedPostgres
from epipe.db.migrate import migrate
from epipe.db.server import connect
from epipe.fs.namespace import Namespace

OUT = Path(__file__).with_name("pgoutput_v1.json")
Step = Callable[[Namespace, psycopg.Connection], object]

SCRIPT: list[tuple[str, Step]] = [
    ("mkdir", lambda ns, c: ns.mkdir("/d")),
    ("put", lambda ns, c: ns.put("/d/f", size=10)),
    # a value large and random enough to be TOASTed out of line
    ("setxattr-toast", lambda ns, c: ns.setxattr("/d/f", "blob", secrets.token_hex(8000))),
    # changing only the key of an xattr row: the new tuple holds the TOASTed value as 'u'
    ("rename-xattr", lambda ns, c: c.execute("UPDATE xattrs SET name = 'blob2'")),
    ("mv", lambda ns, c: ns.mv("/d/f", "/g")),
    ("write", lambda ns, c: ns.write("/g", size=99)),
    ("update-no-old-tuple", lambda ns, c: c.execute("UPDATE samples SET note = 'changed'")),
    (
        "message-transactional",
        lambda ns, c: c.execute("SELECT pg_logical_emit_message(true, 'epipe.test', 'hello')"),
    ),
    (
        "message-plain",
        lambda ns, c: c.execute("SELECT pg_logical_emit_message(false, 'epipe.test', 'now')"),
    ),
    ("rm-r", lambda ns, c: ns.rm("/d", recursive=True)),
    ("rm", lambda ns, c: ns.rm("/g")),
    ("truncate", lambda ns, c: c.execute("TRUNCATE samples RESTART IDENTITY CASCADE")),
]


def record() -> list[dict[str, str]]:
    with tempfile.TemporaryDirectory() as home:
        server = EmbeddedPostgres(Path(home))
        server.start()
        try:
            with connect(server.dsn) as conn:
                migrate(conn)
                conn.execute("CREATE TYPE mood AS ENUM ('ok', 'meh')")
                conn.execute("CREATE TABLE samples (id serial PRIMARY KEY, m mood, note text)")
                conn.execute("CREATE PUBLICATION rec FOR TABLE inodes, xattrs, prov_ops, samples")
                conn.execute("SELECT pg_create_logical_replication_slot('rec', 'pgoutput')")
                conn.execute("SELECT pg_replication_origin_create('elsewhere')")
                ns = Namespace(conn)
                with conn.transaction():  # a transaction replayed from another origin
                    conn.execute("SELECT pg_replication_origin_session_setup('elsewhere')")
                    conn.execute("SELECT pg_replication_origin_xact_setup('0/AB', now())")
                    conn.execute("INSERT INTO samples (m, note) VALUES ('ok', 'from origin')")
                conn.execute("SELECT pg_replication_origin_session_reset()")
                for _, step in SCRIPT:
                    step(ns, conn)
                rows = conn.execute(
                    "SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes('rec', NULL,"
                    " NULL, 'proto_version', '1', 'publication_names', 'rec', 'messages', 'true')"
                ).fetchall()
        finally:
            server.stop()
    return [{"lsn": lsn, "hex": bytes(data).hex()} for lsn, data in rows]


if __name__ == "__main__":
    messages = record()
    OUT.write_text(
        json.dumps({"steps": [name for name, _ in SCRIPT], "messages": messages}, indent=1) + "\n"
    )
    print(f"{len(messages)} messages -> {OUT}")
