"""Answer quality: ``python -m retrieval.answer_evaluation`` (part of ``make eval``).

- QMSum (test, specific queries): a meeting's turns are the sources; the extractive answerer answers the query;
  citation precision is the share of cited turns inside a gold span, recall the share of gold spans cited.
- Abstention on piaf_fr: a question over the whole corpus is answerable; the same question with its gold
  paragraph(s) removed is not. Reported: answered-when-answerable, abstained-when-unanswerable.
- Abstention on the demo calibration set (``retrieval/calibration/demo_questions.jsonl``), through the real
  search, when the data directory (``COMPAGNON_DATA_DIR``) holds the demo corpus (``compagnon demo``).

For QMSum and piaf, sources are retrieved in memory by BM25 and multilingual USE (convex fusion 0.6/0.4):
embedding QMSum's 20k turns with e5-small would take about 40 minutes on 2 cores. Turn and paragraph vectors
are cached under ``.cache/embeddings``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.access import Viewer
from retrieval.answers import ExtractiveAnswerer, Source
from retrieval.embedders import Embedder, UniversalSentenceEncoderEmbedder, Vectors, build_embedder
from retrieval.evaluation import data_root
from retrieval.expert_evaluation import cached_embeddings
from retrieval.lexical import BM25Index, analyse
from retrieval.search import fuse_scores

DEFAULT_OUT = Path(".reports/answers.json")
CACHE_DIR = Path(".cache/embeddings")
K_SOURCES = 8
PIAF_SAMPLE = 200
# Meetings sampled from QMSum's 35 (seed 0): USE encodes about 100 turns/s on 2 idle cores, and the meetings
# hold 20k turns; 0 takes them all.
QMSUM_MEETINGS = 8
THRESHOLDS = (0.16, 0.18, 0.2, 0.22, 0.24, 0.26, 0.28, 0.3)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def calibration_questions() -> list[dict[str, Any]]:
    """The labelled demo questions (answerable or not), shipped with the package."""
    text = resources.files("retrieval").joinpath("calibration/demo_questions.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class MemoEmbedder:
    """An embedder that remembers every text it encoded (USE encodes queries and documents alike)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.name = embedder.name
        self.dimension = embedder.dimension
        self.memory: dict[str, Vectors] = {}

    def remember(self, texts: Sequence[str], vectors: Vectors) -> None:
        """Seed the memory with vectors computed (and cached) elsewhere."""
        self.memory.update(zip(texts, vectors, strict=True))

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Embed the texts not seen yet, reuse the others."""
        missing = list(dict.fromkeys(text for text in texts if text not in self.memory))
        if missing:
            self.remember(missing, self.embedder.embed_documents(missing))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(np.vstack([self.memory[text] for text in texts]), dtype=np.float32)

    def embed_query(self, text: str) -> Vectors:
        """The query as a document (the same encoding for USE)."""
        vector: Vectors = self.embed_documents([text])[0]
        return vector


@dataclass(frozen=True)
class Passage:
    """A passage of an evaluation corpus: its id, the note it belongs to, its offsets there, its text."""

    id: str
    note_id: str
    title: str
    text: str
    start: int
    language: str


class MemoryIndex:
    """BM25 and USE over passages, fused like the product's hybrid search."""

    def __init__(self, passages: Sequence[Passage], vectors: Vectors, language: str) -> None:
        self.passages = {p.id: p for p in passages}
        self.order = [p.id for p in passages]
        self.vectors = vectors
        self.language = language
        self.lexical = BM25Index()
        for passage in passages:
            self.lexical.add(passage.id, analyse(passage.text, language))

    def search(self, query: str, query_vector: Vectors, k: int, excluded: frozenset[str] = frozenset()) -> list[Source]:
        """The k best passages as numbered sources, ``excluded`` ones left out before ranking."""
        depth = max(3 * k, 50)
        allowed = [i for i, passage_id in enumerate(self.order) if passage_id not in excluded]
        similarities = self.vectors[allowed] @ query_vector
        best = np.argsort(-similarities)[:depth]
        dense = [(self.order[allowed[i]], float(similarities[i])) for i in best]
        lexical = self.lexical.search(analyse(query, self.language), depth, lambda pid: pid not in excluded)
        fused = fuse_scores([(0.4, dense), (0.6, lexical)])[:k]
        return [self._source(n, self.passages[pid], score) for n, (pid, score) in enumerate(fused, start=1)]

    @staticmethod
    def _source(n: int, passage: Passage, score: float) -> Source:
        return Source(
            n=n,
            kind="chunk",
            note_id=passage.note_id,
            external_id=None,
            entry_id=None,
            chunk_id=passage.id,
            title=passage.title,
            text=passage.text,
            start=passage.start,
            end=passage.start + len(passage.text),
            score=score,
            language=passage.language,
        )


