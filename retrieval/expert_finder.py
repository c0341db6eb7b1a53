"""Experts and peers to talk to, each with visible evidence: expert scoring applied to the knowledge base.

Experts are scored by ``experts.score_experts`` over the chunks and approved entries the asker may see:
a chunk is evidence for its speaker and, more weakly, for the note's participants with their roles; an
entry for its credited contributors. Activity priors count only what the asker may see, so a score never
reveals private work. Peers are colleagues facing the same question: people who recently asked a similar
one (their question's text is never shown) and the mentees and circle members of the notes found.
Opted-out people and the asker are never suggested; a peer is never also an expert.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, and_, false, func, or_, select, true
from sqlalchemy.orm import Session, selectinload, sessionmaker

from retrieval.access import AccessScope, Viewer, resolve_scope
from retrieval.embedders import Embedder
from retrieval.errors import PersonNotFound, QuestionNotFound
from retrieval.experts import DEFAULT_CONFIG, Evidence, ExpertConfig, recency_factor, score_experts
from retrieval.practice_index import PracticeIndex, readable_entries
from retrieval.records import (
    ChunkRecord,
    NoteRecord,
    ParticipationRecord,
    PersonRecord,
    PracticeRecord,
    QuestionRecord,
)
from retrieval.search import MAX_K, HybridSearcher, SearchHit
from retrieval.vectors import VectorStore

# USE cosine of two questions on one topic; calibrated as the COMPAGNON_PEER_QUESTION_THRESHOLD setting says.
DEFAULT_QUESTION_THRESHOLD = 0.5
DEFAULT_QUESTION_WINDOW_DAYS = 180
ENTRY_DEPTH = 10
QUESTION_NEIGHBOURS = 50
# Learners come from the few best notes only: further down, the notes are no longer on the topic.
LEARNER_NOTES = 5
LEARNER_MIN_SHARE = 0.5
MAX_QUOTE_CHARS = 280
_SENTENCE = re.compile(r"[^\n.!?…;]*(?:[.!?…;]+|$)")

__all__ = [
    "DEFAULT_QUESTION_THRESHOLD",
    "DEFAULT_QUESTION_WINDOW_DAYS",
    "Expert",
    "ExpertEvidence",
    "ExpertFinder",
    "Peer",
    "Suggestions",
    "best_quote",
]


@dataclass(frozen=True)
class ExpertEvidence:
    """Why a person is suggested: a verbatim span of a note the asker may see (``entry_id`` when via an entry).

    ``title`` is the entry's title for an entry, else the note's; ``role`` the part the person played there.
    """

    note_id: str
    external_id: str | None
    entry_id: str | None
    quote: str
    start: int
    end: int
    title: str
    role: str

    def as_json(self) -> dict[str, Any]:
        """The evidence as JSON."""
        return {
            "note_id": self.note_id,
            "external_id": self.external_id,
            "entry_id": self.entry_id,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
            "title": self.title,
            "role": self.role,
        }


@dataclass(frozen=True)
class Expert:
    """A colleague who knows, their score and 1 to 3 pieces of evidence, strongest first."""

    name: str
    score: float
    evidence: tuple[ExpertEvidence, ...]

    def as_json(self) -> dict[str, Any]:
        """The expert as JSON."""
        return {"name": self.name, "score": round(self.score, 4), "evidence": [e.as_json() for e in self.evidence]}


@dataclass(frozen=True)
class Peer:
    """A colleague facing the same question; ``kind`` is ``similar_question``, ``mentee`` or ``circle_member``."""

    name: str
    reason: str
    kind: str

    def as_json(self) -> dict[str, Any]:
        """The peer as JSON."""
        return {"name": self.name, "reason": self.reason, "kind": self.kind}


@dataclass(frozen=True)
class Suggestions:
    """The experts and the peers suggested for one question."""

    experts: tuple[Expert, ...]
    peers: tuple[Peer, ...]

    def as_json(self) -> dict[str, Any]:
        """The shape of ``GET /api/experts`` and ``compagnon experts --json``."""
        return {"experts": [e.as_json() for e in self.experts], "peers": [p.as_json() for p in self.peers]}


@dataclass(frozen=True)
class _Item:
    """A piece of evidence as found: the note it points into, the span to quote from, and the people on it."""

    evidence: Evidence
    note: NoteRecord
    start: int
    end: int
    entry: PracticeRecord | None
    roles: Mapping[str, str]


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Spans of the sentences (or lines) of ``text[start:end]``, whitespace trimmed, in absolute offsets."""
    spans = []
    for match in _SENTENCE.finditer(text, start, end):
        left, right = match.start(), match.end()
        while left < right and text[left].isspace():
            left += 1
        while right > left and text[right - 1].isspace():
            right -= 1
        if right > left:
            spans.append((left, right))
    return spans or [(start, end)]


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """A span cut to at most ``MAX_QUOTE_CHARS``, at a word boundary when there is one."""
    if end - start <= MAX_QUOTE_CHARS:
        return start, end
    cut = text.rfind(" ", start, start + MAX_QUOTE_CHARS)
    stop = cut if cut > start else start + MAX_QUOTE_CHARS
    while stop > start and text[stop - 1].isspace():
        stop -= 1
    return start, stop


