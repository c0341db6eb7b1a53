"""SQL records of the knowledge base (SQLAlchemy 2 declarative models)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of every Compagnon table."""


class NoteRecord(Base):
    """A session note: its metadata, its normalised text and where its original file is kept."""

    __tablename__ = "notes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20), index=True)
    community: Mapped[str] = mapped_column(String(100), index=True)
    session_date: Mapped[dt.date] = mapped_column(Date, index=True)
    visibility: Mapped[str] = mapped_column(String(20), index=True)
    language: Mapped[str] = mapped_column(String(10))
    source_type: Mapped[str] = mapped_column(String(20))
    original_name: Mapped[str | None] = mapped_column(String(300))
    original_path: Mapped[str | None] = mapped_column(String(300))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    text: Mapped[str] = mapped_column(Text)
    # The account that first uploaded the note (its login; none when the system or the local CLI stored it).
    uploaded_by: Mapped[str | None] = mapped_column(String(200), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    participations: Mapped[list[ParticipationRecord]] = relationship(
        back_populates="note", cascade="all, delete-orphan", order_by="ParticipationRecord.position"
    )
    chunks: Mapped[list[ChunkRecord]] = relationship(
        back_populates="note", cascade="all, delete-orphan", order_by="ChunkRecord.ordinal"
    )


class PersonRecord(Base):
    """A colleague who took part in sessions."""

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The person asked not to be suggested as an expert or a peer.
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ParticipationRecord(Base):
    """A person's part in a note, with the role they played."""

    __tablename__ = "participations"
    __table_args__ = (UniqueConstraint("note_id", "person_id", name="uq_participation"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    note_id: Mapped[str] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer)

    note: Mapped[NoteRecord] = relationship(back_populates="participations")
    person: Mapped[PersonRecord] = relationship(lazy="joined")


class ChunkRecord(Base):
    """A passage of a note, cut along its structure, with its offsets in the note's normalised text."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_note_ordinal", "note_id", "ordinal"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    note_id: Mapped[str] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"))
    ordinal: Mapped[int] = mapped_column(Integer)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    speaker: Mapped[str | None] = mapped_column(String(200))
    section: Mapped[str | None] = mapped_column(String(300))

    note: Mapped[NoteRecord] = relationship(back_populates="chunks")


class StateRecord(Base):
    """Counters shared by every process: the revision of the records, bumped on each write."""

    __tablename__ = "kb_state"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class PracticeRecord(Base):
    """A best-practice entry: drafted from notes, reviewed by HR."""

    __tablename__ = "practices"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    title: Mapped[str] = mapped_column(String(300))
    practice: Mapped[str] = mapped_column(Text)
    steps: Mapped[list[str]] = mapped_column(JSON, default=list)
    context: Mapped[str] = mapped_column(Text, default="")
    rationale: Mapped[str] = mapped_column(Text, default="")
    pitfalls: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    language: Mapped[str] = mapped_column(String(10))
    community: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    extracted_by: Mapped[str] = mapped_column(String(100))
    prompt_version: Mapped[str | None] = mapped_column(String(100))
    flags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The personal data found in its text when that text last changed (None: never scanned), so that reading
    # an entry never runs the detector.
    pii: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    group_id: Mapped[str | None] = mapped_column(String(40), index=True)
    superseded_by: Mapped[str | None] = mapped_column(String(40))
    merged_into: Mapped[str | None] = mapped_column(String(40))
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    review_due: Mapped[dt.date | None] = mapped_column(Date, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    evidence: Mapped[list[EvidenceRecord]] = relationship(
        back_populates="practice", cascade="all, delete-orphan", order_by="EvidenceRecord.position"
    )
    contributors: Mapped[list[ContributorRecord]] = relationship(
        back_populates="practice", cascade="all, delete-orphan", order_by="ContributorRecord.position"
    )


class EvidenceRecord(Base):
    """A verbatim span of a note supporting one claim of an entry."""

    __tablename__ = "practice_evidence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), index=True)
    note_id: Mapped[str] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    claim: Mapped[str] = mapped_column(String(20))
    quote: Mapped[str] = mapped_column(Text)
    start: Mapped[int] = mapped_column(Integer)
    end: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)

    practice: Mapped[PracticeRecord] = relationship(back_populates="evidence")


class ContributorRecord(Base):
    """A person credited on an entry, with the role they played in the source session."""

    __tablename__ = "practice_contributors"
    __table_args__ = (UniqueConstraint("practice_id", "person_id", name="uq_contributor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("practices.id", ondelete="CASCADE"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    position: Mapped[int] = mapped_column(Integer)

    practice: Mapped[PracticeRecord] = relationship(back_populates="contributors")
    person: Mapped[PersonRecord] = relationship(lazy="joined")


class HistoryRecord(Base):
    """One event in an entry's life: who did what, when, and the values before and after."""

    __tablename__ = "practice_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    practice_id: Mapped[str] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)


class JobRecord(Base):
    """An extraction job of a note: survives restarts, shows progress."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    note_id: Mapped[str] = mapped_column(ForeignKey("notes.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[str | None] = mapped_column(Text)
    drafts: Mapped[int] = mapped_column(Integer, default=0)
    # Set here, to the microsecond: SQLite's CURRENT_TIMESTAMP has whole seconds, which ties jobs queued together.
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=lambda: dt.datetime.now(dt.UTC), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class QuestionRecord(Base):
    """A question asked: by whom, what grounded the answer, and whether it was answered (else a knowledge gap)."""

    __tablename__ = "questions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    asked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    asker: Mapped[str] = mapped_column(String(200), index=True)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    question: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(10))
    engine: Mapped[str] = mapped_column(String(100))
    answered: Mapped[bool] = mapped_column(Boolean, index=True)
    confidence: Mapped[float] = mapped_column(Float)
    answer: Mapped[str] = mapped_column(Text)
    # [{"n", "note_id", "entry_id", "chunk_id", "start", "end"}]: ids and offsets only, never the text.
    sources: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    feedback: Mapped[list[FeedbackRecord]] = relationship(
        back_populates="question", cascade="all, delete-orphan", order_by="FeedbackRecord.id"
    )


class FeedbackRecord(Base):
    """A thumbs up (+1) or down (-1) on an answer, with an optional comment."""

    __tablename__ = "answer_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    question_id: Mapped[str] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(200))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))

    question: Mapped[QuestionRecord] = relationship(back_populates="feedback")


class UserRecord(Base):
    """An account: a login, a role, optionally the person (participant) it is, and its password hash."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    password_hash: Mapped[str | None] = mapped_column(String(300))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    person: Mapped[PersonRecord | None] = relationship(lazy="joined")
    memberships: Mapped[list[MembershipRecord]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="MembershipRecord.community"
    )


class MembershipRecord(Base):
    """A user's membership of a community: what lets them read that community's notes."""

    __tablename__ = "community_members"
    __table_args__ = (UniqueConstraint("user_id", "community", name="uq_membership"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    community: Mapped[str] = mapped_column(String(100), index=True)

    user: Mapped[UserRecord] = relationship(back_populates="memberships")


class TokenRecord(Base):
    """An API token of a user: only its hash is kept; revoked tokens stay listed."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class WebSessionRecord(Base):
    """A signed-in browser session: the hashes of its cookie and CSRF token, and when it expires."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class AuditRecord(Base):
    """One audited act: who did what to which target, when (append-only from the application's side)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(50), index=True)
    target_type: Mapped[str] = mapped_column(String(30))
    target_id: Mapped[str] = mapped_column(String(200), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