def rates(confidences: Iterable[tuple[bool, float]], threshold: float) -> dict[str, float]:
    """Answered-when-answerable and abstained-when-unanswerable at a threshold, and their mean."""
    pairs = list(confidences)
    answerable = [c for label, c in pairs if label]
    unanswerable = [c for label, c in pairs if not label]
    answered = sum(c >= threshold for c in answerable) / len(answerable) if answerable else 0.0
    abstained = sum(c < threshold for c in unanswerable) / len(unanswerable) if unanswerable else 0.0
    return {
        "answered_when_answerable": round(answered, 4),
        "abstained_when_unanswerable": round(abstained, 4),
        "balanced": round((answered + abstained) / 2, 4),
    }


def sweep(confidences: Sequence[tuple[bool, float]], threshold: float) -> dict[str, Any]:
    """The rates at the chosen threshold and at the neighbouring ones."""
    return {
        "answerable": sum(label for label, _ in confidences),
        "unanswerable": sum(not label for label, _ in confidences),
        "at_threshold": {"threshold": threshold, **rates(confidences, threshold)},
        "sweep": [{"threshold": t, **rates(confidences, t)} for t in THRESHOLDS],
    }


def evaluate_qmsum(
    root: Path, answerer: ExtractiveAnswerer, memo: MemoEmbedder, cache_dir: Path, meetings: int
) -> dict[str, Any]:
    """Citation precision and gold-span recall of extractive answers to QMSum's specific queries."""
    turns_by_meeting: dict[str, list[dict[str, Any]]] = {}
    for turn in _jsonl(root / "test_turns.jsonl"):
        turns_by_meeting.setdefault(turn["meeting_id"], []).append(turn)
    queries = [q for q in _jsonl(root / "test_queries.jsonl") if q["type"] == "specific" and q["gold_turn_spans"]]
    asked = sorted({q["meeting_id"] for q in queries})
    kept = set(random.Random(0).sample(asked, meetings)) if 0 < meetings < len(asked) else set(asked)
    queries = [q for q in queries if q["meeting_id"] in kept]
    forced = ExtractiveAnswerer(memo, threshold=-1.0, max_claims=answerer.max_claims)
    cited = hits = answered = gold_total = gold_found = top_cited = top_hits = 0
    for meeting, turns in sorted(turns_by_meeting.items()):
        wanted = [q for q in queries if q["meeting_id"] == meeting]
        if not wanted:
            continue
        turns.sort(key=lambda turn: int(turn["turn"]))
        passages, position = [], 0
        for turn in turns:
            text = f"{turn['speaker']}: {turn['text']}"
            passages.append(Passage(f"{meeting}#{turn['turn']}", meeting, meeting, text, position, "en"))
            position += len(text) + 1
        texts = [p.text for p in passages]
        memo.remember(texts, cached_embeddings(memo.embedder, texts, cache_dir))
        index = MemoryIndex(passages, memo.embed_documents(texts), "en")
        for query in wanted:
            sources = index.search(query["query"], memo.embed_query(query["query"]), K_SOURCES)
            spans = [(int(a), int(b)) for a, b in query["gold_turn_spans"]]

            def gold(chunk_id: str | None, spans: Sequence[tuple[int, int]] = spans) -> bool:
                turn = int((chunk_id or "#-1").rsplit("#", 1)[1])
                return any(a <= turn <= b for a, b in spans)

            answered += not answerer.answer(query["query"], "en", sources).abstained
            answer = forced.answer(query["query"], "en", sources)
            turns_cited = [c.chunk_id for c in answer.citations]
            cited += len(turns_cited)
            hits += sum(gold(t) for t in turns_cited)
            gold_total += len(spans)
            gold_found += sum(any(a <= int((t or "#-1").rsplit("#", 1)[1]) <= b for t in turns_cited) for a, b in spans)
            # Baseline: cite the top retrieved turns, as many as the answer cited.
            top = [s.chunk_id for s in sources[: max(1, len(turns_cited))]]
            top_cited += len(top)
            top_hits += sum(gold(t) for t in top)
    return {
        "meetings": len(kept),
        "queries": len(queries),
        "sources_per_query": K_SOURCES,
        "citation_precision": round(hits / cited, 4) if cited else 0.0,
        "gold_span_recall": round(gold_found / gold_total, 4) if gold_total else 0.0,
        "citations_per_answer": round(cited / len(queries), 2) if queries else 0.0,
        "baseline_top_retrieved_precision": round(top_hits / top_cited, 4) if top_cited else 0.0,
        "answered_at_threshold": round(answered / len(queries), 4) if queries else 0.0,
    }


