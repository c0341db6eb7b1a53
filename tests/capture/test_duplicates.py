"""Calibrating the duplicate threshold: the pure functions, the shipped pairs, and USE on them."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from capture.extraction.duplicates import (
    KINDS,
    PAIRS_PATH,
    POSITIVE_KINDS,
    calibrate_threshold,
    cross_validate,
    draft_text,
    load_pairs,
    pair_similarities,
    precision_recall_at,
    stratified_halves,
)
from retrieval.embedders import UniversalSentenceEncoderEmbedder

# Calibrated on the shipped pairs with USE (0.528, F1-optimal), rounded: `python -m capture.extraction.duplicates`.
RECOMMENDED_THRESHOLD = 0.53


def test_precision_recall_at_counts_cosines_at_or_above_the_threshold() -> None:
    similarities = [0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [True, False, True, False, True]
    # >= 0.7 predicts the first three: 2 true positives, 1 false positive, 1 false negative.
    assert precision_recall_at(similarities, labels, 0.7) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert precision_recall_at(similarities, labels, 0.5) == pytest.approx((3 / 5, 1.0, 0.75))
    assert precision_recall_at(similarities, labels, 0.95) == (0.0, 0.0, 0.0)


def test_calibration_picks_the_threshold_with_the_best_f1() -> None:
    similarities = [0.9, 0.85, 0.6, 0.55, 0.3]
    labels = [True, True, False, True, False]
    # 0.85: P 1, R 2/3, F1 0.8; 0.55: P 3/4, R 1, F1 6/7 (best); 0.3: P 3/5, R 1, F1 0.75.
    threshold, precision, recall, f1 = calibrate_threshold(similarities, labels)
    assert threshold == 0.55
    assert (precision, recall, f1) == pytest.approx((0.75, 1.0, 6 / 7))


def test_calibration_breaks_ties_towards_the_higher_threshold() -> None:
    similarities = [0.9, 0.8, 0.7, 0.6]
    labels = [True, False, False, True]
    # 0.9: P 1, R 1/2, F1 2/3; 0.8: F1 1/2; 0.7: F1 2/5; 0.6: P 1/2, R 1, F1 2/3, tied with 0.9.
    assert calibrate_threshold(similarities, labels) == pytest.approx((0.9, 1.0, 0.5, 2 / 3))


def test_calibration_refuses_data_it_cannot_calibrate_on() -> None:
    with pytest.raises(ValueError, match="positive"):
        calibrate_threshold([0.9, 0.1], [False, False])
    with pytest.raises(ValueError, match="as many labels"):
        calibrate_threshold([0.9, 0.1], [True])


def test_halves_are_a_fixed_stratified_partition() -> None:
    kinds = ["x"] * 6 + ["y"] * 4 + ["z"] * 3
    first, second = stratified_halves(kinds, seed=7)
    assert sorted(first + second) == list(range(len(kinds)))
    for kind in "xyz":
        counts = [sum(kinds[index] == kind for index in half) for half in (first, second)]
        assert abs(counts[0] - counts[1]) <= 1
    assert abs(len(first) - len(second)) <= 1
    assert stratified_halves(kinds, seed=7) == (first, second)


def test_cross_validation_predicts_each_half_with_the_other_halfs_threshold() -> None:
    similarities = np.asarray([0.9, 0.6, 0.3, 0.2])
    labels = np.asarray([True, True, False, False])
    # Each half holds one positive: the half with 0.9 learns 0.9 and so misses the other half's 0.6.
    result = cross_validate(similarities, labels, ["same", "same", "other", "other"], seed=1)
    assert sorted(fold["threshold"] for fold in result["folds"]) == [0.6, 0.9]
    assert sorted(fold["f1"] for fold in result["folds"]) == [0.0, 1.0]
    assert result["pooled"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3})


def test_the_shipped_pairs_are_well_formed() -> None:
    rows = [json.loads(line) for line in PAIRS_PATH.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 120
    for row in rows:
        assert set(row) == {"a", "b", "same", "kind"}
        for draft in (row["a"], row["b"]):
            assert set(draft) == {"title", "practice"}
            assert 0 < len(draft["title"]) <= 80
            assert draft["practice"].strip()
        assert row["same"] is (row["kind"] in POSITIVE_KINDS)
        assert row["a"] != row["b"]
    kinds = Counter(row["kind"] for row in rows)
    assert set(kinds) == set(KINDS)
    positives = sum(row["same"] for row in rows)
    assert 0.4 <= positives / len(rows) <= 0.6
    assert kinds["same_topic_different_practice"] > kinds["unrelated"]
    assert len(load_pairs()) == len(rows)


def test_loading_refuses_a_label_that_contradicts_its_kind(tmp_path: Path) -> None:
    draft = {"title": "Joint", "practice": "Changer le joint."}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"a": draft, "b": draft, "same": False, "kind": "translation"}) + "\n")
    with pytest.raises(ValueError, match="translation"):
        load_pairs(path)
    assert draft_text("Joint", "Changer le joint.") == "Joint. Changer le joint."


@pytest.mark.slow
def test_use_at_the_recommended_threshold_groups_duplicates_precisely() -> None:
    pairs = load_pairs()
    similarities = pair_similarities(UniversalSentenceEncoderEmbedder(threads=2), pairs)
    labels = [pair.same for pair in pairs]
    precision, recall, _ = precision_recall_at(similarities, labels, RECOMMENDED_THRESHOLD)
    assert precision >= 0.8
    assert recall >= 0.7
    assert calibrate_threshold(similarities, labels)[0] == pytest.approx(RECOMMENDED_THRESHOLD, abs=0.05)
