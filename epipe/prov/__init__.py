"""Provenance: the lineage graph kept from the file system's operation log."""