def evaluate_piaf(
    root: Path, answerer: ExtractiveAnswerer, memo: MemoEmbedder, cache_dir: Path, sample: int
) -> dict[str, Any]:
    """Abstention on piaf_fr: each sampled question over the corpus, then without its gold paragraph(s)."""
    beir = root / "beir"
    passages = [
        Passage(doc["_id"], doc["_id"], doc.get("title", ""), doc["text"], 0, "fr")
        for doc in _jsonl(beir / "corpus.jsonl")
    ]
    gold: dict[str, set[str]] = {}
    with (beir / "qrels.tsv").open(encoding="utf-8") as lines:
        for line in lines:
            query_id, doc_id, *_ = line.rstrip("\n").split("\t")
            if query_id != "query-id":
                gold.setdefault(query_id, set()).add(doc_id)
    queries = [q for q in _jsonl(beir / "queries.jsonl") if q["_id"] in gold]
    queries = sorted(random.Random(0).sample(queries, min(sample, len(queries))), key=lambda q: str(q["_id"]))
    texts = [p.text for p in passages]
    memo.remember(texts, cached_embeddings(memo.embedder, texts, cache_dir))
    index = MemoryIndex(passages, memo.embed_documents(texts), "fr")
    confidences: list[tuple[bool, float]] = []
    for number, query in enumerate(queries, start=1):
        vector = memo.embed_query(query["text"])
        with_gold = index.search(query["text"], vector, K_SOURCES)
        without = index.search(query["text"], vector, K_SOURCES, frozenset(gold[query["_id"]]))
        confidences.append((True, answerer.weigh(query["text"], with_gold).confidence))
        confidences.append((False, answerer.weigh(query["text"], without).confidence))
        if number % 50 == 0:
            _log(f"  piaf: {number}/{len(queries)} questions")
    return {"sampled_questions": len(queries), "seed": 0, **sweep(confidences, answerer.threshold)}


def evaluate_demo(data_dir: Path, answerer: ExtractiveAnswerer) -> dict[str, Any] | None:
    """Abstention on the labelled demo questions through the real search (None when the demo is not loaded)."""
    from sqlalchemy import select

    from retrieval.asking import Asker
    from retrieval.catalog import ChunkCatalog
    from retrieval.database import open_database
    from retrieval.knowledge import KnowledgeBase
    from retrieval.practice_index import PracticeIndex
    from retrieval.records import NoteRecord
    from retrieval.search import HybridSearcher
    from retrieval.settings import RetrievalSettings
    from retrieval.vectors import ChromaVectorStore

    settings = RetrievalSettings(data_dir=data_dir)
    if not settings.database_url and not (data_dir / "compagnon.sqlite3").exists():
        return None
    sessions = open_database(settings.resolved_database_url)
    with sessions() as session:
        loaded = set(session.scalars(select(NoteRecord.external_id)))
    questions = calibration_questions()
    expected = {note for q in questions for note in q.get("notes", [])}
    if not expected <= loaded:
        return None

    def store(suffix: str) -> ChromaVectorStore:
        return ChromaVectorStore(
            settings.chroma_collection + suffix,
            path=None if settings.chroma_url else settings.chroma_dir,
            url=settings.chroma_url,
            ef_search=settings.hnsw_ef_search,
            ef_construction=settings.hnsw_ef_construction,
            max_neighbors=settings.hnsw_max_neighbors,
        )

    embedder = build_embedder(settings.embedder, threads=settings.embed_threads)
    knowledge = KnowledgeBase(sessions, store(""), embedder, ChunkCatalog(sessions), settings.originals_dir)
    searcher = HybridSearcher(knowledge, dense_weight=settings.dense_weight, lexical_weight=settings.lexical_weight)
    asker = Asker(sessions, searcher, PracticeIndex(sessions, store("_practices"), embedder), answerer)
    confidences: list[tuple[bool, float]] = []
    try:
        for question in questions:
            sources = asker.gather(question["question"], Viewer.administrator(), question["language"])
            confidences.append((bool(question["answerable"]), answerer.weigh(question["question"], sources).confidence))
    finally:
        knowledge.close()
    return {"data_dir": str(data_dir), **sweep(confidences, answerer.threshold)}


