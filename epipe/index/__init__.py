"""The search index's side of the pipeline: what a document is (`document`), reading the
current rows it is built from (`state`), the engines it lives in (`engine`: the ports;
`tantivy`, `elasticsearch`), keyset paging both engines share (`paging`), rebuilding it
(`rebuild`) and checking it against the database (`verify`).
"""
