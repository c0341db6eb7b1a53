"""Expert finding: people scored from retrieved evidence (Balog's document-centric Model 2), roles, recency and priors.

A retrieved item (a chunk, an approved entry) is evidence for the people attached to it. Each person's
weight on an item is the strength of their link (``speaker``, ``author``, ``credited``, ``participant``)
times the role they played in the note (``participant:<role>``: the mentor who explains counts more
than the mentee who asks). An item weighs by its retrieval rank or score and its age. A person's
content score sums their items, optionally divided by a power of how much they contributed overall,
then is scaled so the best candidate has 1; a smoothed activity prior is added on top.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

PARTICIPANT = "participant"

DocumentWeighting = Literal["uniform", "score", "softmax", "reciprocal_rank"]
PriorForm = Literal["log", "linear"]

DEFAULT_RELATION_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"speaker": 1.0, "author": 1.0, "credited": 1.0, PARTICIPANT: 0.3}
)
DEFAULT_ROLE_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"mentor": 1.0, "author": 1.0, "facilitator": 0.8, "pair": 0.8, "member": 0.6, "mentee": 0.4}
)


@dataclass(frozen=True)
class Evidence:
    """A retrieved item (chunk or entry), its retrieval score and rank (1 = best), and the people linked to it.

    ``people`` holds ``(person, relation)`` pairs; a relation is ``speaker``, ``author``, ``credited``
    or ``participant:<role>`` (a person may appear with several relations on one item).
    """

    id: str
    note_id: str
    score: float
    rank: int
    people: tuple[tuple[str, str], ...]
    date: dt.date | None = None


@dataclass(frozen=True)
class ExpertConfig:
    """How evidence and priors are weighed; defaults from ``python -m retrieval.expert_evaluation`` (see below).

    Picked on the tune halves of Stack Exchange android (as of the question date) and QMSum, the best mean of
    SE MAP and QMSum MRR over 1,600 grid points: each item weighs 1/rank over the top 200, its content
    decays with a 180-day half-life, and a log-activity prior as strong as the content (``prior_weight``
    1) counts recent work (``prior_half_life_days`` 30: who is active now). Held out: SE MAP 0.210,
    QMSum MRR 0.901 (0.213 and 0.838 with the previous score-weighted, 0.25-prior defaults). Length
    normalisation hurt on Stack Exchange. Relation and role weights are not measured: no public set has roles.
    """

    relation_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_RELATION_WEIGHTS)
    role_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_ROLE_WEIGHTS)
    unknown_role_weight: float = 0.6
    document_weighting: DocumentWeighting = "reciprocal_rank"
    rank_offset: float = 0.0
    temperature: float = 0.1
    depth: int = 200
    half_life_days: float | None = 180.0
    # The prior's own half-life: recent activity says who is around to ask, older work is in the content.
    prior_half_life_days: float | None = 30.0
    prior_weight: float = 1.0
    prior_form: PriorForm = "log"
    length_normalisation: float = 0.0
    max_evidence: int = 3


DEFAULT_CONFIG = ExpertConfig()


@dataclass(frozen=True)
class ExpertScore:
    """A person's score with its explanation: ``score == content + prior``.

    ``content`` is the person's evidence relative to the best candidate's (0 to 1), ``prior`` the weighted
    activity prior (0 to ``prior_weight``); ``evidence_ids`` are their strongest items, strongest first.
    """

    person: str
    score: float
    content: float
    prior: float
    evidence_ids: tuple[str, ...]
    evidence_count: int
    activity: float


def document_weights(evidence: Sequence[Evidence], config: ExpertConfig) -> list[float]:
    """The weight of each item from its retrieval rank or score, before recency."""
    method = config.document_weighting
    if method == "uniform":
        return [1.0] * len(evidence)
    if method == "reciprocal_rank":
        return [1.0 / (config.rank_offset + item.rank) for item in evidence]
    scores = [item.score for item in evidence]
    if method == "score":
        return [max(score, 0.0) for score in scores]
    low, high = min(scores, default=0.0), max(scores, default=0.0)
    spread = (high - low) or 1.0
    return [math.exp((score - high) / spread / config.temperature) for score in scores]


def recency_factor(date: dt.date | None, now: dt.date, half_life_days: float | None) -> float:
    """How much an item dated ``date`` still counts at ``now``: halved every ``half_life_days`` (1 when undated)."""
    if date is None or half_life_days is None:
        return 1.0
    age = max((now - date).days, 0)
    return float(0.5 ** (age / half_life_days))


def link_weight(relations: Collection[str], config: ExpertConfig) -> float:
    """A person's weight on one item: their strongest relation times the strongest role they played."""
    strength = 0.0
    role_factor: float | None = None
    for relation in relations:
        kind, _, role = relation.partition(":")
        strength = max(strength, config.relation_weights.get(kind, 0.0))
        if role:
            factor = config.role_weights.get(role, config.unknown_role_weight)
            role_factor = factor if role_factor is None else max(role_factor, factor)
    return strength * (1.0 if role_factor is None else role_factor)


