"""Artifact kinds from names: the rules of docs/provenance.md."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from epipe.prov.artifacts import DATASET, IMAGE, KINDS, MODEL, NOTEBOOK, RULES, Rule, classify


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("detector.pb", MODEL),
        ("saved_model.pb", MODEL),
        ("Model.ONNX", MODEL),
        ("weights.pth", MODEL),
        ("clf.joblib", MODEL),
        ("train-00001-of-00010.tfrecord", DATASET),
        ("part-0000.snappy.parquet", DATASET),
        ("rows.csv", DATASET),
        ("explore.ipynb", NOTEBOOK),
        ("img_0001.JPG", IMAGE),
        ("README.md", None),
        ("pb", None),
        (".pb", None),  # a suffix alone names nothing
        ("model.pb.tmp", None),
    ],
)
def test_files_are_classified_by_their_name(name: str, kind: str | None) -> None:
    assert classify(name) == kind


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("images", DATASET),
        ("events.parquet", DATASET),
        ("saved_model", MODEL),
        ("detector.pb", None),  # a directory named like a model file is not one
        ("runs", None),
    ],
)
def test_directories_have_rules_of_their_own(name: str, kind: str | None) -> None:
    assert classify(name, directory=True) == kind


def test_the_first_matching_rule_wins_and_rules_extend() -> None:
    rules = (Rule("checkpoint", suffixes=(".ckpt",)), *RULES)
    assert classify("step-100.ckpt", rules=rules) == "checkpoint"
    assert classify("step-100.ckpt") == MODEL


@given(st.text(max_size=300))
def test_any_name_gets_a_known_kind_or_none(name: str) -> None:
    for directory in (False, True):
        assert classify(name, directory=directory) in (*KINDS, None)
