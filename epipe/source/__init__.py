"""The source: PostgreSQL's change log (logical replication, pgoutput) as domain events.

`pgoutput` decodes messages and `translate` turns them into events (both pure);
`postgres` holds the replication stream, the publication and the slot; `backfill` brings
rows that existed before the slot into the same stream.
"""

from __future__ import annotations

from epipe.errors import EpipeError


class SourceError(EpipeError):
    """The change log cannot be read (no slot, lost connection, wrong configuration)."""
