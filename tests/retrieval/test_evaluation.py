"""The retrieval evaluation: metric formulas on hand-computed cases, the loaders, the cache and the command."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from retrieval.embedders import Embedder, Vectors
from retrieval.evaluation import (
    CachedEmbedder,
    EvalSet,
    load_public_meetings,
    load_qmsum,
    mrr_at_k,
    ndcg_at_k,
    paired_bootstrap,
    rank_set,
    recall_at_k,
    score_set,
)
from retrieval.settings import RetrievalSettings

REPO = Path(__file__).parents[2]


class CountingEmbedder:
    """The real embedder, counting how often it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimension = inner.dimension
        self.calls = 0

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed passages and count the call."""
        self.calls += 1
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> Vectors:
        """Embed a query and count the call."""
        self.calls += 1
        return self.inner.embed_query(text)


def test_ndcg_discounts_by_log_rank_and_normalises_by_the_ideal_ranking() -> None:
    # Relevant at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3)).
    assert ndcg_at_k(["a", "x", "b"], {"a", "b"}) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["a", "b", "x"], {"a", "b"}) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y"], {"a"}) == 0.0


def test_ndcg_only_counts_the_first_k_and_caps_the_ideal_at_k() -> None:
    assert ndcg_at_k(["x", "a"], {"a"}, k=1) == 0.0
    # Three relevant documents but k=2: the ideal is two hits, which the ranking has.
    assert ndcg_at_k(["a", "b", "c"], {"a", "b", "c"}, k=2) == pytest.approx(1.0)
    # One hit at rank 2 of 2 relevant: (1/log2(3)) / (1 + 1/log2(3)).
    assert ndcg_at_k(["x", "a"], {"a", "b"}, k=2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_recall_is_the_share_of_relevant_documents_in_the_first_k() -> None:
    assert recall_at_k(["x", "a", "y", "b"], {"a", "b"}, k=2) == pytest.approx(0.5)
    assert recall_at_k(["x", "a", "y", "b"], {"a", "b"}, k=4) == pytest.approx(1.0)
    assert recall_at_k(["a"], set(), k=10) == 0.0


def test_mrr_is_the_inverse_rank_of_the_first_relevant_document_within_k() -> None:
    assert mrr_at_k(["x", "y", "a", "b"], {"a", "b"}) == pytest.approx(1 / 3)
    assert mrr_at_k(["a"], {"a"}) == 1.0
    assert mrr_at_k(["x", "y", "a"], {"a"}, k=2) == 0.0


def test_paired_bootstrap_resamples_the_per_query_differences() -> None:
    assert paired_bootstrap([0.5, 0.7, 0.9], [0.5, 0.7, 0.9]) == (0.0, 0.0, 0.0)
    mean, low, high = paired_bootstrap([1.0, 1.0, 1.0], [0.75, 0.75, 0.75])
    assert (mean, low, high) == pytest.approx((0.25, 0.25, 0.25))
    treatment = [1.0, 0.0] * 50
    baseline = [0.0] * 100
    mean, low, high = paired_bootstrap(treatment, baseline, resamples=1000, seed=7)
    assert mean == pytest.approx(0.5)
    # The mean of 100 Bernoulli(0.5) draws: standard error 0.05, so the 95% interval is about 0.40-0.60.
    assert 0.38 < low < 0.45 and 0.55 < high < 0.62
    assert paired_bootstrap(treatment, baseline, seed=7) == (mean, low, high)
    with pytest.raises(ValueError):
        paired_bootstrap([], [])


def test_meeting_reports_lose_their_markup_and_point_at_their_aligned_transcript(tmp_path: Path) -> None:
    folder = tmp_path / "public_meetings_fr"
    folder.mkdir()
    transcript = [
        {"meeting_id": "m1", "seg_id": "0", "text": "bonjour à tous", "aligned_report_seg": "r0", "validated": True},
        {
            "meeting_id": "m1",
            "seg_id": "1",
            "text": "le budget est voté",
            "aligned_report_seg": "r1",
            "validated": True,
        },
        {"meeting_id": "m2", "seg_id": "0", "text": "une autre réunion", "aligned_report_seg": "r0", "validated": True},
        {"meeting_id": "m2", "seg_id": "1", "text": "encore", "aligned_report_seg": "r0", "validated": True},
    ]
    reports = [
        {"meeting_id": "m1", "seg_id": "r1", "text": "<nom> le maire </nom> <p> budget voté </p>",
         "gold_transcript_seg_ids": ["1"]},
        {"meeting_id": "m1", "seg_id": "r2", "text": "<p> sans alignement </p>", "gold_transcript_seg_ids": []},
        {"meeting_id": "m2", "seg_id": "r0", "text": "<p> autre </p>", "gold_transcript_seg_ids": ["0", "1"]},
    ]  # fmt: skip
    (folder / "transcript_segments.jsonl").write_text("\n".join(json.dumps(row) for row in transcript))
    (folder / "report_segments.jsonl").write_text("\n".join(json.dumps(row) for row in reports))
    evalset = load_public_meetings(tmp_path, meetings=1)
    assert set(evalset.documents) == {"m1/0", "m1/1"}
    assert evalset.queries == {"m1/r1": "le maire budget voté"}
    assert evalset.relevant == {"m1/r1": frozenset({"m1/1"})}


def test_qmsum_chunks_group_turns_and_are_relevant_when_they_overlap_a_gold_span(tmp_path: Path) -> None:
    folder = tmp_path / "qmsum" / "derived"
    folder.mkdir(parents=True)
    turns = [{"meeting_id": "A", "turn": i, "speaker": "Chair", "text": f"turn {i}"} for i in range(5)]
    turns += [{"meeting_id": "B", "turn": 0, "speaker": "PM", "text": "other"}]
    queries = [
        {"qid": "A#s0", "meeting_id": "A", "type": "specific", "query": "what about turn 2", "gold_turn_spans": [[2, 2]]},
        {"qid": "A#s1", "meeting_id": "A", "type": "specific", "query": "q", "gold_turn_spans": [[1, 4]]},
        {"qid": "A#g0", "meeting_id": "A", "type": "general", "query": "summarise", "gold_turn_spans": []},
    ]  # fmt: skip
    (folder / "test_turns.jsonl").write_text("\n".join(json.dumps(row) for row in turns))
    (folder / "test_queries.jsonl").write_text("\n".join(json.dumps(row) for row in queries))
    evalset = load_qmsum(tmp_path, every=2, turns_per_chunk=2)
    assert evalset.documents == {
        "A/0": "Chair: turn 0\nChair: turn 1",
        "A/2": "Chair: turn 2\nChair: turn 3",
        "A/4": "Chair: turn 4",
    }
    assert evalset.relevant == {"A#s0": frozenset({"A/2"}), "A#s1": frozenset({"A/0", "A/2", "A/4"})}
    assert evalset.scopes["A#s0"] == frozenset({"A/0", "A/2", "A/4"})


def test_rank_set_ranks_with_every_system_and_reuses_cached_embeddings(tmp_path: Path, embedder: Embedder) -> None:
    evalset = EvalSet(
        name="toy",
        language="fr",
        subset="toy",
        reference_bm25=0.0,
        documents={
            "seal": "Le joint de la pompe fuit : on l'a remplacé par un joint en viton.",
            "camera": "La caméra de vision se dérègle quand la lumière de l'atelier change.",
            "forklift": "Le chariot élévateur doit être chargé chaque soir.",
        },
        queries={"q1": "fuite du joint de pompe", "q2": "réglage de la caméra"},
        relevant={"q1": frozenset({"seal"}), "q2": frozenset({"camera"})},
    )
    counting = CountingEmbedder(embedder)
    rankings = rank_set(evalset, CachedEmbedder(counting, tmp_path / "cache"), RetrievalSettings())
    assert [ranking[0] for ranking in rankings["hybrid"]] == ["seal", "camera"]
    assert [ranking[0] for ranking in rankings["dense"]] == ["seal", "camera"]
    assert len(list((tmp_path / "cache").rglob("*.npy"))) == 2  # one block of passages, one of queries
    assert counting.calls == 3
    assert rank_set(evalset, CachedEmbedder(counting, tmp_path / "cache"), RetrievalSettings()) == rankings
    assert counting.calls == 3
    report = score_set(evalset, rankings)
    assert report["systems"]["hybrid"]["ndcg@10"] == pytest.approx(1.0)
    assert report["hybrid_minus_bm25_ndcg@10"]["ci95"][0] <= report["hybrid_minus_bm25_ndcg@10"]["mean"]


def test_the_command_says_the_data_is_absent_and_succeeds_without_figures(tmp_path: Path) -> None:
    env = {**os.environ, "COMPAGNON_EVAL_DATA": str(tmp_path / "absent")}
    result = subprocess.run(
        [sys.executable, "-m", "retrieval.evaluation", "--out", str(tmp_path / "eval.json")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "evaluation data absent" in result.stdout
    assert str(tmp_path / "absent") in result.stdout
    assert not (tmp_path / "eval.json").exists()
