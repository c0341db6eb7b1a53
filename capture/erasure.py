"""The right to erasure: a person is removed or pseudonymised in every store, and nothing of them stays on disk.

What happens to an erased person (the pseudonym is ``Personne-effacée-N``, N counting erasures)::

    people row                 deleted (its opt-out goes with it); a pseudonym row, never suggested, takes
                               the participations and the credits
    notes they took part in    name, first and last name (when no other participant shares them) replaced by
    or that name them          the pseudonym in text and title; re-chunked and re-embedded through the note's
                               atomic save path, under the same note id; the original file deleted
    entries                    name replaced in every field, quotes re-anchored in the new text, history
                               rewritten, a ``pseudonymised`` event added; approved ones published again
    questions and feedback     theirs deleted (with their vectors); others' texts pseudonymised
    accounts                   unlinked from the person
    any other text or JSON     the full name replaced by the pseudonym (a sweep over every table)
    vector collections         rebuilt, orphaned segment folders removed, Chroma's SQLite vacuumed
    lexical index              rebuilt from SQL in every process
    records database           SQLite vacuumed and its WAL truncated (PostgreSQL: VACUUM FULL)

Limits: a first name alone is only replaced in the notes the person took part in (elsewhere it cannot be
told apart from a namesake's); with a Chroma server, its operator must run ``chroma vacuum``, and other
processes must reopen the rebuilt collections (restart them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import JSON, String, Text, delete, or_, select, update
from sqlalchemy.orm import Session

from capture.chunking import chunk_blocks
from capture.errors import CaptureError
from capture.parsing import Block
from capture.review import PracticeBook
from retrieval.access import Viewer
from retrieval.audit import PERSON_ERASED, audit_in
from retrieval.errors import Forbidden, PersonNotFound
from retrieval.knowledge import KnowledgeBase
from retrieval.lexical import STOPWORDS, fold
from retrieval.notes import NoteDetail, NoteDraft, Participant
from retrieval.records import (
    Base,
    FeedbackRecord,
    NoteRecord,
    ParticipationRecord,
    PersonRecord,
    QuestionRecord,
    UserRecord,
)
from retrieval.vectors import ChromaVectorStore, VectorStore

__all__ = [
    "PSEUDONYM_PREFIX",
    "ErasureFailed",
    "ErasureReport",
    "NameRewriter",
    "PersonEraser",
    "note_blocks",
    "private_words",
]

# One word for the chunker: it recognises "Personne-effacée-1 : ..." as a speaker turn.
PSEUDONYM_PREFIX = "Personne-effacée-"


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure did (counts only: it names nobody)."""

    pseudonym: str
    notes_rewritten: int
    entries_rewritten: int
    questions_deleted: int
    feedback_deleted: int
    accounts_unlinked: int
    rows_swept: int
    vectors_kept: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        """The report in the shape of ``people erase --json`` and ``DELETE /api/people/{name}``."""
        return {
            "pseudonym": self.pseudonym,
            "notes_rewritten": self.notes_rewritten,
            "entries_rewritten": self.entries_rewritten,
            "questions_deleted": self.questions_deleted,
            "feedback_deleted": self.feedback_deleted,
            "accounts_unlinked": self.accounts_unlinked,
            "rows_swept": self.rows_swept,
            "vectors_kept": dict(self.vectors_kept),
        }


