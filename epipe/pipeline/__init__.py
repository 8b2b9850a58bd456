"""Pipelines: the loops that move events from a source to a bus, and from a bus to a sink."""
