"""Expert scoring (roles, recency, opt-out, evidence, priors) and the ranking metrics of its evaluation."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace

import pytest

from retrieval.expert_evaluation import average_precision, ndcg_at_k, precision_at_k, reciprocal_rank, split_queries
from retrieval.experts import (
    DEFAULT_CONFIG,
    Evidence,
    ExpertConfig,
    activity_priors,
    document_weights,
    score_experts,
)

TODAY = dt.date(2026, 3, 1)
UNIFORM = ExpertConfig(document_weighting="uniform", prior_weight=0.0, half_life_days=None)
RANKED = replace(UNIFORM, document_weighting="reciprocal_rank")


def item(rank: int, *people: tuple[str, str], date: dt.date | None = None, score: float = 1.0) -> Evidence:
    return Evidence(f"c{rank}", f"n{rank}", score, rank, people, date)


def names(evidence: list[Evidence], config: ExpertConfig = DEFAULT_CONFIG, **kwargs: object) -> list[str]:
    priors = kwargs.pop("priors", {})
    experts = score_experts(evidence, priors=priors, now=TODAY, config=config, **kwargs)  # type: ignore[arg-type]
    return [expert.person for expert in experts]


def test_average_precision_on_hand_computed_rankings() -> None:
    assert average_precision(["a", "b", "c", "d"], {"a", "c"}) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert average_precision(["x", "a"], {"a", "b"}) == pytest.approx((1 / 2) / 2)  # b never ranked
    assert average_precision(["x"], set()) == 0.0


def test_precision_and_reciprocal_rank() -> None:
    assert precision_at_k(["a", "x", "b"], {"a", "b"}, 5) == pytest.approx(2 / 5)
    assert precision_at_k(["x", "a"], {"a"}, 1) == 0.0
    assert reciprocal_rank(["x", "y", "a"], {"a"}) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], {"a"}) == 0.0


def test_ndcg_uses_linear_graded_gains() -> None:
    dcg = 1 / math.log2(2) + 2 / math.log2(3)
    ideal = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(["b", "a"], {"a": 2, "b": 1}, 10) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["a", "b"], {"a": 2, "b": 1}, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "y", "a"], {"a": 1}, 2) == 0.0


def test_split_queries_alternates_in_id_order() -> None:
    assert split_queries(["10", "2", "1", "9"]) == (["1", "9"], ["2", "10"])


def test_the_speaker_of_a_strong_chunk_beats_a_mere_participant() -> None:
    evidence = [
        item(1, ("Ana", "speaker"), ("Ana", "participant:member"), ("Ben", "participant:member")),
        item(2, ("Ben", "participant:member")),
    ]
    experts = score_experts(evidence, priors={}, now=TODAY, config=RANKED)
    assert [e.person for e in experts] == ["Ana", "Ben"]
    assert experts[0].content == 1.0 and experts[1].content < 0.5


def test_the_one_who_explains_counts_more_than_the_one_who_asks() -> None:
    evidence = [
        item(1, ("Mia", "speaker"), ("Mia", "participant:mentee")),
        item(2, ("Tom", "speaker"), ("Tom", "participant:mentor")),
    ]
    assert names(evidence, UNIFORM) == ["Tom", "Mia"]
    no_roles = replace(UNIFORM, role_weights={})
    assert names(evidence, replace(no_roles, unknown_role_weight=1.0)) == ["Mia", "Tom"]  # a tie, by name


def test_recency_halves_old_evidence_each_half_life() -> None:
    config = replace(UNIFORM, half_life_days=365.0)
    evidence = [
        item(1, ("Old", "author"), date=TODAY - dt.timedelta(days=730)),
        item(2, ("New", "author"), date=TODAY),
    ]
    experts = score_experts(evidence, priors={}, now=TODAY, config=config)
    assert [e.person for e in experts] == ["New", "Old"]
    assert experts[1].content == pytest.approx(0.25)
    assert names(evidence, UNIFORM) == ["New", "Old"]  # without decay: a tie, broken by name
    assert activity_priors([("a", TODAY - dt.timedelta(days=365)), ("a", None)], now=TODAY, half_life_days=365.0) == {
        "a": pytest.approx(1.5)
    }


def test_opted_out_people_are_never_ranked_nor_set_the_scale() -> None:
    evidence = [item(1, ("Ana", "speaker")), item(2, ("Ben", "speaker"), ("Ana", "participant:mentor"))]
    priors = {"Ana": 100.0, "Ben": 1.0}
    config = replace(UNIFORM, prior_weight=0.5)
    experts = score_experts(evidence, priors=priors, now=TODAY, config=config, exclude={"Ana"})
    assert [e.person for e in experts] == ["Ben"]
    assert experts[0].content == 1.0 and experts[0].prior == pytest.approx(0.5)


def test_evidence_ids_are_the_strongest_first_and_capped() -> None:
    evidence = [item(rank, ("Ana", "author")) for rank in (3, 1, 4, 2)]
    (ana,) = score_experts(evidence, priors={}, now=TODAY, config=RANKED)
    assert ana.evidence_ids == ("c1", "c2", "c3")
    assert ana.evidence_count == 4
    spoken_later = [item(1, ("Ana", "participant:member")), item(2, ("Ana", "speaker"))]
    (ana,) = score_experts(spoken_later, priors={}, now=TODAY, config=RANKED)
    assert ana.evidence_ids == ("c2", "c1")  # 1/2 x 1.0 outweighs 1/1 x 0.3 x 0.6


def test_priors_break_ties_and_add_to_the_score() -> None:
    evidence = [item(1, ("Ana", "author"), ("Ben", "author"))]
    config = replace(UNIFORM, prior_weight=0.5)
    priors = {"Ana": 1.0, "Ben": 9.0}
    ana_first = score_experts(evidence, priors={"Ana": 9.0, "Ben": 1.0}, now=TODAY, config=config)
    ben, ana = score_experts(evidence, priors=priors, now=TODAY, config=config)
    assert (ben.person, ana.person) == ("Ben", "Ana") and ana_first[0].person == "Ana"
    assert ben.score == pytest.approx(ben.content + ben.prior) and ben.prior == pytest.approx(0.5)
    assert ana.prior == pytest.approx(0.5 * math.log1p(1.0) / math.log1p(9.0))


def test_length_normalisation_damps_prolific_people() -> None:
    evidence = [item(1, ("Pro", "author")), item(2, ("Pro", "author")), item(3, ("New", "author"))]
    priors = {"Pro": 100.0, "New": 1.0}
    assert names(evidence, UNIFORM, priors=priors) == ["Pro", "New"]
    assert names(evidence, replace(UNIFORM, length_normalisation=1.0), priors=priors) == ["New", "Pro"]


def test_document_weighting_methods() -> None:
    evidence = [item(1, score=9.0), item(2, score=5.0), item(3, score=1.0)]
    assert document_weights(evidence, replace(DEFAULT_CONFIG, document_weighting="uniform")) == [1.0, 1.0, 1.0]
    assert document_weights(evidence, replace(DEFAULT_CONFIG, document_weighting="score")) == [9.0, 5.0, 1.0]
    reciprocal = document_weights(
        evidence, replace(DEFAULT_CONFIG, document_weighting="reciprocal_rank", rank_offset=1)
    )
    assert reciprocal == pytest.approx([1 / 2, 1 / 3, 1 / 4])
    softmax = document_weights(evidence, replace(DEFAULT_CONFIG, document_weighting="softmax", temperature=0.5))
    assert softmax == pytest.approx([1.0, math.exp(-1.0), math.exp(-2.0)])


def test_only_the_top_depth_items_count_and_unlinked_relations_weigh_nothing() -> None:
    evidence = [item(1, ("Ana", "author")), item(2, ("Ben", "author")), item(3, ("Eve", "reader"))]
    assert names(evidence, replace(UNIFORM, depth=1)) == ["Ana"]
    assert names(evidence, UNIFORM, k=None) == ["Ana", "Ben"]
    assert score_experts([], priors={"Ana": 3.0}, now=TODAY) == []