def activity_prior(activity: float, top_activity: float, form: PriorForm) -> float:
    """A person's activity relative to the most active person's, from 0 to 1 (``log``: log(1 + n) smoothed)."""
    if top_activity <= 0:
        return 0.0
    if form == "log":
        return math.log1p(max(activity, 0.0)) / math.log1p(top_activity)
    return max(activity, 0.0) / top_activity


def score_experts(
    evidence: Sequence[Evidence],
    *,
    priors: Mapping[str, float],
    now: dt.date,
    config: ExpertConfig = DEFAULT_CONFIG,
    exclude: Collection[str] = frozenset(),
    k: int | None = 10,
) -> list[ExpertScore]:
    """Rank the people linked to the top evidence (``priors``: each person's overall activity, e.g. contributions)."""
    ranked = sorted(evidence, key=lambda item: item.rank)[: config.depth]
    weights = document_weights(ranked, config)
    content: dict[str, float] = {}
    items: dict[str, list[tuple[float, int, str]]] = {}
    for item, weight in zip(ranked, weights, strict=True):
        item_weight = weight * recency_factor(item.date, now, config.half_life_days)
        relations: dict[str, set[str]] = {}
        for person, relation in item.people:
            if person not in exclude:
                relations.setdefault(person, set()).add(relation)
        for person, links in relations.items():
            contribution = item_weight * link_weight(links, config)
            if contribution <= 0:
                continue
            content[person] = content.get(person, 0.0) + contribution
            items.setdefault(person, []).append((contribution, item.rank, item.id))
    if not content:
        return []
    # Without a prior, a person's activity is what the evidence shows of it.
    activity = {person: priors.get(person, float(len(items[person]))) for person in content}
    if config.length_normalisation:
        for person in content:
            content[person] /= max(activity[person], 1.0) ** config.length_normalisation
    best = max(content.values()) or 1.0
    others = [value for person, value in priors.items() if person not in exclude]
    top_activity = max([*others, *activity.values()])
    scores = []
    for person, value in content.items():
        prior = config.prior_weight * activity_prior(activity[person], top_activity, config.prior_form)
        strongest = sorted(items[person], key=lambda entry: (-entry[0], entry[1], entry[2]))
        ids = tuple(dict.fromkeys(item_id for _, _, item_id in strongest))
        share = value / best
        scores.append(
            ExpertScore(person, share + prior, share, prior, ids[: config.max_evidence], len(ids), activity[person])
        )
    scores.sort(key=lambda expert: (-expert.score, -expert.activity, expert.person))
    return scores if k is None else scores[:k]


def activity_priors(
    contributions: Iterable[tuple[str, dt.date | None]], *, now: dt.date, half_life_days: float | None
) -> dict[str, float]:
    """Each person's activity: their contributions (chunks spoken, notes authored, entries credited), recency-decayed."""
    activity: dict[str, float] = {}
    for person, date in contributions:
        activity[person] = activity.get(person, 0.0) + recency_factor(date, now, half_life_days)
    return activity
