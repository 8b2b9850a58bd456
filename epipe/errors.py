"""The one exception tree of epipe.

    EpipeError                 every failure epipe reports on purpose
    ├── ConfigError            a setting is wrong; the message names it and the fix
    ├── DatabaseError          the metadata database cannot be started, reached or used
    │   └── MigrationError     the schema cannot be brought to the expected version
    ├── MetastoreError         the local Hive Metastore cannot be started or stopped (epipe.hms)
    ├── AccountError           unknown or duplicate user / project, bad role
    ├── FsError                a file-system operation failed; carries a POSIX error name
    ├── SourceError            the change log cannot be read          (epipe.source)
    ├── DecodeError            a payload is not pgoutput we understand (epipe.source.pgoutput)
    ├── CodecError             bytes that are not an epipe event      (epipe.events.codec)
    ├── BusError               the bus cannot accept or deliver       (epipe.bus)
    ├── Rejected               a sink can never apply this event      (epipe.sink)
    ├── EngineError            the search engine failed               (epipe.index.engine)
    └── QueryError             a malformed search query; names the part (epipe.search.query)

The stage errors live next to their port. Each adapter translates its library's exceptions
into these at its edge (one `map_exceptions` per adapter), so callers never see psycopg,
kafka-python, tantivy or elasticsearch errors.
"""

from __future__ import annotations


class EpipeError(Exception):
    """Root of every error epipe raises deliberately."""


class ConfigError(EpipeError):
    """A setting is missing or wrong."""


class DatabaseError(EpipeError):
    """The metadata database cannot be started, reached or used."""


class MigrationError(DatabaseError):
    """The schema cannot be migrated (e.g. an applied migration was edited)."""


class MetastoreError(EpipeError):
    """The local Hive Metastore cannot be started, reached or stopped."""


class AccountError(EpipeError):
    """A user, project or membership request is invalid."""


class FsError(EpipeError):
    """A namespace operation failed with a POSIX error (ENOENT, EEXIST, ...)."""

    def __init__(self, code: str, path: str, detail: str = "") -> None:
        self.code = code
        self.path = path
        self.detail = detail
        text = f"{code}: {path}" if path else code
        super().__init__(f"{text} ({detail})" if detail else text)
