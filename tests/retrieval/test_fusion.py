"""Hybrid fusion: normalised-score and reciprocal-rank fusion, long-query pieces and their merge."""

from __future__ import annotations

import inspect

import pytest

from retrieval.search import (
    MAX_QUERY_PIECES,
    HybridSearcher,
    fuse,
    fuse_rankings,
    fuse_scores,
    merge_by_best_score,
    query_pieces,
)
from retrieval.settings import RetrievalSettings


def test_fuse_scores_adds_weighted_min_max_normalised_scores() -> None:
    lexical = [("a", 12.0), ("b", 8.0), ("c", 2.0)]
    dense = [("c", 0.90), ("a", 0.85), ("d", 0.80)]
    fused = dict(fuse_scores([(0.6, lexical), (0.4, dense)]))
    # a: 0.6 * 1 + 0.4 * 0.5; b: 0.6 * 0.6 + nothing from dense; c: 0 + 0.4 * 1; d: 0.4 * 0.
    assert fused == pytest.approx({"a": 0.8, "b": 0.36, "c": 0.4, "d": 0.0})
    assert [doc for doc, _ in fuse_scores([(0.6, lexical), (0.4, dense)])] == ["a", "c", "b", "d"]


def test_fuse_scores_survives_single_and_empty_rankings() -> None:
    assert fuse_scores([(1.0, [("a", 3.0)]), (1.0, [])]) == [("a", 1.0)]
    assert fuse_scores([]) == []


def test_fuse_dispatches_to_reciprocal_rank_fusion_on_request() -> None:
    rankings = [(1.0, [("a", 9.0), ("b", 1.0)]), (2.0, [("b", 0.5)])]
    assert fuse(rankings, "rrf", rrf_k=60) == fuse_rankings([(1.0, ["a", "b"]), (2.0, ["b"])], 60)
    with pytest.raises(ValueError):
        fuse(rankings, "borda")


def test_short_queries_stay_whole_and_long_ones_are_cut_at_sentence_ends() -> None:
    assert query_pieces("joint de pompe qui fuit") == ["joint de pompe qui fuit"]
    sentence = " ".join(["mot"] * 39) + " fin ."
    five = " ".join([sentence] * 5)  # five sentences of 41 words
    assert query_pieces(five, words=60) == [f"{sentence} {sentence}", f"{sentence} {sentence}", sentence]
    # A short tail joins the last piece rather than standing alone.
    tail = " ".join([sentence] * 4 + ["court ."])
    assert query_pieces(tail, words=60) == [f"{sentence} {sentence}", f"{sentence} {sentence} court ."]


def test_a_very_long_query_gives_at_most_the_maximum_number_of_pieces() -> None:
    long_query = " ".join(["une phrase de six mots ."] * 400)
    pieces = query_pieces(long_query, words=10)
    assert len(pieces) <= MAX_QUERY_PIECES
    assert " ".join(pieces) == long_query


def test_merge_by_best_score_keeps_each_documents_best_score() -> None:
    merged = merge_by_best_score([[("a", 0.7), ("b", 0.6)], [("b", 0.9), ("c", 0.5)]], depth=2)
    assert merged == [("b", 0.9), ("a", 0.7)]


def test_the_searcher_defaults_are_the_settings_defaults() -> None:
    parameters = inspect.signature(HybridSearcher).parameters
    settings = RetrievalSettings.model_fields
    assert parameters["lexical_weight"].default == settings["lexical_weight"].default
    assert parameters["dense_weight"].default == settings["dense_weight"].default
    assert parameters["fusion"].default == "convex"
