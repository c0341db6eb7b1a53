"""The knowledge base: stores notes atomically across SQL, the vector store, the lexical index and disk."""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, defer, selectinload, sessionmaker

from retrieval.access import AccessScope, Viewer, resolve_scope
from retrieval.audit import NOTE_ORIGINAL, NOTE_READ, AuditLog
from retrieval.catalog import ChunkCatalog, ChunkMeta, bump_revision, chunk_meta, index_text
from retrieval.embedders import Embedder, Vectors
from retrieval.errors import ExternalIdTaken, NoteNotFound, StoreUnavailable
from retrieval.lexical import analyse
from retrieval.notes import (
    ChunkView,
    NoteDetail,
    NoteDraft,
    NoteSummary,
    Participant,
    SaveResult,
)
from retrieval.records import ChunkRecord, NoteRecord, ParticipationRecord, PersonRecord
from retrieval.vectors import VectorStore

logger = logging.getLogger(__name__)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def note_fingerprint(draft: NoteDraft) -> str:
    """A hash of everything stored for a note: same fingerprint, nothing to do."""
    metadata = {
        "title": draft.title,
        "kind": draft.kind,
        "community": draft.community,
        "date": draft.session_date.isoformat(),
        "visibility": draft.visibility,
        "language": draft.language,
        "participants": [[p.name, p.role] for p in draft.participants],
        "external_id": draft.external_id,
    }
    return _digest(draft.text, json.dumps(metadata, sort_keys=True, ensure_ascii=False))


def note_id_for(draft: NoteDraft) -> str:
    """The note's id: from its external id when imported, else from its text (a retry never duplicates)."""
    if draft.external_id:
        return "n" + _digest("external", draft.external_id)[:23]
    return "n" + _digest("text", draft.text)[:23]


def chunk_id_for(fingerprint: str, ordinal: int, start: int, text: str) -> str:
    """A chunk's id, derived from the note's fingerprint and its own content."""
    return "c" + _digest(fingerprint, str(ordinal), str(start), text)[:31]


STAGED_PREFIX = ".staged-"


def staged_original_name(note_id: str, fingerprint: str) -> str:
    """The name an original is written under before its note commits: it says which note and version it is."""
    return f"{STAGED_PREFIX}{note_id}.{fingerprint[:32]}.{uuid.uuid4().hex[:12]}"


def staged_original_owner(name: str) -> tuple[str, str] | None:
    """The note id and fingerprint prefix a staged original was written for (None for another file)."""
    if not name.startswith(STAGED_PREFIX):
        return None
    parts = name[len(STAGED_PREFIX) :].split(".")
    return (parts[0], parts[1]) if len(parts) == 3 and all(parts) else None


@dataclass(frozen=True)
class _Written:
    """What writing a note's records did: the chunk ids it replaced, the chunks' metadata, the catalog revision."""

    old_ids: list[str]
    meta: ChunkMeta
    revision: int
    replaced: bool


def uploader_label(viewer: Viewer) -> str | None:
    """What a note records as its uploader: the account's login (nothing for the local CLI, which is the system)."""
    return None if viewer.sees_everything else viewer.label


def may_replace(viewer: Viewer, note: NoteRecord) -> bool:
    """Whether an upload by the viewer may replace a stored note: admins, its uploader, and HR unless it is private."""
    if viewer.sees_everything or viewer.role == "admin":
        return True
    if not viewer.may_upload:
        return False
    if note.uploaded_by is not None and note.uploaded_by == viewer.label:
        return True
    return viewer.role == "hr" and note.visibility != "private"