def best_quote(
    text: str, start: int, end: int, question_vector: np.ndarray[Any, Any], embedder: Embedder
) -> tuple[int, int]:
    """The span of ``text[start:end]`` to quote: its sentence closest to the question, trimmed if long."""
    spans = _sentences(text, start, end)
    if len(spans) > 1:
        vectors = embedder.embed_documents([text[left:right] for left, right in spans])
        left, right = spans[int(np.argmax(vectors @ question_vector))]
    else:
        left, right = spans[0]
    return _trim(text, left, right)


def visible_notes(scope: AccessScope) -> ColumnElement[bool]:
    """The scope's rule as a SQL condition on ``NoteRecord`` (same rule as ``AccessScope.allows``)."""
    if scope.sees_everything:
        return true()
    clauses: list[ColumnElement[bool]] = []
    if scope.sees_public:
        clauses.append(NoteRecord.visibility == "public")
    if scope.communities:
        clauses.append(and_(NoteRecord.visibility == "community", NoteRecord.community.in_(sorted(scope.communities))))
    if scope.note_ids:
        clauses.append(NoteRecord.id.in_(sorted(scope.note_ids)))
    return or_(*clauses) if clauses else false()


def _date_key(day: dt.date) -> int:
    return int(day.strftime("%Y%m%d"))


