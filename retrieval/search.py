"""Hybrid search: dense and lexical rankings over what the viewer may see, fused, then re-checked in SQL."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from retrieval.access import AccessScope, Viewer
from retrieval.catalog import chunk_meta
from retrieval.errors import InvalidQuery
from retrieval.knowledge import KnowledgeBase
from retrieval.lexical import analyse
from retrieval.records import ChunkRecord
from retrieval.vectors import VectorHit

MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("convex", "rrf")
DEFAULT_FUSION = "convex"
MAX_K = 100
QUERY_PIECE_WORDS = 60
MAX_QUERY_PIECES = 16
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


@dataclass(frozen=True)
class SearchFilters:
    """Optional restrictions a searcher may ask for, on top of what they may see."""

    kind: str | None = None
    community: str | None = None
    language: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def is_empty(self) -> bool:
        """Whether no restriction is set."""
        return not (self.kind or self.community or self.language or self.date_from or self.date_to)

    def accepts(self, meta: Mapping[str, Any]) -> bool:
        """Whether a chunk's metadata pass these filters."""
        if self.kind and meta.get("kind") != self.kind:
            return False
        if self.community and meta.get("community") != self.community:
            return False
        if self.language and meta.get("language") != self.language:
            return False
        date = int(meta.get("date", 0))
        if self.date_from and date < int(self.date_from.strftime("%Y%m%d")):
            return False
        return not (self.date_to and date > int(self.date_to.strftime("%Y%m%d")))

    def where(self) -> list[dict[str, Any]]:
        """The same filters as Chroma clauses."""
        clauses: list[dict[str, Any]] = []
        for key in ("kind", "community", "language"):
            value = getattr(self, key)
            if value:
                clauses.append({key: value})
        if self.date_from:
            clauses.append({"date": {"$gte": int(self.date_from.strftime("%Y%m%d"))}})
        if self.date_to:
            clauses.append({"date": {"$lte": int(self.date_to.strftime("%Y%m%d"))}})
        return clauses


