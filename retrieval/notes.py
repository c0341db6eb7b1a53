"""Value types exchanged with the knowledge base: notes to store, and what reads return."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

NOTE_KINDS = ("circle", "pair", "mentoring", "other")
ROLES = ("facilitator", "member", "pair", "mentor", "mentee", "author")


@dataclass(frozen=True)
class Participant:
    """A person and the role they played in a session."""

    name: str
    role: str


@dataclass(frozen=True)
class ChunkDraft:
    """A passage cut from a note: ``text == note_text[start:end]``."""

    text: str
    start: int
    end: int
    kind: str
    speaker: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class NoteDraft:
    """A parsed, chunked note ready to be stored."""

    title: str
    kind: str
    community: str
    session_date: dt.date
    visibility: str
    language: str
    source_type: str
    text: str
    chunks: tuple[ChunkDraft, ...]
    participants: tuple[Participant, ...] = ()
    external_id: str | None = None
    original: bytes | None = None
    original_name: str | None = None


@dataclass(frozen=True)
class SaveResult:
    """What storing a note did: ``created``, ``unchanged`` or ``replaced``."""

    note_id: str
    status: str
    chunk_count: int


@dataclass(frozen=True)
class NoteSummary:
    """A note's metadata, as listed."""

    id: str
    external_id: str | None
    title: str
    kind: str
    community: str
    session_date: dt.date
    visibility: str
    language: str
    source_type: str
    participants: tuple[Participant, ...]
    chunk_count: int


@dataclass(frozen=True)
class ChunkView:
    """A stored chunk, as shown with its note."""

    id: str
    ordinal: int
    start: int
    end: int
    kind: str
    speaker: str | None
    section: str | None
    text: str


@dataclass(frozen=True)
class NoteDetail:
    """A note with its text and chunks."""

    summary: NoteSummary
    text: str
    original_name: str | None
    chunks: tuple[ChunkView, ...] = field(default_factory=tuple)
