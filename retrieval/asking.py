"""Asking: gather what the viewer may read, answer from it, record the question; feedback on answers; HR lists.

Sources are approved practices first (``PracticeIndex``), then note chunks (``HybridSearcher``); both are
filtered by the viewer's scope before ranking, so nothing the viewer may not read can be cited. A question
record keeps the sources' ids and offsets, never their text; nothing of a note is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from retrieval.access import Viewer, resolve_scope
from retrieval.answers import Answer, Answerer, Source, answer_language
from retrieval.errors import Forbidden, InvalidFeedback, InvalidQuery, QuestionNotFound
from retrieval.lexical import fold
from retrieval.practice_index import PracticeHit, PracticeIndex
from retrieval.records import FeedbackRecord, NoteRecord, PersonRecord, QuestionRecord
from retrieval.search import HybridSearcher, SearchHit

__all__ = ["AskedAnswer", "Asker", "FeedbackView", "QuestionView", "sources_from"]

logger = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
MAX_COMMENT_CHARS = 4000
MAX_LIST = 500
RATINGS = (1, -1)


@dataclass(frozen=True)
class AskedAnswer:
    """The answer to a question just asked, its record id and the sources it was drawn from."""

    question_id: str
    answer: Answer
    sources: tuple[Source, ...]

    def as_json(self) -> dict[str, Any]:
        """The answer as JSON, with the question id and the sources."""
        return {
            "question_id": self.question_id,
            **self.answer.as_json(),
            "sources": [source.as_json() for source in self.sources],
        }


@dataclass(frozen=True)
class QuestionView:
    """A recorded question as HR sees it."""

    id: str
    asked_at: dt.datetime
    asker: str
    person_id: int | None
    question: str
    language: str
    engine: str
    answered: bool
    confidence: float
    answer: str
    sources: tuple[dict[str, Any], ...]
    ratings: tuple[int, ...]

    def as_json(self) -> dict[str, Any]:
        """The question as JSON."""
        return {
            "id": self.id,
            "asked_at": self.asked_at.isoformat(),
            "asker": self.asker,
            "person_id": self.person_id,
            "question": self.question,
            "language": self.language,
            "engine": self.engine,
            "answered": self.answered,
            "confidence": round(self.confidence, 4),
            "answer": self.answer,
            "sources": list(self.sources),
            "ratings": list(self.ratings),
        }


@dataclass(frozen=True)
class FeedbackView:
    """A rating left on an answer."""

    id: int
    question_id: str
    rating: int
    comment: str
    author: str
    at: dt.datetime
    question: str

    def as_json(self) -> dict[str, Any]:
        """The feedback as JSON."""
        return {
            "id": self.id,
            "question_id": self.question_id,
            "rating": self.rating,
            "comment": self.comment,
            "author": self.author,
            "at": self.at.isoformat(),
            "question": self.question,
        }


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def practice_statement(title: str, practice: str) -> str:
    """What an answer says of a practice: its title then its text, or the text alone when it already says the title."""
    if f" {_words(title)} " in f" {_words(practice)} ":
        return practice[:1].upper() + practice[1:]
    return f"{title.rstrip('.')}. {practice}"


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", fold(text)))


def sources_from(
    practices: Sequence[PracticeHit], chunks: Sequence[SearchHit], notes: dict[str, NoteRecord]
) -> list[Source]:
    """Number the sources: approved practices first (cited by their first evidence span), then note chunks."""
    sources: list[Source] = []
    for hit in practices:
        note = notes.get(hit.note_id)
        sources.append(
            Source(
                n=len(sources) + 1,
                kind="practice",
                note_id=hit.note_id,
                external_id=hit.external_id,
                entry_id=hit.practice_id,
                chunk_id=None,
                title=hit.title,
                text=hit.quote,
                start=hit.start,
                end=hit.end,
                score=hit.score,
                language=note.language if note is not None else hit.language,
                session_date=note.session_date if note is not None else None,
                community=hit.community,
                kind_of_note=note.kind if note is not None else "",
                statement=practice_statement(hit.title, hit.practice),
            )
        )
    for chunk in chunks:
        sources.append(
            Source(
                n=len(sources) + 1,
                kind="chunk",
                note_id=chunk.note_id,
                external_id=chunk.external_id,
                entry_id=None,
                chunk_id=chunk.chunk_id,
                title=chunk.title,
                text=chunk.text,
                start=chunk.start,
                end=chunk.end,
                score=chunk.score,
                language=chunk.language,
                speaker=chunk.speaker,
                session_date=chunk.session_date,
                community=chunk.community,
                kind_of_note=chunk.kind,
            )
        )
    return sources


class Asker:
    """Answers a viewer's question from what they may read, and records it (a knowledge gap when unanswered)."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        searcher: HybridSearcher,
        practice_index: PracticeIndex,
        answerer: Answerer,
        k_practices: int = 3,
        k_chunks: int = 8,
        clock: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.sessions = sessions
        self.searcher = searcher
        self.practice_index = practice_index
        self.answerer = answerer
        self.k_practices = k_practices
        self.k_chunks = k_chunks
        self.clock = clock

    def gather(self, question: str, viewer: Viewer, language: str) -> list[Source]:
        """The numbered sources for a question, among what the viewer may read."""
        practices = (
            self.practice_index.search(question, viewer, k=self.k_practices, language=language)
            if self.k_practices
            else []
        )
        chunks = self.searcher.search(question, viewer, k=self.k_chunks, language=language)
        with self.sessions() as session:
            ids = {hit.note_id for hit in practices}
            notes = {n.id: n for n in session.scalars(select(NoteRecord).where(NoteRecord.id.in_(ids)))} if ids else {}
            return sources_from(practices, chunks, notes)

    def ask(self, question: str, viewer: Viewer, language: str) -> AskedAnswer:
        """Answer a question (or abstain) and record it with the ids and offsets of its sources."""
        question = question.strip()
        if not question:
            raise InvalidQuery("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidQuery(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        language = answer_language(language)
        sources = self.gather(question, viewer, language)
        answer = self.answerer.answer(question, language, sources)
        question_id = uuid.uuid4().hex
        with self.sessions.begin() as session:
            person_id = (
                session.scalar(select(PersonRecord.id).where(PersonRecord.name == viewer.person_name))
                if viewer.person_name
                else None
            )
            session.add(
                QuestionRecord(
                    id=question_id,
                    asked_at=self.clock(),
                    asker=viewer.label,
                    person_id=person_id,
                    question=question,
                    language=language,
                    engine=answer.engine,
                    answered=not answer.abstained,
                    confidence=answer.confidence,
                    answer=answer.text,
                    sources=[source.as_record() for source in sources],
                )
            )
        logger.info(
            "question %s: %s, %d sources, %d citations, engine %s%s",
            question_id,
            "abstained" if answer.abstained else "answered",
            len(sources),
            len(answer.citations),
            answer.engine,
            f", fallback {answer.fallback}" if answer.fallback else "",
        )
        return AskedAnswer(question_id, answer, tuple(sources))

    def feedback(self, question_id: str, viewer: Viewer, rating: int, comment: str = "") -> FeedbackView:
        """Record a thumbs up (+1) or down (-1) on an answer; a viewer rates only their own questions."""
        if isinstance(rating, bool) or rating not in RATINGS:
            raise InvalidFeedback("the rating must be +1 or -1")
        comment = comment.strip()
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidFeedback(f"the comment is longer than {MAX_COMMENT_CHARS} characters")
        with self.sessions.begin() as session:
            question = session.get(QuestionRecord, question_id)
            # Someone else's question is reported as unknown: its existence is not the viewer's business.
            if question is None or not (viewer.sees_everything or question.asker == viewer.label):
                raise QuestionNotFound(f"no question {question_id!r}")
            record = FeedbackRecord(
                question_id=question.id, rating=rating, comment=comment, author=viewer.label, at=self.clock()
            )
            session.add(record)
            session.flush()
            return _feedback_view(record, question.question)

    def list_questions(self, viewer: Viewer, answered: bool | None = None, limit: int = 50) -> list[QuestionView]:
        """The latest questions asked, optionally only the (un)answered ones: the knowledge gaps, for HR."""
        _require_hr(viewer)
        with self.sessions() as session:
            query = select(QuestionRecord).order_by(QuestionRecord.asked_at.desc(), QuestionRecord.id)
            if answered is not None:
                query = query.where(QuestionRecord.answered.is_(answered))
            rows = session.scalars(query.limit(_bounded(limit))).all()
            # HR reads the questions, not what they were answered from: an answer quoting a note HR may not read
            # (someone's mentoring) is withheld, and so are the ids of those notes.
            return _views(session, viewer, rows)

    def own_questions(self, viewer: Viewer, limit: int = 50) -> list[QuestionView]:
        """The viewer's own questions, newest first; an answer quoting a note they may no longer read is withheld."""
        with self.sessions() as session:
            rows = session.scalars(
                select(QuestionRecord)
                .where(QuestionRecord.asker == viewer.label)
                .order_by(QuestionRecord.asked_at.desc(), QuestionRecord.id)
                .limit(_bounded(limit))
            ).all()
            return _views(session, viewer, rows)

    def list_feedback(self, viewer: Viewer, limit: int = 50) -> list[FeedbackView]:
        """The latest ratings left on answers, for HR."""
        _require_hr(viewer)
        with self.sessions() as session:
            rows = session.execute(
                select(FeedbackRecord, QuestionRecord.question)
                .join(QuestionRecord, QuestionRecord.id == FeedbackRecord.question_id)
                .order_by(FeedbackRecord.at.desc(), FeedbackRecord.id.desc())
                .limit(_bounded(limit))
            ).all()
            return [_feedback_view(record, question) for record, question in rows]


def _views(session: Session, viewer: Viewer, rows: Sequence[QuestionRecord]) -> list[QuestionView]:
    """Question records as the viewer may see them: sources they may not read dropped, and then the answer."""
    scope = resolve_scope(session, viewer)
    cited = {s["note_id"] for row in rows for s in row.sources}
    readable = {
        n.id
        for n in session.scalars(select(NoteRecord).where(NoteRecord.id.in_(cited)))
        if scope.allows(n.visibility, n.community, n.id)
    }
    views = []
    for row in rows:
        sources = tuple(s for s in row.sources if s["note_id"] in readable)
        views.append(
            QuestionView(
                id=row.id,
                asked_at=_aware(row.asked_at),
                asker=row.asker,
                person_id=row.person_id,
                question=row.question,
                language=row.language,
                engine=row.engine,
                answered=row.answered,
                confidence=row.confidence,
                answer=row.answer if len(sources) == len(row.sources) else "",
                sources=sources,
                ratings=tuple(f.rating for f in row.feedback),
            )
        )
    return views


def _require_hr(viewer: Viewer) -> None:
    if not (viewer.sees_everything or viewer.role == "hr"):
        raise Forbidden("only HR may read the questions asked and their feedback")


def _bounded(limit: int) -> int:
    if not 1 <= limit <= MAX_LIST:
        raise InvalidQuery(f"limit must be between 1 and {MAX_LIST}")
    return limit


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _feedback_view(record: FeedbackRecord, question: str) -> FeedbackView:
    return FeedbackView(
        id=record.id,
        question_id=record.question_id,
        rating=record.rating,
        comment=record.comment,
        author=record.author,
        at=_aware(record.at),
        question=question,
    )
