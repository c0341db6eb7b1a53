"""Extraction jobs: queued in SQL when a note is stored, run in the background, resumed after a restart.

A job is claimed with a conditional update (only one worker wins it), and its drafts are stored in one
transaction, so a job killed half-way leaves nothing half-done: on start, jobs left ``running`` go back
to ``pending`` and run again, and re-running stores the same drafts under the same ids.

A job is listed to those who may read its note, and to the account that uploaded a shared (public or
community) note; the jobs of a private note are its participants' only, like the note.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import sessionmaker

from capture.extraction.drafts import NoteSource, PracticeExtractor, verify_draft
from capture.review import PracticeBook
from retrieval.access import Viewer, resolve_scope
from retrieval.errors import NoteNotFound
from retrieval.expert_finder import visible_notes
from retrieval.knowledge import KnowledgeBase, uploader_label
from retrieval.records import JobRecord, NoteRecord

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
EXTRACTION_FAILURES = Counter(
    "compagnon_extraction_failures_total",
    "Extraction attempts that failed in this process: retried (attempts left) or failed (the job gave up).",
    ["outcome"],
)


@dataclass(frozen=True)
class JobView:
    """A job's state, as shown to those who may read its note."""

    id: str
    note_id: str
    status: str
    attempts: int
    drafts: int
    detail: str | None

    def as_json(self) -> dict[str, object]:
        """The job as JSON."""
        return {
            "id": self.id,
            "note_id": self.note_id,
            "status": self.status,
            "attempts": self.attempts,
            "drafts": self.drafts,
            "detail": self.detail,
        }


def note_source(knowledge: KnowledgeBase, note_id: str) -> NoteSource:
    """The note as an extractor reads it."""
    detail = knowledge.get_note(note_id, Viewer.administrator(), audited=False)
    summary = detail.summary
    return NoteSource(
        note_id=summary.id,
        external_id=summary.external_id,
        title=summary.title,
        kind=summary.kind,
        community=summary.community,
        language=summary.language,
        text=detail.text,
        chunks=detail.chunks,
        participants=summary.participants,
    )


class ExtractionJobs:
    """Queues, runs and reports extraction jobs."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        knowledge: KnowledgeBase,
        book: PracticeBook,
        extractor: PracticeExtractor,
        on_queued: Callable[[str], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.knowledge = knowledge
        self.book = book
        self.extractor = extractor
        # Called with each new job's id once it is stored (a broker's dispatch to the workers).
        self.on_queued = on_queued
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def enqueue(self, note_id: str) -> str:
        """Queue the extraction of a note; returns the job id."""
        job_id = "j" + uuid.uuid4().hex[:23]
        with self.sessions.begin() as session:
            session.add(JobRecord(id=job_id, note_id=note_id, kind="extract", status="pending", attempts=0, drafts=0))
        self._wake.set()
        if self.on_queued is not None:
            self.on_queued(job_id)
        return job_id

    def recover(self) -> int:
        """Put back jobs a crash left running; returns how many."""
        with self.sessions.begin() as session:
            result = session.execute(update(JobRecord).where(JobRecord.status == "running").values(status="pending"))
            return int(result.rowcount or 0)

    def _claim(self) -> str | None:
        with self.sessions.begin() as session:
            candidates = session.scalars(
                select(JobRecord.id)
                .where(JobRecord.status == "pending")
                .order_by(JobRecord.created_at, JobRecord.id)
                .limit(5)
            ).all()
            for job_id in candidates:
                claimed = session.execute(
                    update(JobRecord)
                    .where(JobRecord.id == job_id, JobRecord.status == "pending")
                    .values(status="running", attempts=JobRecord.attempts + 1)
                )
                if claimed.rowcount == 1:
                    return str(job_id)
        return None

    def run_one(self) -> bool:
        """Run the oldest pending job, if any; returns whether one ran."""
        job_id = self._claim()
        if job_id is None:
            return False
        self._run(job_id)
        return True

    def run_job(self, job_id: str) -> bool:
        """Run one job by id if it is still pending (the job of a queued message); returns whether it ran."""
        with self.sessions.begin() as session:
            claimed = session.execute(
                update(JobRecord)
                .where(JobRecord.id == job_id, JobRecord.status == "pending")
                .values(status="running", attempts=JobRecord.attempts + 1)
            )
        if claimed.rowcount != 1:
            return False
        self._run(job_id)
        return True

    def _run(self, job_id: str) -> None:
        with self.sessions() as session:
            job = session.get(JobRecord, job_id)
            assert job is not None
            note_id, attempts = job.note_id, job.attempts
        status, drafts, detail = "done", 0, None
        try:
            note = note_source(self.knowledge, note_id)
            result = self.extractor.extract(note)
            verified = [d for d in (verify_draft(draft, note) for draft in result.drafts) if d is not None]
            dropped = len(result.drafts) - len(verified)
            drafts = len(self.book.store_drafts(note, verified, actor=self.extractor.name))
            failures = list(result.failures) + ([f"dropped_unverified_drafts:{dropped}"] if dropped else [])
            detail = "; ".join(failures) or None
            if result.failures and not verified:
                status = "failed"
        except NoteNotFound:
            status, detail = "cancelled", "the note was deleted"
        except Exception as exc:  # a job never takes the worker down; the failure is recorded
            logger.exception("extraction job %s failed", job_id)
            status = "pending" if attempts < MAX_ATTEMPTS else "failed"
            detail = f"{type(exc).__name__}: {exc}"
        if status in ("pending", "failed"):
            EXTRACTION_FAILURES.labels("retried" if status == "pending" else "failed").inc()
        with self.sessions.begin() as session:
            session.execute(
                update(JobRecord).where(JobRecord.id == job_id).values(status=status, drafts=drafts, detail=detail)
            )

    def drain(self) -> int:
        """Run pending jobs until none is left; returns how many ran."""
        count = 0
        while self.run_one():
            count += 1
        return count

    def list_jobs(self, viewer: Viewer, note_id: str | None = None, limit: int = 100) -> list[JobView]:
        """The jobs the viewer may see, newest first."""
        with self.sessions() as session:
            visible = visible_notes(resolve_scope(session, viewer))
            uploader = uploader_label(viewer)
            if viewer.may_upload and uploader is not None:
                uploaded = and_(NoteRecord.uploaded_by == uploader, NoteRecord.visibility.in_(("public", "community")))
                visible = or_(visible, uploaded)
            query = (
                select(JobRecord)
                .join(NoteRecord, NoteRecord.id == JobRecord.note_id)
                .where(visible)
                .order_by(JobRecord.created_at.desc(), JobRecord.id)
                .limit(limit)
            )
            if note_id:
                query = query.where(JobRecord.note_id == note_id)
            return [JobView(j.id, j.note_id, j.status, j.attempts, j.drafts, j.detail) for j in session.scalars(query)]

    def start(self) -> None:
        """Run jobs in a background thread until ``stop``."""
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="extraction-jobs", daemon=True)
        self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop the background thread after its current job."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=5)
            self._wake.clear()
            try:
                while not self._stop.is_set() and self.run_one():
                    pass
            except Exception:  # a store that fails now must not end the worker: the job is retried next round
                logger.exception("the extraction worker could not run a job; retrying in 5 s")