@dataclass(frozen=True)
class SearchHit:
    """A chunk found by a search, with what a citation needs."""

    note_id: str
    external_id: str | None
    chunk_id: str
    score: float
    title: str
    kind: str
    community: str
    speaker: str | None
    start: int
    end: int
    text: str
    session_date: dt.date
    language: str

    def as_json(self) -> dict[str, Any]:
        """The hit in the shape of ``search --json`` and ``GET /api/search``."""
        return {
            "note_id": self.note_id,
            "external_id": self.external_id,
            "chunk_id": self.chunk_id,
            "score": round(self.score, 6),
            "title": self.title,
            "kind": self.kind,
            "community": self.community,
            "speaker": self.speaker,
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


def candidate_depth(k: int) -> int:
    """How many candidates each ranking brings to the fusion when k results are wanted."""
    return max(3 * k, 50)


def fuse_rankings(rankings: Sequence[tuple[float, Sequence[str]]], rrf_k: int = 60) -> list[tuple[str, float]]:
    """Weighted reciprocal rank fusion of several rankings (``weight, ids best first``)."""
    scores: dict[str, float] = {}
    for weight, ids in rankings:
        for rank, doc_id in enumerate(ids, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + weight / (rrf_k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def fuse_scores(rankings: Sequence[tuple[float, Sequence[tuple[str, float]]]]) -> list[tuple[str, float]]:
    """Weighted sum of each ranking's min-max normalised scores; a ranking that misses a document gives it 0."""
    scores: dict[str, float] = {}
    for weight, hits in rankings:
        if not hits:
            continue
        low = min(score for _, score in hits)
        span = max(score for _, score in hits) - low
        for doc_id, score in hits:
            normalised = (score - low) / span if span > 0 else 1.0
            scores[doc_id] = scores.get(doc_id, 0.0) + weight * normalised
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


def fuse(
    rankings: Sequence[tuple[float, Sequence[tuple[str, float]]]], fusion: str = DEFAULT_FUSION, rrf_k: int = 60
) -> list[tuple[str, float]]:
    """Fuse weighted scored rankings (best first) by normalised scores (``convex``) or by reciprocal ranks (``rrf``)."""
    if fusion == "convex":
        return fuse_scores(rankings)
    if fusion == "rrf":
        return fuse_rankings([(weight, [doc_id for doc_id, _ in hits]) for weight, hits in rankings], rrf_k)
    raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}")


def query_pieces(query: str, words: int = QUERY_PIECE_WORDS) -> list[str]:
    """A long query cut at sentence ends into pieces of about ``words`` words or more; a short one stays whole.

    One embedding blurs a long text (a report paragraph summarising several passages); each piece finds the
    passage it comes from. At most ``MAX_QUERY_PIECES`` pieces: longer queries get longer pieces.
    """
    sentences = [sentence for sentence in _SENTENCE_END.split(query.strip()) if sentence]
    size = max(words, math.ceil(len(query.split()) / MAX_QUERY_PIECES))
    pieces: list[str] = []
    current: list[str] = []
    count = 0
    for sentence in sentences:
        current.append(sentence)
        count += len(sentence.split())
        if count >= size:
            pieces.append(" ".join(current))
            current, count = [], 0
    if current:
        if pieces and count < size / 2:
            pieces[-1] = " ".join([pieces[-1], *current])
        else:
            pieces.append(" ".join(current))
    return pieces or [query]


def merge_by_best_score(rankings: Sequence[Sequence[tuple[str, float]]], depth: int) -> list[tuple[str, float]]:
    """The ``depth`` best documents of several scored rankings, each scored by its best score among them."""
    best: dict[str, float] = {}
    for hits in rankings:
        for doc_id, score in hits:
            if score > best.get(doc_id, -math.inf):
                best[doc_id] = score
    return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:depth]


def dense_candidates(
    store_query: Callable[[int, dict[str, Any] | None], list[VectorHit]],
    total: int,
    depth: int,
    accepts: Callable[[Mapping[str, Any]], bool] | None,
    where: dict[str, Any] | None,
    max_overfetch: int = 2000,
) -> list[VectorHit]:
    """The ``depth`` nearest vectors that ``accepts`` lets through, as a filtered query would return them.

    Chroma's metadata-filtered query is tens of times slower than a plain one on a large collection, so
    the plain query is asked for more neighbours first and the non-matching ones are dropped before
    ranking; only when too few survive does it fall back to the filtered query.
    """
    if accepts is None:
        return store_query(min(depth, total), None)
    fetch = min(max(depth * 4, 100), total)
    while True:
        hits = store_query(fetch, None)
        kept = [hit for hit in hits if accepts(hit.metadata)]
        if len(kept) >= depth or fetch >= total:
            return kept[:depth]
        if fetch >= max_overfetch:
            return store_query(min(depth, total), where)
        fetch = min(fetch * 4, total, max_overfetch)


class HybridSearcher:
    """Searches chunks by meaning and by words, within the viewer's scope."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        dense_weight: float = 0.4,
        lexical_weight: float = 0.6,
        rrf_k: int = 60,
        fusion: str = DEFAULT_FUSION,
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}")
        self.knowledge = knowledge
        self.dense_weight = dense_weight
        self.lexical_weight = lexical_weight
        self.rrf_k = rrf_k
        self.fusion = fusion

    def search(
        self,
        query: str,
        viewer: Viewer,
        k: int = 10,
        filters: SearchFilters | None = None,
        mode: str = "hybrid",
        language: str = "fr",
    ) -> list[SearchHit]:
        """The k best chunks for a query, among the chunks the viewer may see."""
        if not query.strip():
            raise InvalidQuery("the query is empty")
        if not 1 <= k <= MAX_K:
            raise InvalidQuery(f"k must be between 1 and {MAX_K}")
        if mode not in MODES:
            raise InvalidQuery(f"mode must be one of {', '.join(MODES)}")
        filters = filters or SearchFilters()
        scope = self.knowledge.scope(viewer)
        catalog = self.knowledge.catalog
        catalog.refresh()
        depth = candidate_depth(k)
        accepts = _acceptor(scope, filters)
        rankings: list[tuple[float, Sequence[tuple[str, float]]]] = []
        if mode in ("hybrid", "dense"):
            rankings.append((self.dense_weight, self._dense(query, depth, scope, filters, accepts)))
        if mode in ("hybrid", "lexical"):
            meta = catalog.meta
            allowed: Callable[[str], bool] | None = None
            if accepts is not None:
                check = accepts

                def allowed(chunk_id: str) -> bool:
                    chunk = meta.get(chunk_id)
                    return chunk is not None and check(chunk.as_metadata())

            lexical = catalog.lexical.search(analyse(query, language), depth, allowed)
            rankings.append((self.lexical_weight, lexical))
        fused = fuse(rankings, self.fusion, self.rrf_k)
        return self._hydrate(fused, scope, filters, k)

    def _dense(
        self,
        query: str,
        depth: int,
        scope: AccessScope,
        filters: SearchFilters,
        accepts: Callable[[Mapping[str, Any]], bool] | None,
    ) -> list[tuple[str, float]]:
        store = self.knowledge.store
        total = store.count()
        if total == 0:
            return []
        embedder = self.knowledge.embedder
        vectors = [embedder.embed_query(piece) for piece in query_pieces(query)]
        clauses = filters.where()
        scope_where = scope.where()
        if scope_where is not None:
            clauses.append(scope_where)
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        rankings = [
            [
                (hit.id, hit.similarity)
                for hit in dense_candidates(partial(store.query, vector), total, depth, accepts, where)
            ]
            for vector in vectors
        ]
        return merge_by_best_score(rankings, depth)

    def _hydrate(
        self, fused: list[tuple[str, float]], scope: AccessScope, filters: SearchFilters, k: int
    ) -> list[SearchHit]:
        if not fused:
            return []
        wanted = [chunk_id for chunk_id, _ in fused[: 2 * k + 10]]
        with self.knowledge.sessions() as session:
            # Re-check every hit against the records: a stale vector or index entry never reaches a response.
            rows = session.scalars(
                select(ChunkRecord).options(selectinload(ChunkRecord.note)).where(ChunkRecord.id.in_(wanted))
            ).all()
            by_id = {row.id: row for row in rows}
            hits: list[SearchHit] = []
            for chunk_id, score in fused:
                row = by_id.get(chunk_id)
                if row is None:
                    continue
                note = row.note
                if not scope.allows(note.visibility, note.community, note.id):
                    continue
                if not filters.accepts(chunk_meta(note).as_metadata()):
                    continue
                hits.append(
                    SearchHit(
                        note_id=note.id,
                        external_id=note.external_id,
                        chunk_id=row.id,
                        score=score,
                        title=note.title,
                        kind=note.kind,
                        community=note.community,
                        speaker=row.speaker,
                        start=row.start,
                        end=row.end,
                        text=row.text,
                        session_date=note.session_date,
                        language=note.language,
                    )
                )
                if len(hits) == k:
                    break
            return hits


def _acceptor(scope: AccessScope, filters: SearchFilters) -> Callable[[Mapping[str, Any]], bool] | None:
    if scope.sees_everything and filters.is_empty():
        return None
    return lambda meta: scope.allows_metadata(meta) and filters.accepts(meta)