def format_table(report: Mapping[str, Any]) -> str:
    """The figures as plain text."""
    lines = []
    qmsum = report.get("qmsum")
    if qmsum:
        lines.append(
            f"QMSum specific ({qmsum['meetings']} meetings, {qmsum['queries']} q): citation precision {qmsum['citation_precision']:.3f}, "
            f"gold-span recall {qmsum['gold_span_recall']:.3f}, {qmsum['citations_per_answer']} citations/answer "
            f"(top-retrieved baseline precision {qmsum['baseline_top_retrieved_precision']:.3f}); "
            f"answered at the threshold {qmsum['answered_at_threshold']:.3f}"
        )
    for name in ("piaf_fr", "demo"):
        result = report.get(name)
        if not result:
            continue
        at = result["at_threshold"]
        lines.append(
            f"{name} ({result['answerable']} answerable, {result['unanswerable']} unanswerable) at {at['threshold']}: "
            f"answered {at['answered_when_answerable']:.3f}, abstained {at['abstained_when_unanswerable']:.3f}"
        )
        lines.append(
            "    sweep: "
            + "  ".join(
                f"{row['threshold']}: {row['answered_when_answerable']:.2f}/{row['abstained_when_unanswerable']:.2f}"
                for row in result["sweep"]
            )
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, embedder_factory: Callable[[], Embedder] | None = None) -> int:
    """Run the answer evaluation on what is present, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m retrieval.answer_evaluation", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report path (default {DEFAULT_OUT})")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR, help=f"embedding cache (default {CACHE_DIR})")
    parser.add_argument("--piaf-sample", type=int, default=PIAF_SAMPLE, help="piaf questions sampled (seed 0)")
    parser.add_argument("--qmsum-meetings", type=int, default=QMSUM_MEETINGS, help="QMSum meetings sampled (0: all)")
    parser.add_argument("--demo-data", type=Path, default=None, help="data directory holding the demo corpus")
    args = parser.parse_args(argv)
    root = data_root()
    from retrieval.settings import RetrievalSettings

    demo_dir: Path = args.demo_data or RetrievalSettings().data_dir
    qmsum_dir, piaf_dir = root / "qmsum" / "derived", root / "piaf_fr"
    has_qmsum = (qmsum_dir / "test_queries.jsonl").exists()
    has_piaf = (piaf_dir / "beir" / "qrels.tsv").exists()
    if not has_qmsum and not has_piaf:
        print(f"evaluation data absent under {root} (set COMPAGNON_EVAL_DATA): QMSum and piaf_fr skipped")
    started = time.monotonic()
    use = embedder_factory() if embedder_factory else UniversalSentenceEncoderEmbedder()
    memo = MemoEmbedder(use)
    answerer = ExtractiveAnswerer(memo)
    report: dict[str, Any] = {"data": str(root), "embedder": use.name, "threshold": answerer.threshold}
    if has_qmsum:
        _log("QMSum: citations of extractive answers ...")
        report["qmsum"] = evaluate_qmsum(qmsum_dir, answerer, memo, args.cache_dir, args.qmsum_meetings)
    if has_piaf:
        _log("piaf_fr: abstention with and without the gold paragraph ...")
        report["piaf_fr"] = evaluate_piaf(piaf_dir, answerer, memo, args.cache_dir, args.piaf_sample)
    demo = evaluate_demo(demo_dir, answerer)
    if demo is None:
        print(f"demo corpus not loaded in {demo_dir} (run `compagnon demo`): demo calibration skipped")
    else:
        report["demo"] = demo
    report["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    table = format_table(report)
    if table:
        print(table)
    print(f"report: {args.out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
