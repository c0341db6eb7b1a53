"""The in-process catalog of chunks: their access metadata and the BM25 index, kept in step with SQL.

Every write bumps a revision counter in SQL inside the same transaction; a process whose catalog is
behind the stored revision reloads it, so several processes sharing one database stay consistent.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from retrieval.lexical import BM25Index, analyse
from retrieval.records import ChunkRecord, NoteRecord, StateRecord

REVISION_KEY = "revision"


@dataclass(frozen=True)
class ChunkMeta:
    """What filters need to know of a chunk, without touching SQL."""

    note_id: str
    visibility: str
    community: str
    kind: str
    language: str
    date: int

    def as_metadata(self) -> dict[str, Any]:
        """The vector-store metadata of the chunk."""
        return {
            "note_id": self.note_id,
            "visibility": self.visibility,
            "community": self.community,
            "kind": self.kind,
            "language": self.language,
            "date": self.date,
        }


def chunk_meta(note: NoteRecord) -> ChunkMeta:
    """The filter metadata shared by every chunk of a note."""
    return ChunkMeta(
        note_id=note.id,
        visibility=note.visibility,
        community=note.community,
        kind=note.kind,
        language=note.language,
        date=int(note.session_date.strftime("%Y%m%d")),
    )


def index_text(chunk_text: str, section: str | None) -> str:
    """The text a chunk is indexed and embedded under: its section heading gives it context."""
    return f"{section}\n{chunk_text}" if section else chunk_text


def read_revision(session: Session) -> int:
    """The stored revision of the records."""
    value = session.scalar(select(StateRecord.value).where(StateRecord.key == REVISION_KEY))
    return int(value or 0)


def bump_revision(session: Session) -> int:
    """Increment the stored revision inside the caller's transaction; returns the new value.

    One UPDATE, so that two writers never both write the same next value (SQLite has no row locks). The first two
    writers of a new database both find no row: the second one's insert fails, and its UPDATE then finds the row.
    """
    for attempt in (1, 2):
        bumped = session.execute(
            update(StateRecord)
            .where(StateRecord.key == REVISION_KEY)
            .values(value=StateRecord.value + 1)
            .execution_options(synchronize_session=False)
        )
        if bumped.rowcount == 1:  # type: ignore[attr-defined]
            return int(session.scalar(select(StateRecord.value).where(StateRecord.key == REVISION_KEY)) or 0)
        try:
            with session.begin_nested():
                session.add(StateRecord(key=REVISION_KEY, value=1))
            return 1
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable: the second attempt returns or raises")


class ChunkCatalog:
    """Chunk metadata and the lexical index, reloaded from SQL whenever another writer moved ahead."""

    def __init__(self, sessions: sessionmaker) -> None:  # type: ignore[type-arg]
        self._sessions = sessions
        self._lock = threading.RLock()
        self._revision = -1
        self.meta: dict[str, ChunkMeta] = {}
        self.lexical = BM25Index()

    def refresh(self) -> None:
        """Reload from SQL if the stored revision differs from the one this catalog reflects."""
        with self._sessions() as session:
            revision = read_revision(session)
            with self._lock:
                if revision == self._revision:
                    return
                self._reload(session, revision)

    def _reload(self, session: Session, revision: int) -> None:
        meta: dict[str, ChunkMeta] = {}
        lexical = BM25Index()
        notes = {note.id: note for note in session.scalars(select(NoteRecord))}
        rows = session.execute(select(ChunkRecord.id, ChunkRecord.note_id, ChunkRecord.text, ChunkRecord.section))
        for chunk_id, note_id, text, section in rows:
            note = notes[note_id]
            meta[chunk_id] = chunk_meta(note)
            lexical.add(chunk_id, analyse(index_text(text, section), note.language))
        self.meta = meta
        self.lexical = lexical
        self._revision = revision

    def apply(
        self,
        revision: int,
        added: dict[str, tuple[ChunkMeta, list[str]]],
        removed: list[str],
    ) -> None:
        """Apply this process's own committed write; a gap in revisions means someone else wrote: reload later."""
        with self._lock:
            if revision != self._revision + 1:
                self._revision = -1
                return
            self.lexical.remove(removed)
            for chunk_id in removed:
                self.meta.pop(chunk_id, None)
            for chunk_id, (meta, terms) in added.items():
                self.meta[chunk_id] = meta
                self.lexical.add(chunk_id, terms)
            self._revision = revision
