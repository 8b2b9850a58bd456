"""The Hive Metastore: the local one that `epipe hms` runs, and where to reach a metastore."""

from epipe.hms.server import (
    LocalMetastore,
    MetastoreStatus,
    local_location_prefix,
    metastore_uri,
)

__all__ = ["LocalMetastore", "MetastoreStatus", "local_location_prefix", "metastore_uri"]
