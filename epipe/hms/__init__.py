"""The Hive metastore view: a local HMS for the embedded mode, the Thrift adapter, the
location catalog and the consumer's reconciliation (docs/hive.md)."""
