"""JSON shapes of the HTTP API (also printed by the CLI's ``--json``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from retrieval.notes import NoteDetail, NoteSummary, SaveResult


class ParticipantIn(BaseModel):
    """A participant of a session."""

    name: str = Field(min_length=1, max_length=200)
    role: str


class TextNoteIn(BaseModel):
    """A note given as pasted text, with its metadata."""

    text: str = Field(min_length=1)
    kind: str
    community: str
    date: dt.date
    title: str | None = None
    visibility: str | None = None
    language: str | None = None
    id: str | None = Field(default=None, description="External id (a re-import with the same id replaces the note).")
    participants: list[ParticipantIn] = Field(default_factory=list)


def save_result_json(result: SaveResult) -> dict[str, Any]:
    """What an upload answers."""
    return {"note_id": result.note_id, "status": result.status, "chunks": result.chunk_count}


def note_summary_json(note: NoteSummary) -> dict[str, Any]:
    """A note as listed."""
    return {
        "id": note.id,
        "external_id": note.external_id,
        "title": note.title,
        "kind": note.kind,
        "community": note.community,
        "date": note.session_date.isoformat(),
        "visibility": note.visibility,
        "language": note.language,
        "source_type": note.source_type,
        "participants": [{"name": p.name, "role": p.role} for p in note.participants],
        "chunks": note.chunk_count,
    }


def note_detail_json(note: NoteDetail) -> dict[str, Any]:
    """A note with its text and chunks."""
    return {
        **note_summary_json(note.summary),
        "original_name": note.original_name,
        "text": note.text,
        "chunk_list": [
            {
                "id": c.id,
                "start": c.start,
                "end": c.end,
                "kind": c.kind,
                "speaker": c.speaker,
                "section": c.section,
                "text": c.text,
            }
            for c in note.chunks
        ],
    }
