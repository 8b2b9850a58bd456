"""Artifact kinds: what a file or directory is to a data or ML workflow, from its name alone.

Pure: no I/O. A kind is derived from the entry's own name (and whether it is a directory),
never from its content, so it is known the moment the entry exists and follows it through
moves and renames. The rules are data (`RULES`); the first that matches wins, so a more
specific name (`saved_model.pb`) comes before a suffix (`.pb`). docs/provenance.md lists
them; a new kind is one more row.
"""

from __future__ import annotations

from typing import NamedTuple

MODEL, DATASET, NOTEBOOK, IMAGE = "model", "dataset", "notebook", "image"
KINDS = (MODEL, DATASET, NOTEBOOK, IMAGE)


class Rule(NamedTuple):
    kind: str
    names: frozenset[str] = frozenset()  # whole names, compared case-insensitively
    suffixes: tuple[str, ...] = ()  # name endings, compared case-insensitively
    directory: bool = False  # True: the rule is for directories, False: for files


RULES: tuple[Rule, ...] = (
    # TensorFlow's SavedModel: a directory holding saved_model.pb; the file itself is a model.
    Rule(MODEL, names=frozenset({"saved_model.pb", "saved_model.pbtxt"})),
    Rule(
        MODEL,
        suffixes=(
            ".pb",
            ".h5",
            ".hdf5",
            ".keras",
            ".onnx",
            ".pt",
            ".pth",
            ".joblib",
            ".safetensors",
            ".ckpt",
            ".tflite",
            ".gguf",
            ".mlmodel",
        ),
    ),
    Rule(
        DATASET,
        suffixes=(
            ".tfrecord",
            ".tfrecords",
            ".parquet",
            ".csv",
            ".tsv",
            ".jsonl",
            ".ndjson",
            ".avro",
            ".orc",
            ".arrow",
            ".feather",
            ".npy",
            ".npz",
        ),
    ),
    Rule(NOTEBOOK, suffixes=(".ipynb",)),
    Rule(
        IMAGE,
        suffixes=(".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"),
    ),
    # Directories: Spark and Hive write a table as a directory named like its format; a
    # folder of images or records is a dataset by its conventional name.
    Rule(DATASET, suffixes=(".parquet", ".orc", ".avro", ".tfrecord", ".delta"), directory=True),
    Rule(
        DATASET,
        names=frozenset({"images", "imgs", "frames", "datasets", "dataset", "tfrecords"}),
        directory=True,
    ),
    Rule(MODEL, names=frozenset({"saved_model"}), suffixes=(".savedmodel",), directory=True),
)


def classify(name: str, *, directory: bool = False, rules: tuple[Rule, ...] = RULES) -> str | None:
    """The artifact kind of an entry named `name`, or None when no rule says."""
    folded = name.casefold()
    for rule in rules:
        if rule.directory != directory:
            continue
        if folded in rule.names or (
            # one C call rules most names out (this runs for every document indexed)
            folded.endswith(rule.suffixes)
            and any(folded.endswith(s) and len(folded) > len(s) for s in rule.suffixes)
        ):
            return rule.kind
    return None
