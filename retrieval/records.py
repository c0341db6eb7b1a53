"""SQL records of the knowledge base (SQLAlchemy 2 declarative models)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, func
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