class KnowledgeBase:
    """Writes and reads notes; every write is all-or-nothing across the stores."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        store: VectorStore,
        embedder: Embedder,
        catalog: ChunkCatalog,
        originals_dir: Path,
        audit_log: AuditLog | None = None,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.embedder = embedder
        self.catalog = catalog
        self.originals_dir = originals_dir
        self.audit_log = audit_log
        # Who saves go in the name of; None is the system itself (imports at the CLI, pseudonymisation).
        self.uploader: Viewer | None = None

    def uploads_by(self, viewer: Viewer) -> KnowledgeBase:
        """This knowledge base saving notes as uploaded by the viewer, who may replace only what ``may_replace`` allows."""
        bound = copy.copy(self)
        bound.uploader = viewer
        return bound

    def close(self) -> None:
        """Release the database connections."""
        self.sessions.kw["bind"].dispose()

    def scope(self, viewer: Viewer) -> AccessScope:
        """The viewer's access scope, resolved from the records."""
        with self.sessions() as session:
            return resolve_scope(session, viewer)

    def save_note(self, draft: NoteDraft) -> SaveResult:
        """Store a note; the same content again changes nothing, changed content replaces the old."""
        return self._save(note_id_for(draft), draft)

    def replace_note(self, note_id: str, draft: NoteDraft) -> SaveResult:
        """Rewrite a stored note under its own id (e.g. pseudonymised), through the same atomic path as a save.

        The id is kept even when it was derived from the old text, so everything citing the note still does.
        """
        with self.sessions() as session:
            if session.get(NoteRecord, note_id) is None:
                raise NoteNotFound(f"no note {note_id!r}")
        return self._save(note_id, draft)

    def _save(self, note_id: str, draft: NoteDraft) -> SaveResult:
        fingerprint = note_fingerprint(draft)
        with self.sessions() as session:
            existing = session.get(NoteRecord, note_id)
            if existing is not None:
                self._check_replace(existing, draft)
                if existing.fingerprint == fingerprint:
                    return SaveResult(note_id=note_id, status="unchanged", chunk_count=len(existing.chunks))

        chunk_ids = [chunk_id_for(fingerprint, i, c.start, c.text) for i, c in enumerate(draft.chunks)]
        texts = [index_text(c.text, c.section) for c in draft.chunks]
        vectors = self.embedder.embed_documents(texts)
        staged = self._stage_original(note_id, fingerprint, draft)
        try:
            written = self._commit(note_id, fingerprint, draft, chunk_ids, vectors)
        except SQLAlchemyError as exc:
            self._discard(staged)
            raise StoreUnavailable(f"could not store note {note_id}: {exc}") from exc
        except BaseException:
            self._discard(staged)
            raise
        if written is None:  # another writer stored the same version meanwhile
            self._discard(staged)
            return SaveResult(note_id=note_id, status="unchanged", chunk_count=len(chunk_ids))
        self._finish_original(note_id, staged, draft.source_type)
        stale = [i for i in written.old_ids if i not in set(chunk_ids)]
        self._forget_vectors(stale)
        self.catalog.apply(
            written.revision,
            {i: (written.meta, analyse(t, draft.language)) for i, t in zip(chunk_ids, texts, strict=True)},
            stale,
        )
        status = "replaced" if written.replaced else "created"
        return SaveResult(note_id=note_id, status=status, chunk_count=len(chunk_ids))

    def _commit(
        self, note_id: str, fingerprint: str, draft: NoteDraft, chunk_ids: Sequence[str], vectors: Vectors
    ) -> _Written | None:
        """Write the records and vectors in one transaction; None when this version was already stored.

        Two writers of a new note both find no row to lock: the second one's insert fails, and it looks again,
        under the lock, at what the first one committed.
        """
        for attempt in (1, 2):
            with self.sessions() as session:
                try:
                    written = self._write_records(session, note_id, fingerprint, draft, chunk_ids)
                except IntegrityError:
                    if attempt == 2:
                        raise
                    session.rollback()
                    continue
                if written is None:
                    return None
                try:
                    self.store.upsert(chunk_ids, vectors, [written.meta.as_metadata()] * len(chunk_ids))
                    session.commit()
                except BaseException:
                    session.rollback()
                    self._forget_vectors(chunk_ids)
                    raise
                return written
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _write_records(
        self, session: Session, note_id: str, fingerprint: str, draft: NoteDraft, chunk_ids: Sequence[str]
    ) -> _Written | None:
        # Locked, so that the right to replace, and whether this version is new, are checked against the stored one.
        note = session.get(NoteRecord, note_id, with_for_update=True, populate_existing=True)
        old_ids: list[str] = []
        replaced = note is not None
        if note is None:
            uploaded_by = uploader_label(self.uploader) if self.uploader is not None else None
            note = NoteRecord(id=note_id, uploaded_by=uploaded_by)
            session.add(note)
        else:
            self._check_replace(note, draft)
            if note.fingerprint == fingerprint:
                return None
            old_ids = [c.id for c in note.chunks]
            note.chunks.clear()
            note.participations.clear()
            session.flush()
        note.external_id = draft.external_id
        note.title = draft.title
        note.kind = draft.kind
        note.community = draft.community
        note.session_date = draft.session_date
        note.visibility = draft.visibility
        note.language = draft.language
        note.source_type = draft.source_type
        note.original_name = draft.original_name
        note.original_path = f"{note_id}.{draft.source_type}" if draft.original is not None else None
        note.fingerprint = fingerprint
        note.text = draft.text
        for position, participant in enumerate(draft.participants):
            person = self._person(session, participant.name)
            note.participations.append(
                ParticipationRecord(person_id=person.id, role=participant.role, position=position)
            )
        for ordinal, (chunk_id, chunk) in enumerate(zip(chunk_ids, draft.chunks, strict=True)):
            note.chunks.append(
                ChunkRecord(
                    id=chunk_id,
                    ordinal=ordinal,
                    start=chunk.start,
                    end=chunk.end,
                    text=chunk.text,
                    kind=chunk.kind,
                    speaker=chunk.speaker,
                    section=chunk.section,
                )
            )
        session.flush()
        revision = bump_revision(session)
        return _Written(old_ids, chunk_meta(note), revision, replaced)

    def _check_replace(self, note: NoteRecord, draft: NoteDraft) -> None:
        """Refuse to overwrite a stored note on behalf of an uploader who may not replace it."""
        if self.uploader is None or may_replace(self.uploader, note):
            return
        if draft.external_id:
            raise ExternalIdTaken(
                f"the external id {draft.external_id!r} is taken by a note someone else uploaded; choose another id"
            )
        raise ExternalIdTaken("a note with the same text was uploaded by someone else; give yours an external id")

    @staticmethod
    def _person(session: Session, name: str) -> PersonRecord:
        person = session.scalar(select(PersonRecord).where(PersonRecord.name == name))
        if person is not None:
            return person
        try:
            with session.begin_nested():
                person = PersonRecord(name=name)
                session.add(person)
            return person
        except IntegrityError:  # another writer created the same person meanwhile
            return session.scalars(select(PersonRecord).where(PersonRecord.name == name)).one()

    def _stage_original(self, note_id: str, fingerprint: str, draft: NoteDraft) -> Path | None:
        if draft.original is None:
            return None
        self.originals_dir.mkdir(parents=True, exist_ok=True)
        staged = self.originals_dir / staged_original_name(note_id, fingerprint)
        staged.write_bytes(draft.original)
        return staged

    def _finish_original(self, note_id: str, staged: Path | None, source_type: str) -> None:
        kept = self.originals_dir / f"{note_id}.{source_type}"
        for old in self.originals_dir.glob(f"{note_id}.*"):
            if old != kept or staged is None:
                old.unlink(missing_ok=True)
        if staged is not None:
            staged.replace(kept)

    @staticmethod
    def _discard(staged: Path | None) -> None:
        if staged is not None:
            staged.unlink(missing_ok=True)

    def _forget_vectors(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            self.store.delete(list(ids))
        except Exception:  # left for the reconciler; search re-checks every hit against SQL
            logger.exception("could not delete %d vectors; they are orphans until the next repair", len(ids))

    def delete_note(self, note_id: str, viewer: Viewer) -> None:
        """Delete a note everywhere: records, vectors, lexical index and original file."""
        with self.sessions() as session:
            note = self._visible_note(session, note_id, viewer)
            chunk_ids = [c.id for c in note.chunks]
            session.delete(note)
            session.flush()
            revision = bump_revision(session)
            session.commit()
        self._forget_vectors(chunk_ids)
        for original in self.originals_dir.glob(f"{note_id}.*"):
            original.unlink(missing_ok=True)
        self.catalog.apply(revision, {}, chunk_ids)

    def _visible_note(self, session: Session, note_id: str, viewer: Viewer) -> NoteRecord:
        note = session.get(NoteRecord, note_id)
        if note is None:
            note = session.scalar(select(NoteRecord).where(NoteRecord.external_id == note_id))
        if note is None or not resolve_scope(session, viewer).allows(note.visibility, note.community, note.id):
            raise NoteNotFound(f"no note {note_id!r}")
        return note

    def _audit_private_read(self, note: NoteRecord, viewer: Viewer, action: str) -> None:
        """Record who read a private note they did not take part in (an admin, e.g. at the CLI)."""
        if self.audit_log is None or note.visibility != "private":
            return
        if viewer.person_name is not None and viewer.person_name in {p.person.name for p in note.participations}:
            return
        self.audit_log.append(viewer.label, action, "note", note.id, {"visibility": note.visibility})

    def get_note(self, note_id: str, viewer: Viewer, *, audited: bool = True) -> NoteDetail:
        """A note (by id or external id) with its text and chunks, if the viewer may see it.

        A private note read by someone who did not take part is audited; the system's own reads
        (extraction, re-anchoring evidence) pass ``audited=False``.
        """
        with self.sessions() as session:
            note = self._visible_note(session, note_id, viewer)
            if audited:
                self._audit_private_read(note, viewer, NOTE_READ)
            return NoteDetail(
                summary=_summary(note, len(note.chunks)),
                text=note.text,
                original_name=note.original_name,
                chunks=tuple(
                    ChunkView(
                        id=c.id,
                        ordinal=c.ordinal,
                        start=c.start,
                        end=c.end,
                        kind=c.kind,
                        speaker=c.speaker,
                        section=c.section,
                        text=c.text,
                    )
                    for c in note.chunks
                ),
            )

    def list_notes(
        self,
        viewer: Viewer,
        kind: str | None = None,
        community: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[NoteSummary]:
        """Notes the viewer may see, newest session first."""
        with self.sessions() as session:
            scope = resolve_scope(session, viewer)
            query = (
                select(NoteRecord)
                .options(defer(NoteRecord.text), selectinload(NoteRecord.participations))
                .order_by(NoteRecord.session_date.desc(), NoteRecord.id)
            )
            if kind:
                query = query.where(NoteRecord.kind == kind)
            if community:
                query = query.where(NoteRecord.community == community)
            counts = {
                note_id: count
                for note_id, count in session.execute(
                    select(ChunkRecord.note_id, func.count()).group_by(ChunkRecord.note_id)
                )
            }
            visible = [
                note for note in session.scalars(query) if scope.allows(note.visibility, note.community, note.id)
            ]
            return [_summary(note, counts.get(note.id, 0)) for note in visible[offset : offset + limit]]

    def original_path(self, note_id: str, viewer: Viewer) -> Path | None:
        """Where the note's original upload is kept, if the viewer may see the note."""
        with self.sessions() as session:
            note = self._visible_note(session, note_id, viewer)
            if note.original_path is None:
                return None
            self._audit_private_read(note, viewer, NOTE_ORIGINAL)
            return self.originals_dir / note.original_path

    def reload_catalog(self) -> None:
        """Rebuild this process's lexical index from SQL, and make every other process rebuild theirs.

        Removing a chunk from the index only marks it dead; after an erasure nothing of the old
        terms may stay in memory, so the index is built afresh.
        """
        with self.sessions.begin() as session:
            bump_revision(session)
        self.catalog.refresh()

    def compact_records(self) -> None:
        """Rewrite the records database so deleted rows leave no bytes behind (after an erasure).

        SQLite: ``VACUUM`` rewrites the file without free pages, then the WAL is checkpointed and
        truncated. PostgreSQL: ``VACUUM FULL`` rewrites the tables; its WAL and backups are the
        operator's to expire.
        """
        engine = self.sessions.kw["bind"]
        engine.dispose()  # idle pooled connections would keep old snapshots of the WAL alive
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if engine.dialect.name == "sqlite":
                connection.execute(text("VACUUM"))
                connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            else:
                connection.execute(text("VACUUM FULL"))


def _summary(note: NoteRecord, chunk_count: int) -> NoteSummary:
    return NoteSummary(
        id=note.id,
        external_id=note.external_id,
        title=note.title,
        kind=note.kind,
        community=note.community,
        session_date=note.session_date,
        visibility=note.visibility,
        language=note.language,
        source_type=note.source_type,
        participants=tuple(Participant(p.person.name, p.role) for p in note.participations),
        chunk_count=chunk_count,
    )
