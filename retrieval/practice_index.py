"""Search over approved best-practice entries, restricted to those whose every source the viewer may see."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from retrieval.access import AccessScope, Viewer, resolve_scope
from retrieval.embedders import Embedder
from retrieval.lexical import BM25Index, analyse
from retrieval.records import NoteRecord, PracticeRecord
from retrieval.search import fuse_rankings
from retrieval.vectors import VectorStore

PUBLISHED = ("approved",)


@dataclass(frozen=True)
class PracticeHit:
    """An approved entry found by a search, with its first piece of evidence."""

    practice_id: str
    score: float
    title: str
    practice: str
    steps: tuple[str, ...]
    language: str
    community: str
    note_id: str
    external_id: str | None
    quote: str
    start: int
    end: int
    contributors: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The hit as JSON."""
        return {
            "practice_id": self.practice_id,
            "score": round(self.score, 6),
            "title": self.title,
            "practice": self.practice,
            "steps": list(self.steps),
            "community": self.community,
            "contributors": list(self.contributors),
            "note_id": self.note_id,
            "external_id": self.external_id,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
        }


def entry_text(record: PracticeRecord) -> str:
    """The text an entry is indexed under."""
    return "\n".join([record.title, record.practice, *record.steps, record.context])


def readable_entries(session: Session, scope: AccessScope) -> list[PracticeRecord]:
    """Published entries whose every source note is visible in the scope (the most restrictive source wins)."""
    records = session.scalars(
        select(PracticeRecord)
        .options(selectinload(PracticeRecord.evidence), selectinload(PracticeRecord.contributors))
        .where(PracticeRecord.status.in_(PUBLISHED))
    ).all()
    note_ids = {e.note_id for r in records for e in r.evidence}
    notes = {n.id: n for n in session.scalars(select(NoteRecord).where(NoteRecord.id.in_(note_ids)))}
    readable = []
    for record in records:
        sources = [notes.get(e.note_id) for e in record.evidence]
        if sources and all(n is not None and scope.allows(n.visibility, n.community, n.id) for n in sources):
            readable.append(record)
    return readable


class PracticeIndex:
    """Approved entries embedded in their own vector collection, searched by meaning and words."""

    def __init__(self, sessions: sessionmaker, store: VectorStore, embedder: Embedder) -> None:  # type: ignore[type-arg]
        self.sessions = sessions
        self.store = store
        self.embedder = embedder

    def update(self, published: Sequence[str], withdrawn: Sequence[str]) -> None:
        """Embed newly published entries; forget withdrawn ones."""
        if withdrawn:
            self.store.delete(list(withdrawn))
        if not published:
            return
        with self.sessions() as session:
            records = [r for r in (session.get(PracticeRecord, i) for i in published) if r is not None]
            texts = [entry_text(r) for r in records]
            ids = [r.id for r in records]
        if ids:
            self.store.upsert(ids, self.embedder.embed_documents(texts), [{"kind": "practice"}] * len(ids))

    def search(self, query: str, viewer: Viewer, k: int = 5, language: str = "fr") -> list[PracticeHit]:
        """The k best approved entries for a query, among those the viewer may read."""
        with self.sessions() as session:
            scope = resolve_scope(session, viewer)
            entries = {r.id: r for r in readable_entries(session, scope)}
            if not entries:
                return []
            # Entries are few: rank exactly among the readable ones (filtered before ranking, no ANN miss).
            vectors = self.store.get_vectors(sorted(entries))
            ranked_dense: list[str] = []
            if vectors:
                query_vector = self.embedder.embed_query(query)
                ranked_dense = sorted(vectors, key=lambda i: -float(vectors[i] @ query_vector))[: max(3 * k, 20)]
            lexical = BM25Index()
            for record in entries.values():
                lexical.add(record.id, analyse(entry_text(record), record.language))
            ranked_lexical = [doc for doc, _ in lexical.search(analyse(query, language), max(3 * k, 20))]
            fused = fuse_rankings([(1.0, ranked_dense), (1.0, ranked_lexical)])
            notes = {
                n.id: n
                for n in session.scalars(
                    select(NoteRecord).where(
                        NoteRecord.id.in_({e.note_id for r in entries.values() for e in r.evidence})
                    )
                )
            }
            hits_out: list[PracticeHit] = []
            for practice_id, score in fused[:k]:
                record = entries[practice_id]
                first = record.evidence[0]
                note = notes[first.note_id]
                hits_out.append(
                    PracticeHit(
                        practice_id=record.id,
                        score=score,
                        title=record.title,
                        practice=record.practice,
                        steps=tuple(record.steps),
                        language=record.language,
                        community=record.community,
                        note_id=note.id,
                        external_id=note.external_id,
                        quote=first.quote,
                        start=first.start,
                        end=first.end,
                        contributors=tuple(c.person.name for c in record.contributors),
                    )
                )
            return hits_out