class ExpertFinder:
    """Suggests the colleagues who know (experts) and those facing the same question (peers), with evidence."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        searcher: HybridSearcher,
        practice_index: PracticeIndex,
        question_store: VectorStore,
        question_embedder: Embedder,
        config: ExpertConfig = DEFAULT_CONFIG,
        question_threshold: float = DEFAULT_QUESTION_THRESHOLD,
        question_window_days: int = DEFAULT_QUESTION_WINDOW_DAYS,
    ) -> None:
        self.sessions = sessions
        self.searcher = searcher
        self.practice_index = practice_index
        self.question_store = question_store
        self.question_embedder = question_embedder
        self.config = config
        self.question_threshold = question_threshold
        self.question_window_days = question_window_days

    def set_opt_out(self, name: str, opted_out: bool) -> None:
        """Record whether a colleague asked not to be suggested as an expert or a peer."""
        with self.sessions.begin() as session:
            person = session.scalar(select(PersonRecord).where(PersonRecord.name == name))
            if person is None:
                raise PersonNotFound(f"no colleague named {name!r}")
            person.opted_out = opted_out

    def remember_question(self, question_id: str) -> None:
        """Index a stored question's vector so that later askers of a similar one find its asker as a peer."""
        with self.sessions() as session:
            record = session.get(QuestionRecord, question_id)
            if record is None:
                raise QuestionNotFound(f"no question {question_id!r}")
            if record.person_id is None:
                return
            vector = self.question_embedder.embed_documents([record.question])
            metadata = {"person_id": record.person_id, "asked_at": _date_key(record.asked_at.date())}
        self.question_store.upsert([question_id], vector, [metadata])

    def suggest(
        self, question: str, viewer: Viewer, language: str, k: int = 5, exclude_question_id: str | None = None
    ) -> Suggestions:
        """Up to k experts, each with 1 to 3 pieces of visible evidence, and up to k peers, for a question."""
        hits = self.searcher.search(question, viewer, k=MAX_K, language=language)
        entries = self.practice_index.search(question, viewer, k=ENTRY_DEPTH, language=language)
        today = dt.date.today()
        with self.sessions() as session:
            scope = resolve_scope(session, viewer)
            items = self._items(session, scope, hits, [(hit.practice_id, hit.score) for hit in entries])
            people = {p.name: p for p in session.scalars(select(PersonRecord).where(PersonRecord.opted_out == false()))}
            # Only known, consenting colleagues other than the asker are ever named; nobody else sets the scale.
            named = {person for item in items for person, _ in item.evidence.people}
            exclude = {name for name in named if name not in people} | {viewer.person_name or ""}
            priors = self._activity(session, scope, today)
            scored = score_experts(
                [item.evidence for item in items],
                priors={name: value for name, value in priors.items() if name in people and name not in exclude},
                now=today,
                config=self.config,
                exclude=exclude,
                k=k,
            )
            by_id = {item.evidence.id: item for item in items}
            question_vector = self.question_embedder.embed_query(question)
            experts = tuple(
                Expert(
                    expert.person,
                    expert.score,
                    tuple(self._evidence(by_id[i], expert.person, question_vector) for i in expert.evidence_ids),
                )
                for expert in scored
            )
            taken = {expert.name for expert in experts} | exclude
            peers = self._question_peers(
                session, question_vector, viewer, people, taken, exclude_question_id, today, language
            )
            peers += self._learners(items, people, taken | {peer.name for peer in peers}, language)
        return Suggestions(experts, tuple(peers[:k]))

    def _items(
        self, session: Session, scope: AccessScope, hits: Sequence[SearchHit], entries: Sequence[tuple[str, float]]
    ) -> list[_Item]:
        """The found chunks and entries as evidence, re-checked against the records (anything not visible is dropped)."""
        readable = {r.id: r for r in readable_entries(session, scope)} if entries else {}
        wanted = {hit.note_id for hit in hits} | {
            e.note_id for i, _ in entries if i in readable for e in readable[i].evidence
        }
        notes = {
            n.id: n
            for n in session.scalars(
                select(NoteRecord)
                .options(selectinload(NoteRecord.participations))
                .where(NoteRecord.id.in_(wanted), visible_notes(scope))
            )
            if scope.allows(n.visibility, n.community, n.id)
        }
        chunks = {
            c.id: c for c in session.scalars(select(ChunkRecord).where(ChunkRecord.id.in_([h.chunk_id for h in hits])))
        }
        found: list[_Item] = []
        best_chunk = max((hit.score for hit in hits), default=0.0) or 1.0
        for hit in hits:
            chunk, note = chunks.get(hit.chunk_id), notes.get(hit.note_id)
            if chunk is None or note is None or note.text[chunk.start : chunk.end] != chunk.text:
                continue
            roles = {p.person.name: p.role for p in note.participations}
            people = [(name, f"participant:{role}") for name, role in roles.items()]
            # A speaker counts only when they are one of the note's participants: a name alone is nobody to ask.
            if chunk.speaker in roles:
                people.append((chunk.speaker, "speaker"))
            evidence = Evidence(chunk.id, note.id, hit.score / best_chunk, 0, tuple(people), note.session_date)
            found.append(_Item(evidence, note, chunk.start, chunk.end, None, roles))
        best_entry = max((score for _, score in entries), default=0.0) or 1.0
        for entry_id, score in entries:
            entry = readable.get(entry_id)
            sources = [notes.get(e.note_id) for e in entry.evidence] if entry is not None else []
            if entry is None or not sources or any(source is None for source in sources):
                continue
            first, note = entry.evidence[0], sources[0]
            if note is None or note.text[first.start : first.end] != first.quote:
                continue
            credited = {c.person.name: c.role for c in entry.contributors}
            people = [(name, "credited") for name in credited]
            evidence = Evidence(entry.id, note.id, score / best_entry, 0, tuple(people), note.session_date)
            found.append(_Item(evidence, note, first.start, first.end, entry, credited))
        # Chunks and entries come from two searches: each list is scaled to its best, then they are merged.
        found.sort(key=lambda item: -item.evidence.score)
        return [replace(item, evidence=replace(item.evidence, rank=rank)) for rank, item in enumerate(found, start=1)]

    def activity(self, viewer: Viewer) -> dict[str, float]:
        """Each person's recency-weighted activity among what the viewer may see (the experts' prior)."""
        with self.sessions() as session:
            return self._activity(session, resolve_scope(session, viewer), dt.date.today())

    def _activity(self, session: Session, scope: AccessScope, today: dt.date) -> dict[str, float]:
        """Chunks spoken, notes taken part in and entries credited, counted only where the scope sees them."""
        half_life = self.config.prior_half_life_days
        activity: dict[str, float] = {}

        def add(rows: Iterable[tuple[str | None, dt.date, int]]) -> None:
            for name, day, count in rows:
                if name:
                    activity[name] = activity.get(name, 0.0) + count * recency_factor(day, today, half_life)

        visible = visible_notes(scope)
        spoken = session.execute(
            select(ChunkRecord.speaker, NoteRecord.session_date, func.count())
            .join(NoteRecord, NoteRecord.id == ChunkRecord.note_id)
            .where(visible, ChunkRecord.speaker.is_not(None))
            .group_by(ChunkRecord.speaker, NoteRecord.session_date)
        )
        add((name, day, count) for name, day, count in spoken)
        took_part = session.execute(
            select(PersonRecord.name, NoteRecord.session_date, func.count())
            .join(ParticipationRecord, ParticipationRecord.person_id == PersonRecord.id)
            .join(NoteRecord, NoteRecord.id == ParticipationRecord.note_id)
            .where(visible)
            .group_by(PersonRecord.name, NoteRecord.session_date)
        )
        add((name, day, count) for name, day, count in took_part)
        entries = readable_entries(session, scope)
        sources = {e.note_id for r in entries for e in r.evidence}
        dates = {
            note_id: day
            for note_id, day in session.execute(
                select(NoteRecord.id, NoteRecord.session_date).where(NoteRecord.id.in_(sources))
            )
        }
        add(
            (c.person.name, max(dates[e.note_id] for e in r.evidence), 1)
            for r in entries
            for c in r.contributors
            if all(e.note_id in dates for e in r.evidence)
        )
        return activity

    def _evidence(self, item: _Item, person: str, question_vector: np.ndarray[Any, Any]) -> ExpertEvidence:
        """One piece of evidence for a person: the quote, its offsets in the note, and the role they played."""
        note = item.note
        if item.entry is not None:
            start, end, title = item.start, item.end, item.entry.title
        else:
            start, end = best_quote(note.text, item.start, item.end, question_vector, self.question_embedder)
            title = note.title
        role = item.roles.get(person, "speaker")
        return ExpertEvidence(
            note.id,
            note.external_id,
            item.entry.id if item.entry else None,
            note.text[start:end],
            start,
            end,
            title,
            role,
        )

    def _question_peers(
        self,
        session: Session,
        question_vector: np.ndarray[Any, Any],
        viewer: Viewer,
        people: Mapping[str, PersonRecord],
        taken: set[str],
        exclude_question_id: str | None,
        today: dt.date,
        language: str,
    ) -> list[Peer]:
        """People who recently asked a similar question, most similar first (their question is never shown)."""
        total = self.question_store.count()
        if total == 0:
            return []
        since = today - dt.timedelta(days=self.question_window_days)
        hits = self.question_store.query(
            question_vector, min(QUESTION_NEIGHBOURS, total), {"asked_at": {"$gte": _date_key(since)}}
        )
        close = [hit for hit in hits if hit.similarity >= self.question_threshold and hit.id != exclude_question_id]
        if not close:
            return []
        # The store only points at questions: who asked and when is read from the records, which may have changed.
        records = {
            q.id: q for q in session.scalars(select(QuestionRecord).where(QuestionRecord.id.in_([h.id for h in close])))
        }
        names = {p.id: p.name for p in people.values()}
        peers: list[Peer] = []
        seen = set(taken)
        for hit in close:
            record = records.get(hit.id)
            if record is None or record.person_id not in names or record.asked_at.date() < since:
                continue
            name = names[record.person_id]
            if name in seen or name == viewer.person_name:
                continue
            seen.add(name)
            peers.append(
                Peer(name, _reason("similar_question", language, day=record.asked_at.date()), "similar_question")
            )
        return peers

    @staticmethod
    def _learners(
        items: Sequence[_Item], people: Mapping[str, PersonRecord], taken: set[str], language: str
    ) -> list[Peer]:
        """Mentees and circle members of the best notes found (visible to the asker), best note first."""
        best = max((item.evidence.score for item in items if item.entry is None), default=0.0)
        notes: list[NoteRecord] = []
        for item in items:
            if item.entry is None and item.evidence.score >= LEARNER_MIN_SHARE * best and item.note not in notes:
                notes.append(item.note)
        peers: list[Peer] = []
        seen = set(taken)
        for note in notes[:LEARNER_NOTES]:
            for participation in note.participations:
                name = participation.person.name
                if participation.role == "mentee":
                    kind = "mentee"
                elif participation.role == "member" and note.kind == "circle":
                    kind = "circle_member"
                else:
                    continue
                if name in seen or name not in people:
                    continue
                seen.add(name)
                peers.append(Peer(name, _reason(kind, language, day=note.session_date, title=note.title), kind))
        return peers


_REASONS = {
    "fr": {
        "similar_question": "a posé une question proche le {day}",
        "mentee": "mentoré·e dans « {title} » ({day})",
        "circle_member": "membre du cercle « {title} » ({day})",
    },
    "en": {
        "similar_question": "asked a similar question on {day}",
        "mentee": "mentee in « {title} » ({day})",
        "circle_member": "member of the circle « {title} » ({day})",
    },
}


def _reason(kind: str, language: str, day: dt.date, title: str = "") -> str:
    """Why a peer is suggested, in the asker's language (French for ``fr``, else English)."""
    template = _REASONS["fr" if language == "fr" else "en"][kind]
    return template.format(day=day.isoformat(), title=title)