class NameRewriter:
    """Replaces a name (any case) and, optionally, some of its words alone by a pseudonym, in text and JSON."""

    def __init__(self, name: str, pseudonym: str, words: Iterable[str] = ()) -> None:
        self.name = name
        self.pseudonym = pseudonym
        self.words = frozenset(words)
        full = r"\s+".join(re.escape(part) for part in name.split())
        self._full = re.compile(rf"(?<!\w){full}(?!\w)", re.IGNORECASE)
        # A word alone is matched as the name writes it, or in capitals: "Karim", "KARIM", never "karim".
        variants = sorted({v for word in self.words for v in (word, word.upper())}, key=len, reverse=True)
        self._words = re.compile(rf"(?<!\w)(?:{'|'.join(map(re.escape, variants))})(?!\w)") if variants else None

    def with_words(self, words: Iterable[str]) -> NameRewriter:
        """The same rewriting, also replacing these words of the name when they stand alone."""
        return NameRewriter(self.name, self.pseudonym, self.words | set(words))

    def text(self, value: str) -> str:
        """The text with the name replaced."""
        value = self._full.sub(self.pseudonym, value)
        return self._words.sub(self.pseudonym, value) if self._words is not None else value

    def __call__(self, value: Any) -> Any:
        """Any stored value with the name replaced: strings, and strings inside lists and dicts."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, dict):
            return {self(key): self(item) for key, item in value.items()}
        return value

    def variants(self) -> list[str]:
        """Spellings of the full name to search the database for (SQLite folds only ASCII case); the regex decides."""
        return sorted({self.name, self.name.upper(), self.name.lower(), self.name.title()})


def private_words(name: str, others: Sequence[str]) -> list[str]:
    """Words of a name that, alone in a note, can only mean this person (not a namesake's, not a stop word)."""
    taken = {fold(word) for other in others for word in other.split()}
    return [word for word in name.split() if len(word) > 1 and fold(word) not in STOPWORDS and fold(word) not in taken]


def note_blocks(text: str, sections: Iterable[str]) -> list[Block]:
    """The blocks a note's normalised text was built from, so the chunker can cut it again.

    ``chunk_blocks`` writes one block a line, ``- `` before an item, ``\\n`` between two items and ``\\n\\n``
    elsewhere: a line is an item when it starts with ``- `` (unless a blank line separates it from an item,
    which only a paragraph can be), and a heading when it is one of the chunks' sections.
    """
    headings = set(sections)
    blocks: list[Block] = []
    blank_before = True
    for line in text.split("\n"):
        if not line:
            blank_before = True
            continue
        after_item = bool(blocks) and blocks[-1].kind == "item"
        if line.startswith("- ") and not (blank_before and after_item):
            blocks.append(Block("item", line[2:]))
        elif line in headings:
            blocks.append(Block("heading", line))
        else:
            blocks.append(Block("paragraph", line))
        blank_before = False
    return blocks


class ErasureFailed(CaptureError):
    """A note could not be cut again after pseudonymisation; nothing was written."""

    code = "erasure_failed"


class PersonEraser:
    """Erases a person from the records, the vector collections, the lexical index and the files on disk."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        practices: PracticeBook,
        collections: Sequence[ChromaVectorStore],
        question_store: VectorStore | None = None,
        chunk_max_chars: int = 1200,
    ) -> None:
        self.knowledge = knowledge
        self.practices = practices
        self.collections = collections
        self.question_store = question_store
        self.chunk_max_chars = chunk_max_chars

    def erase(self, name: str, viewer: Viewer) -> ErasureReport:
        """Erase a person (by exact name); only admins may."""
        if not viewer.may_manage_accounts:
            raise Forbidden("only admins may erase a person")
        sessions = self.knowledge.sessions
        with sessions() as session:
            person = session.scalar(select(PersonRecord).where(PersonRecord.name == name))
            if person is None:
                raise PersonNotFound(f"no colleague named {name!r}")
            person_id = person.id
            pseudonym = _next_pseudonym(session)
            rewriter = NameRewriter(name, pseudonym)
            own_notes = set(
                session.scalars(select(ParticipationRecord.note_id).where(ParticipationRecord.person_id == person_id))
            )
            naming = set(
                session.scalars(
                    select(NoteRecord.id).where(
                        or_(
                            *(
                                column.icontains(v, autoescape=True)
                                for v in rewriter.variants()
                                for column in (NoteRecord.text, NoteRecord.title)
                            )
                        )
                    )
                )
            )
        admin = Viewer.administrator()
        details = {
            note_id: self.knowledge.get_note(note_id, admin, audited=False) for note_id in sorted(own_notes | naming)
        }
        words = {
            note_id: private_words(name, [p.name for p in detail.summary.participants if p.name != name])
            for note_id, detail in details.items()
            if note_id in own_notes
        }
        # Everything is derived before anything is written: a note that cannot be cut again stops the erasure here.
        drafts = {
            note_id: self._pseudonymised(detail, rewriter.with_words(words.get(note_id, ())), pseudonym)
            for note_id, detail in details.items()
        }
        with sessions.begin() as session:
            pseudonym_row = PersonRecord(name=pseudonym, opted_out=True)
            session.add(pseudonym_row)
            session.flush()
            pseudonym_id = pseudonym_row.id
        for note_id, draft in drafts.items():
            self.knowledge.replace_note(note_id, draft)

        def rewrite_for(note_ids: set[str]) -> NameRewriter:
            return rewriter.with_words(w for note_id in note_ids for w in words.get(note_id, ()))

        entries = self.practices.pseudonymise_person(
            person_id, pseudonym_id, rewrite_for, {i: d.text for i, d in drafts.items()}, viewer.label
        )
        with sessions.begin() as session:
            questions, feedback, dropped_vectors = self._forget_questions(session, person_id, name, rewriter)
            accounts = list(session.scalars(select(UserRecord).where(UserRecord.person_id == person_id)))
            for account in accounts:
                account.person_id = None
            session.execute(delete(PersonRecord).where(PersonRecord.id == person_id))
            swept = _sweep(session, rewriter)
            report = ErasureReport(
                pseudonym=pseudonym,
                notes_rewritten=len(drafts),
                entries_rewritten=len(entries),
                questions_deleted=questions,
                feedback_deleted=feedback,
                accounts_unlinked=len(accounts),
                rows_swept=swept,
                vectors_kept={},
            )
            detail = {key: value for key, value in report.as_json().items() if key != "vectors_kept"}
            audit_in(session, viewer.label, PERSON_ERASED, "person", pseudonym, detail)
        if self.question_store is not None and dropped_vectors:
            self.question_store.delete(dropped_vectors)
        self.knowledge.reload_catalog()
        kept = {store.name: store.rebuild() for store in self.collections}
        self.knowledge.compact_records()
        return replace(report, vectors_kept=kept)

    def _pseudonymised(self, detail: NoteDetail, rewrite: NameRewriter, pseudonym: str) -> NoteDraft:
        summary = detail.summary
        text = rewrite.text(detail.text)
        participants = tuple(
            Participant(pseudonym if p.name == rewrite.name else p.name, p.role) for p in summary.participants
        )
        sections = {rewrite.text(c.section) for c in detail.chunks if c.section}
        chunked = chunk_blocks(note_blocks(text, sections), participants, max_chars=self.chunk_max_chars)
        if chunked.text != text:
            raise ErasureFailed(f"note {summary.id} cannot be cut again after pseudonymisation; nothing was erased")
        return NoteDraft(
            title=rewrite.text(summary.title),
            kind=summary.kind,
            community=summary.community,
            session_date=summary.session_date,
            visibility=summary.visibility,
            language=summary.language,
            source_type=summary.source_type,
            text=text,
            chunks=chunked.chunks,
            participants=participants,
            external_id=summary.external_id,
        )

    @staticmethod
    def _forget_questions(
        session: Session, person_id: int, name: str, rewrite: NameRewriter
    ) -> tuple[int, int, list[str]]:
        """Delete the person's questions and feedback; pseudonymise the others'. Returns counts and vector ids."""
        labels = {name, *session.scalars(select(UserRecord.login).where(UserRecord.person_id == person_id))}
        own = list(
            session.scalars(
                select(QuestionRecord.id).where(
                    or_(QuestionRecord.person_id == person_id, QuestionRecord.asker.in_(labels))
                )
            )
        )
        feedback = list(
            session.scalars(
                select(FeedbackRecord.id).where(
                    or_(FeedbackRecord.author.in_(labels), FeedbackRecord.question_id.in_(own))
                )
            )
        )
        session.execute(delete(FeedbackRecord).where(FeedbackRecord.id.in_(feedback)))
        session.execute(delete(QuestionRecord).where(QuestionRecord.id.in_(own)))
        named = list(
            session.scalars(
                select(QuestionRecord).where(
                    or_(
                        *(
                            column.icontains(v, autoescape=True)
                            for v in rewrite.variants()
                            for column in (QuestionRecord.question, QuestionRecord.answer)
                        )
                    )
                )
            )
        )
        for question in named:
            question.question = rewrite.text(question.question)
            question.answer = rewrite.text(question.answer)
        # A pseudonymised question keeps its record; its vector, embedded from the old text, goes.
        return len(own), len(feedback), own + [q.id for q in named]


def _next_pseudonym(session: Session) -> str:
    taken = set(session.scalars(select(PersonRecord.name).where(PersonRecord.name.startswith(PSEUDONYM_PREFIX))))
    number = len(taken) + 1
    while f"{PSEUDONYM_PREFIX}{number}" in taken:
        number += 1
    return f"{PSEUDONYM_PREFIX}{number}"


def _sweep(session: Session, rewrite: NameRewriter) -> int:
    """Replace the full name in every text and JSON column of every table; returns the rows changed.

    Text columns are searched by the database; JSON columns are read whole, since a JSON column may keep
    accented letters escaped (``\\u00e9``), which no ``LIKE`` on the name finds.
    """
    session.flush()
    changed = 0
    for table in Base.metadata.sorted_tables:
        keys = list(table.primary_key.columns)
        texts = [c for c in table.columns if isinstance(c.type, String | Text) and not c.primary_key]
        jsons = [c for c in table.columns if isinstance(c.type, JSON)]
        if not keys or not (texts or jsons):
            continue
        conditions = [c.icontains(v, autoescape=True) for c in texts for v in rewrite.variants()]
        rows = list(session.execute(select(table).where(or_(*conditions)))) if conditions else []
        if jsons:
            rows.extend(session.execute(select(table)))
        seen: set[tuple[Any, ...]] = set()
        for row in rows:
            key = tuple(row._mapping[k] for k in keys)
            if key in seen:
                continue
            seen.add(key)
            values = {
                c.name: rewrite(row._mapping[c])
                for c in (*texts, *jsons)
                if row._mapping[c] is not None and rewrite(row._mapping[c]) != row._mapping[c]
            }
            if values:
                session.execute(update(table).where(*(k == row._mapping[k] for k in keys)).values(**values))
                changed += 1
    return changed
