"""Retrieval quality on public sets: BM25, dense and hybrid nDCG@10, Recall@10 and MRR@10 (``make eval``)."""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedders import Embedder, Vectors, build_embedder
from retrieval.lexical import BM25Index, analyse
from retrieval.search import DEFAULT_FUSION, QUERY_PIECE_WORDS, candidate_depth, fuse, merge_by_best_score, query_pieces
from retrieval.settings import RetrievalSettings

K = 10
SETS = ("piaf", "meetings", "qmsum")
DEFAULT_OUT = Path(".reports/eval.json")
CACHE_DIR = Path(".cache/embeddings")
_BLOCK = 128  # vectors are cached per block of texts: an interrupted first run keeps what it embedded
_TAG = re.compile(r"</?[a-z]+>")


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = K) -> float:
    """Binary-relevance nDCG of the first k ids of a ranking (0 when nothing is relevant)."""
    gain = sum(1.0 / math.log2(rank + 2) for rank, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return gain / ideal if ideal else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = K) -> float:
    """Share of the relevant ids found in the first k of a ranking."""
    if not relevant:
        return 0.0
    return len(set(ranked[:k]) & set(relevant)) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevant: Collection[str], k: int = K) -> float:
    """Reciprocal rank of the first relevant id within the first k (0 when there is none)."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in relevant:
            return 1.0 / rank
    return 0.0


def paired_bootstrap(
    treatment: Sequence[float], baseline: Sequence[float], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean per-query difference treatment - baseline and its percentile bootstrap confidence interval."""
    diffs = np.asarray(treatment, dtype=np.float64) - np.asarray(baseline, dtype=np.float64)
    if diffs.size == 0:
        raise ValueError("no paired scores to resample")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(resamples, diffs.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(diffs.mean()), float(low), float(high)


@dataclass(frozen=True)
class EvalSet:
    """A retrieval test collection: documents, queries, their relevant documents and optional per-query scopes."""

    name: str
    language: str
    subset: str
    reference_bm25: float
    documents: dict[str, str]
    queries: dict[str, str]
    relevant: dict[str, frozenset[str]]
    scopes: dict[str, frozenset[str]] = field(default_factory=dict)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def load_piaf(root: Path, queries: int = 600) -> EvalSet:
    """PIAF (French Wikipedia QA): every paragraph; the first ``queries`` questions at even positions by sorted id."""
    folder = root / "piaf_fr" / "beir"
    documents = {row["_id"]: row["text"] for row in _jsonl(folder / "corpus.jsonl")}
    texts = {row["_id"]: row["text"] for row in _jsonl(folder / "queries.jsonl")}
    relevant: dict[str, set[str]] = defaultdict(set)
    with (folder / "qrels.tsv").open(encoding="utf-8") as lines:
        next(lines)
        for line in lines:
            query_id, doc_id, score = line.rstrip("\n").split("\t")
            if int(score) > 0:
                relevant[query_id].add(doc_id)
    chosen = sorted(relevant)[::2][:queries]
    return EvalSet(
        name="piaf_fr",
        language="fr",
        subset=f"all {len(documents)} paragraphs; {len(chosen)} questions: even positions of the sorted ids, first {queries}",
        reference_bm25=0.789,
        documents=documents,
        queries={query_id: texts[query_id] for query_id in chosen},
        relevant={query_id: frozenset(relevant[query_id]) for query_id in chosen},
    )


def load_public_meetings(root: Path, meetings: int = 8) -> EvalSet:
    """French public meetings: report segments (markup removed) as queries over the transcripts of the smallest meetings."""
    folder = root / "public_meetings_fr"
    segments = _jsonl(folder / "transcript_segments.jsonl")
    sizes: dict[str, int] = defaultdict(int)
    for segment in segments:
        sizes[segment["meeting_id"]] += 1
    chosen = set(sorted(sizes, key=lambda meeting: (sizes[meeting], meeting))[:meetings])
    documents = {f"{row['meeting_id']}/{row['seg_id']}": row["text"] for row in segments if row["meeting_id"] in chosen}
    queries: dict[str, str] = {}
    relevant: dict[str, frozenset[str]] = {}
    for row in _jsonl(folder / "report_segments.jsonl"):
        if row["meeting_id"] in chosen and row["gold_transcript_seg_ids"]:
            query_id = f"{row['meeting_id']}/{row['seg_id']}"
            queries[query_id] = " ".join(_TAG.sub(" ", row["text"]).split())
            relevant[query_id] = frozenset(f"{row['meeting_id']}/{seg}" for seg in row["gold_transcript_seg_ids"])
    return EvalSet(
        name="public_meetings_fr",
        language="fr",
        subset=f"the {meetings} meetings with the fewest transcript segments: {', '.join(sorted(chosen))}",
        reference_bm25=0.818,
        documents=documents,
        queries=queries,
        relevant=relevant,
    )


def load_qmsum(root: Path, every: int = 3, turns_per_chunk: int = 10) -> EvalSet:
    """QMSum test: chunks of consecutive speaker turns, specific queries searched within their own meeting."""
    folder = root / "qmsum" / "derived"
    by_meeting: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for turn in _jsonl(folder / "test_turns.jsonl"):
        by_meeting[turn["meeting_id"]].append(turn)
    chosen = sorted(by_meeting)[::every]
    documents: dict[str, str] = {}
    spans: dict[str, tuple[str, int, int]] = {}
    for meeting in chosen:
        turns = sorted(by_meeting[meeting], key=lambda turn: int(turn["turn"]))
        for start in range(0, len(turns), turns_per_chunk):
            group = turns[start : start + turns_per_chunk]
            chunk_id = f"{meeting}/{group[0]['turn']}"
            documents[chunk_id] = "\n".join(f"{turn['speaker']}: {turn['text']}" for turn in group)
            spans[chunk_id] = (meeting, int(group[0]["turn"]), int(group[-1]["turn"]))
    scopes_by_meeting: dict[str, set[str]] = defaultdict(set)
    for chunk_id, (meeting, _, _) in spans.items():
        scopes_by_meeting[meeting].add(chunk_id)
    queries: dict[str, str] = {}
    relevant: dict[str, frozenset[str]] = {}
    scopes: dict[str, frozenset[str]] = {}
    for row in _jsonl(folder / "test_queries.jsonl"):
        meeting = row["meeting_id"]
        if row["type"] != "specific" or meeting not in scopes_by_meeting:
            continue
        gold = frozenset(
            chunk_id
            for chunk_id in scopes_by_meeting[meeting]
            if any(
                spans[chunk_id][1] <= int(end) and int(start) <= spans[chunk_id][2]
                for start, end in row["gold_turn_spans"]
            )
        )
        if gold:
            queries[row["qid"]] = row["query"]
            relevant[row["qid"]] = gold
            scopes[row["qid"]] = frozenset(scopes_by_meeting[meeting])
    return EvalSet(
        name="qmsum",
        language="en",
        subset=(
            f"specific queries of {len(chosen)} test meetings (one in {every} by sorted id), searched within their meeting; "
            f"chunks of {turns_per_chunk} consecutive turns 'speaker: text'"
        ),
        reference_bm25=0.514,
        documents=documents,
        queries=queries,
        relevant=relevant,
        scopes=scopes,
    )


LOADERS: dict[str, Callable[[Path], EvalSet]] = {
    "piaf": load_piaf,
    "meetings": load_public_meetings,
    "qmsum": load_qmsum,
}


class CachedEmbedder:
    """Embeds through a real embedder, keeping every block of vectors on disk under the hash of its texts."""

    def __init__(self, embedder: Embedder, folder: Path = CACHE_DIR) -> None:
        self.embedder = embedder
        self.folder = folder / re.sub(r"[^\w.-]+", "_", embedder.name)

    def documents(self, texts: Sequence[str]) -> Vectors:
        """Document vectors, computed only for blocks not cached yet."""
        return self._cached("passage", texts, self.embedder.embed_documents)

    def queries(self, texts: Sequence[str]) -> Vectors:
        """Query vectors (embedded one by one, as a search does), computed only for blocks not cached yet."""
        return self._cached("query", texts, lambda block: np.vstack([self.embedder.embed_query(t) for t in block]))

    def _cached(self, kind: str, texts: Sequence[str], embed: Callable[[Sequence[str]], Vectors]) -> Vectors:
        parts = [np.zeros((0, self.embedder.dimension), dtype=np.float32)]
        for start in range(0, len(texts), _BLOCK):
            block = list(texts[start : start + _BLOCK])
            digest = hashlib.sha256("\x00".join([kind, *block]).encode("utf-8")).hexdigest()
            path = self.folder / f"{digest}.npy"
            if path.exists():
                parts.append(np.load(path))
                continue
            vectors = np.asarray(embed(block), dtype=np.float32)
            self.folder.mkdir(parents=True, exist_ok=True)
            np.save(path.with_suffix(".tmp.npy"), vectors)
            path.with_suffix(".tmp.npy").replace(path)
            parts.append(vectors)
        return np.vstack(parts)


SYSTEMS = ("bm25", "dense", "hybrid")
METRICS: dict[str, Callable[[Sequence[str], Collection[str], int], float]] = {
    "ndcg@10": ndcg_at_k,
    "recall@10": recall_at_k,
    "mrr@10": mrr_at_k,
}


def _nearest(
    matrix: Vectors, candidates: np.ndarray[Any, np.dtype[np.int64]], vector: Vectors, ids: Sequence[str], depth: int
) -> list[tuple[str, float]]:
    similarities = matrix[candidates] @ vector
    order = np.argsort(-similarities, kind="stable")[:depth]
    return [(ids[candidates[i]], float(similarities[i])) for i in order]


def rank_set(evalset: EvalSet, embedder: CachedEmbedder, settings: RetrievalSettings) -> dict[str, list[list[str]]]:
    """Rankings of every query by BM25, by exact cosine over the embeddings, and by the product's hybrid fusion."""
    depth = candidate_depth(K)
    doc_ids = list(evalset.documents)
    index = BM25Index()
    for doc_id in doc_ids:
        index.add(doc_id, analyse(evalset.documents[doc_id], evalset.language))
    matrix = embedder.documents([evalset.documents[doc_id] for doc_id in doc_ids])
    pieces = {query_id: query_pieces(text) for query_id, text in evalset.queries.items()}
    vectors = embedder.queries([piece for query_id in evalset.queries for piece in pieces[query_id]])
    position = {doc_id: slot for slot, doc_id in enumerate(doc_ids)}
    everything = np.arange(len(doc_ids), dtype=np.int64)
    rankings: dict[str, list[list[str]]] = {system: [] for system in SYSTEMS}
    offset = 0
    for query_id, text in evalset.queries.items():
        scope = evalset.scopes.get(query_id)
        allowed = None if scope is None else scope.__contains__
        lexical = index.search(analyse(text, evalset.language), depth, allowed)
        candidates = everything if scope is None else np.asarray(sorted(position[d] for d in scope), dtype=np.int64)
        count = len(pieces[query_id])
        dense = merge_by_best_score(
            [_nearest(matrix, candidates, vector, doc_ids, depth) for vector in vectors[offset : offset + count]], depth
        )
        offset += count
        hybrid = fuse([(settings.dense_weight, dense), (settings.lexical_weight, lexical)], DEFAULT_FUSION)
        for system, ranking in (("bm25", lexical), ("dense", dense), ("hybrid", hybrid)):
            rankings[system].append([doc_id for doc_id, _ in ranking[:K]])
    return rankings


def score_set(evalset: EvalSet, rankings: Mapping[str, Sequence[Sequence[str]]]) -> dict[str, Any]:
    """Mean metrics per system and the bootstrap interval of hybrid - BM25 nDCG@10, as stored in the report."""
    relevant = [evalset.relevant[query_id] for query_id in evalset.queries]
    per_query = {
        system: {
            metric: [function(ranking, gold, K) for ranking, gold in zip(rankings[system], relevant, strict=True)]
            for metric, function in METRICS.items()
        }
        for system in SYSTEMS
    }
    mean, low, high = paired_bootstrap(per_query["hybrid"]["ndcg@10"], per_query["bm25"]["ndcg@10"])
    return {
        "subset": evalset.subset,
        "documents": len(evalset.documents),
        "queries": len(evalset.queries),
        "reference_bm25_ndcg@10": evalset.reference_bm25,
        "systems": {
            system: {metric: round(float(np.mean(values)), 4) for metric, values in metrics.items()}
            for system, metrics in per_query.items()
        },
        "hybrid_minus_bm25_ndcg@10": {"mean": round(mean, 4), "ci95": [round(low, 4), round(high, 4)]},
    }


def format_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The figures as a plain-text table, one row per set and system."""
    lines = [f"{'set':<20} {'system':<7} {'nDCG@10':>8} {'R@10':>7} {'MRR@10':>7} {'README BM25 nDCG@10':>20}"]
    for name, result in results.items():
        for system, figures in result["systems"].items():
            reference = f"{result['reference_bm25_ndcg@10']:.3f}" if system == "bm25" else ""
            lines.append(
                f"{name:<20} {system:<7} {figures['ndcg@10']:>8.3f} {figures['recall@10']:>7.3f}"
                f" {figures['mrr@10']:>7.3f} {reference:>20}"
            )
        delta = result["hybrid_minus_bm25_ndcg@10"]
        low, high = delta["ci95"]
        lines.append(
            f"{'':<20} hybrid - bm25 nDCG@10 {delta['mean']:+.3f}, 95% CI [{low:+.3f}, {high:+.3f}]"
            f" ({result['queries']} queries, {result['documents']} documents)"
        )
    return "\n".join(lines)


def data_root() -> Path:
    """Folder of the public sets: ``COMPAGNON_EVAL_DATA``, else ``../shared/data`` next to the repository."""
    configured = os.environ.get("COMPAGNON_EVAL_DATA")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate the chosen sets, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m retrieval.evaluation", description=__doc__)
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, among {', '.join(SETS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSON report")
    parser.add_argument("--cache", type=Path, default=CACHE_DIR, help="folder of the cached embeddings")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        parser.error(f"unknown sets: {', '.join(unknown)} (choose among {', '.join(SETS)})")
    root = data_root()
    if not root.is_dir():
        print(f"evaluation data absent: {root} does not exist (set COMPAGNON_EVAL_DATA); no figures produced")
        return 0
    settings = RetrievalSettings()
    embedder = CachedEmbedder(build_embedder(settings.embedder, threads=settings.embed_threads), args.cache)
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for name in names:
        set_started = time.perf_counter()
        evalset = LOADERS[name](root)
        print(f"{evalset.name}: {len(evalset.documents)} documents, {len(evalset.queries)} queries", file=sys.stderr)
        results[evalset.name] = score_set(evalset, rank_set(evalset, embedder, settings))
        results[evalset.name]["seconds"] = round(time.perf_counter() - set_started, 1)
    print(format_table(results))
    report = {
        "embedder": embedder.embedder.name,
        "hybrid": {
            "fusion": DEFAULT_FUSION,
            "lexical_weight": settings.lexical_weight,
            "dense_weight": settings.dense_weight,
            "candidates_per_ranking": candidate_depth(K),
            "query_piece_words": QUERY_PIECE_WORDS,
        },
        "bootstrap": {"resamples": 1000, "seed": 0},
        "sets": results,
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
