"""The reconciler: finds where SQL, the vectors, the originals on disk, the lexical index and the jobs disagree.

SQL is the source of truth. A write killed at any point leaves at most: vectors upserted for rows never
committed (orphans), an original staged but never moved into place (a leftover, or, when its version did
commit, an unplaced original), a note stored without its extraction job, a job left running. ``check``
compares id sets (no vector is fetched, nothing is re-embedded) so it is cheap enough to run on every start;
``repair`` fixes each kind deterministically and is safe to run again.

With an embedded Chroma the caller holds the data directory's lock (``exclusive``): nothing else writes,
so every disagreement is real. With a Chroma server other processes may be half-way through a write: staged
files and running jobs count only once older than ``grace_seconds``, notes without a job too, and orphan
vectors are looked up again after ``settle_seconds`` before they are deleted.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from retrieval.catalog import chunk_meta, index_text
from retrieval.knowledge import KnowledgeBase, staged_original_owner
from retrieval.records import ChunkRecord, JobRecord, NoteRecord

logger = logging.getLogger(__name__)

EMBED_BATCH = 128
SQL_BATCH = 500


@dataclass(frozen=True)
class ReconcileReport:
    """What the stores hold and every disagreement found, by kind (ids, or file names for files)."""

    notes: int
    chunks: int
    vectors: int
    orphan_vectors: tuple[str, ...] = ()
    missing_vectors: tuple[str, ...] = ()
    unplaced_originals: tuple[str, ...] = ()
    staged_leftovers: tuple[str, ...] = ()
    orphan_originals: tuple[str, ...] = ()
    missing_originals: tuple[str, ...] = ()
    lexical_orphans: tuple[str, ...] = ()
    lexical_missing: tuple[str, ...] = ()
    notes_without_job: tuple[str, ...] = ()
    stuck_jobs: tuple[str, ...] = ()
    seconds: float = 0.0

    @staticmethod
    def kinds() -> tuple[str, ...]:
        """The names of the kinds of disagreement."""
        counts = {"notes", "chunks", "vectors", "seconds"}
        return tuple(f.name for f in fields(ReconcileReport) if f.name not in counts)

    def disagreements(self) -> dict[str, int]:
        """How many of each kind were found."""
        return {kind: len(getattr(self, kind)) for kind in self.kinds()}

    @property
    def consistent(self) -> bool:
        """Whether the stores agree."""
        return not any(self.disagreements().values())

    def as_json(self) -> dict[str, Any]:
        """The report in the shape of ``doctor --json``."""
        data = asdict(self)
        return {
            "consistent": self.consistent,
            "counts": {key: data[key] for key in ("notes", "chunks", "vectors")},
            "disagreements": self.disagreements(),
            "ids": {kind: list(data[kind]) for kind in self.kinds() if data[kind]},
            "seconds": round(self.seconds, 3),
        }


class Reconciler:
    """Checks and repairs the agreement of the knowledge base's stores."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        enqueue: Callable[[str], object] | None = None,
        *,
        exclusive: bool,
        grace_seconds: float = 3600.0,
        settle_seconds: float = 2.0,
    ) -> None:
        self.knowledge = knowledge
        self.enqueue = enqueue
        self.exclusive = exclusive
        self.grace_seconds = grace_seconds
        self.settle_seconds = settle_seconds

    def check(self, lexical: bool = True) -> ReconcileReport:
        """Compare the stores; ``lexical`` also compares this process's lexical index (loading it if needed)."""
        started = time.monotonic()
        knowledge = self.knowledge
        # Vectors first: a write upserts them before it commits, so one committed meanwhile is not "missing".
        vector_ids = knowledge.store.all_ids()
        now = dt.datetime.now(dt.UTC)
        with knowledge.sessions() as session:
            chunk_ids = set(session.scalars(select(ChunkRecord.id)))
            notes = {
                note_id: (fingerprint, original_path, _utc(updated_at))
                for note_id, fingerprint, original_path, updated_at in session.execute(
                    select(NoteRecord.id, NoteRecord.fingerprint, NoteRecord.original_path, NoteRecord.updated_at)
                )
            }
            with_job = set(session.scalars(select(JobRecord.note_id).distinct()))
            running = [
                job_id
                for job_id, updated_at in session.execute(
                    select(JobRecord.id, JobRecord.updated_at).where(JobRecord.status == "running")
                )
                if self._settled(_utc(updated_at), now)
            ]
        unplaced, leftovers, orphans, missing = self._check_originals(notes, now)
        lexical_orphans: list[str] = []
        lexical_missing: list[str] = []
        if lexical:
            catalog = knowledge.catalog
            catalog.refresh()
            indexed = catalog.lexical.ids() & set(catalog.meta)
            lexical_orphans = sorted((catalog.lexical.ids() | set(catalog.meta)) - chunk_ids)
            lexical_missing = sorted(chunk_ids - indexed)
        return ReconcileReport(
            notes=len(notes),
            chunks=len(chunk_ids),
            vectors=len(vector_ids),
            orphan_vectors=tuple(sorted(vector_ids - chunk_ids)),
            missing_vectors=tuple(sorted(chunk_ids - vector_ids)),
            unplaced_originals=tuple(unplaced),
            staged_leftovers=tuple(leftovers),
            orphan_originals=tuple(orphans),
            missing_originals=tuple(missing),
            lexical_orphans=tuple(lexical_orphans),
            lexical_missing=tuple(lexical_missing),
            notes_without_job=tuple(
                sorted(i for i, (_, _, updated) in notes.items() if i not in with_job and self._settled(updated, now))
            ),
            stuck_jobs=tuple(sorted(running)),
            seconds=time.monotonic() - started,
        )

    def _settled(self, moment: dt.datetime | None, now: dt.datetime) -> bool:
        """Whether something this old can no longer be another process's write in progress."""
        if self.exclusive or moment is None:
            return True
        return (now - moment).total_seconds() >= self.grace_seconds

    def _check_originals(
        self, notes: dict[str, tuple[str, str | None, dt.datetime | None]], now: dt.datetime
    ) -> tuple[list[str], list[str], list[str], list[str]]:
        directory = self.knowledge.originals_dir
        files = sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []
        expected = {path for _, path, _ in notes.values() if path is not None}
        staged: dict[str, list[Path]] = {}
        leftovers: list[str] = []
        orphans: list[str] = []
        for path in files:
            owner = staged_original_owner(path.name)
            if owner is None:
                if path.name.startswith("."):  # staged under another naming, or a stray temporary file
                    leftovers.append(path.name)
                elif path.name not in expected:
                    orphans.append(path.name)
                continue
            if not self._settled(dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC), now):
                continue
            note = notes.get(owner[0])
            if note is not None and note[1] is not None and note[0].startswith(owner[1]):
                staged.setdefault(owner[0], []).append(path)
            else:
                leftovers.append(path.name)
        unplaced: list[str] = []
        for candidates in staged.values():
            # The newest staged copy of the committed version goes in place; older copies are leftovers.
            candidates.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
            unplaced.append(candidates[-1].name)
            leftovers.extend(p.name for p in candidates[:-1])
        present = {path.name for path in files}
        missing = [
            note_id
            for note_id, (_, path, _) in notes.items()
            if path is not None and path not in present and note_id not in staged
        ]
        return sorted(unplaced), sorted(leftovers), orphans, sorted(missing)

    def repair(self, report: ReconcileReport | None = None) -> ReconcileReport:
        """Fix every disagreement of the report (a fresh check when none is given); returns what was found."""
        found = report if report is not None else self.check()
        if found.consistent:
            return found
        knowledge = self.knowledge
        if found.stuck_jobs:
            with knowledge.sessions.begin() as session:
                for batch in _batches(found.stuck_jobs, SQL_BATCH):
                    session.execute(
                        update(JobRecord)
                        .where(JobRecord.id.in_(batch), JobRecord.status == "running")
                        .values(status="pending")
                    )
        self._place_originals(found.unplaced_originals)
        for name in (*found.staged_leftovers, *found.orphan_originals):
            (knowledge.originals_dir / name).unlink(missing_ok=True)
        if found.missing_originals:
            with knowledge.sessions.begin() as session:
                for note in _notes(session, found.missing_originals):
                    if note.original_path and not (knowledge.originals_dir / note.original_path).exists():
                        logger.warning("the original of note %s is lost; its record no longer points to it", note.id)
                        note.original_path = None
        self._delete_orphan_vectors(found.orphan_vectors)
        self._reembed(found.missing_vectors)
        if found.notes_without_job and self.enqueue is not None:
            with knowledge.sessions() as session:
                existing = {note.id for note in _notes(session, found.notes_without_job)}
                queued = set(
                    session.scalars(select(JobRecord.note_id).where(JobRecord.note_id.in_(found.notes_without_job)))
                )
            for note_id in found.notes_without_job:
                if note_id in existing and note_id not in queued:
                    self.enqueue(note_id)
        if found.lexical_orphans or found.lexical_missing:
            knowledge.reload_catalog()
        return found

    def _place_originals(self, names: Sequence[str]) -> None:
        directory = self.knowledge.originals_dir
        with self.knowledge.sessions() as session:
            for name in names:
                owner = staged_original_owner(name)
                if owner is None:
                    continue
                note = session.get(NoteRecord, owner[0])
                if note is None or note.original_path is None or not note.fingerprint.startswith(owner[1]):
                    continue
                (directory / name).replace(directory / note.original_path)
                for other in directory.glob(f"{note.id}.*"):
                    if other.name != note.original_path:
                        other.unlink(missing_ok=True)

    def _delete_orphan_vectors(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        if not self.exclusive:
            time.sleep(self.settle_seconds)  # a write in progress commits (or rolls back) within this
        with self.knowledge.sessions() as session:
            kept = {
                chunk_id
                for batch in _batches(ids, SQL_BATCH)
                for chunk_id in session.scalars(select(ChunkRecord.id).where(ChunkRecord.id.in_(batch)))
            }
        self.knowledge.store.delete([i for i in ids if i not in kept])

    def _reembed(self, ids: Sequence[str]) -> None:
        """Embed the chunks again from their SQL text and upsert them under their own ids and metadata."""
        knowledge = self.knowledge
        for batch in _batches(ids, EMBED_BATCH):
            with knowledge.sessions() as session:
                rows = session.execute(
                    select(ChunkRecord, NoteRecord).join(NoteRecord).where(ChunkRecord.id.in_(batch))
                ).all()
                texts = [index_text(chunk.text, chunk.section) for chunk, _ in rows]
                metadatas = [chunk_meta(note).as_metadata() for _, note in rows]
                chunk_ids = [chunk.id for chunk, _ in rows]
            if chunk_ids:
                knowledge.store.upsert(chunk_ids, knowledge.embedder.embed_documents(texts), metadatas)


def _notes(session: Session, ids: Collection[str]) -> list[NoteRecord]:
    return [
        note
        for batch in _batches(list(ids), SQL_BATCH)
        for note in session.scalars(select(NoteRecord).where(NoteRecord.id.in_(batch)))
    ]


def _batches(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _utc(moment: dt.datetime | None) -> dt.datetime | None:
    """A stored time as an aware UTC datetime (SQLite gives them back naive, in UTC)."""
    if moment is None:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
