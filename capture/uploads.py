"""Uploads handed to the workers: the original and its metadata are stored in SQL before any message is sent.

A message carries only an upload's id. An upload is claimed with a conditional update that takes a lease, so a
message delivered twice runs it once, and one whose worker died runs again once the lease is over; a note's id
comes from its content (or external id), so running an upload again never stores anything twice. Once an upload
is done or failed, its original and metadata are cleared: the note (or the error) is what remains.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, LargeBinary, String, Text, and_, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from capture.errors import CaptureError, CorruptDocument, DocumentTooLarge
from capture.ingestion import Ingestor, NoteMetadata, metadata_from_mapping
from capture.jobs import ExtractionJobs
from capture.settings import CaptureSettings
from retrieval.access import Viewer
from retrieval.errors import RetrievalError
from retrieval.notes import SaveResult
from retrieval.records import Base, JobRecord

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
# Failures of the service rather than of the document: the upload is tried again, with backoff.
TRANSIENT_CODES = frozenset({"store_unavailable", "embedder_unavailable", "parser_unavailable", "internal_error"})
UPLOAD_STATUSES = ("pending", "running", "done", "failed")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UploadRecord(Base):
    """An upload waiting for (or done by) a worker: its original and metadata until it is ingested."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    submitted_by: Mapped[str] = mapped_column(String(200), index=True)
    # The submitter as a viewer (label, role, person, sees_everything): the note is stored in their name.
    submitter: Mapped[dict[str, Any]] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(10))
    filename: Mapped[str | None] = mapped_column(String(300))
    note_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    note_id: Mapped[str | None] = mapped_column(ForeignKey("notes.id", ondelete="SET NULL"), index=True)
    result: Mapped[str | None] = mapped_column(String(20))
    chunks: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(50))
    detail: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=_now)


class UploadNotFound(CaptureError):
    """No upload with that id, or not one the asker submitted."""

    code = "upload_not_found"


@dataclass(frozen=True)
class UploadView:
    """An upload's state, as shown to the one who submitted it."""

    id: str
    status: str
    attempts: int
    note_id: str | None
    result: str | None
    chunks: int | None
    error_code: str | None
    detail: str | None

    def as_json(self) -> dict[str, object]:
        """The upload as JSON."""
        return {
            "id": self.id,
            "status": self.status,
            "attempts": self.attempts,
            "note_id": self.note_id,
            "result": self.result,
            "chunks": self.chunks,
            "error_code": self.error_code,
            "detail": self.detail,
        }


def _view(record: UploadRecord) -> UploadView:
    return UploadView(
        record.id,
        record.status,
        record.attempts,
        record.note_id,
        record.result,
        record.chunks,
        record.error_code,
        record.detail,
    )


def metadata_mapping(metadata: NoteMetadata) -> dict[str, Any]:
    """Validated metadata in the shape ``metadata_from_mapping`` reads back."""
    return {
        "kind": metadata.kind,
        "community": metadata.community,
        "date": metadata.session_date.isoformat(),
        "title": metadata.title,
        "participants": [{"name": p.name, "role": p.role} for p in metadata.participants],
        "visibility": metadata.visibility,
        "language": metadata.language,
        "id": metadata.external_id,
    }


class Uploads:
    """Records uploads for the workers, runs them once each, and reports them to their submitter."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        settings: CaptureSettings,
        ingestor_for: Callable[[Viewer], Ingestor],
        jobs: ExtractionJobs,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.ingestor_for = ingestor_for
        self.jobs = jobs
        self.lease = dt.timedelta(seconds=settings.job_lease_seconds)

    def record_bytes(self, data: bytes, metadata: NoteMetadata, filename: str | None, submitter: Viewer) -> str:
        """Check an uploaded file's size and metadata, and store it for a worker; returns the upload id."""
        limit = self.settings.max_upload_bytes
        if len(data) > limit:
            raise DocumentTooLarge(f"the file has {len(data)} bytes, over the limit of {limit}")
        return self._record("file", data, metadata.validated(), filename, submitter)

    def record_text(self, text: str, metadata: NoteMetadata, submitter: Viewer) -> str:
        """Check pasted text and its metadata, and store it for a worker; returns the upload id."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise CorruptDocument(f"the text is not valid Unicode: {exc.reason}") from exc
        limit = self.settings.max_upload_bytes
        if len(data) > limit:
            raise DocumentTooLarge(f"the text has {len(data)} bytes, over the limit of {limit}")
        return self._record("text", data, metadata.validated(), None, submitter)

    def _record(self, source: str, data: bytes, metadata: NoteMetadata, filename: str | None, submitter: Viewer) -> str:
        upload_id = "u" + uuid.uuid4().hex[:23]
        with self.sessions.begin() as session:
            session.add(
                UploadRecord(
                    id=upload_id,
                    status="pending",
                    attempts=0,
                    submitted_by=submitter.label,
                    submitter={
                        "label": submitter.label,
                        "role": submitter.role,
                        "person_name": submitter.person_name,
                        "sees_everything": submitter.sees_everything,
                    },
                    source=source,
                    filename=filename[:300] if filename else None,
                    note_metadata=metadata_mapping(metadata),
                    payload=data,
                )
            )
        return upload_id

    def withdraw(self, upload_id: str) -> None:
        """Remove an upload no worker has started (its message could not be sent)."""
        with self.sessions.begin() as session:
            session.execute(delete(UploadRecord).where(UploadRecord.id == upload_id, UploadRecord.status == "pending"))

    def view(self, upload_id: str, viewer: Viewer) -> UploadView:
        """An upload's state, for the one who submitted it (or a viewer who sees everything)."""
        with self.sessions() as session:
            record = session.get(UploadRecord, upload_id)
            if record is None or not (viewer.sees_everything or record.submitted_by == viewer.label):
                raise UploadNotFound(f"no upload {upload_id!r} of yours")
            return _view(record)

    def status(self, upload_id: str) -> str | None:
        """An upload's status (None when there is no such upload)."""
        with self.sessions() as session:
            status: str | None = session.scalar(select(UploadRecord.status).where(UploadRecord.id == upload_id))
            return status

    def _claim(self, upload_id: str) -> bool:
        now = _now()
        with self.sessions.begin() as session:
            lost = session.execute(
                update(UploadRecord)
                .where(
                    UploadRecord.id == upload_id,
                    UploadRecord.status == "running",
                    UploadRecord.lease_until < now,
                    UploadRecord.attempts >= MAX_ATTEMPTS,
                )
                .values(
                    status="failed",
                    error_code="worker_lost",
                    detail=f"the worker running it stopped {MAX_ATTEMPTS} times",
                    payload=None,
                    note_metadata=None,
                    lease_until=None,
                    updated_at=now,
                )
            )
            if lost.rowcount:
                return False
            claimed = session.execute(
                update(UploadRecord)
                .where(
                    UploadRecord.id == upload_id,
                    or_(
                        UploadRecord.status == "pending",
                        and_(UploadRecord.status == "running", UploadRecord.lease_until < now),
                    ),
                )
                .values(
                    status="running", attempts=UploadRecord.attempts + 1, lease_until=now + self.lease, updated_at=now
                )
            )
            return bool(claimed.rowcount == 1)

    def run(self, upload_id: str) -> str | None:
        """Ingest an upload if it is free to run; returns its status afterwards (None: no such upload).

        ``pending`` after a run means it failed for a reason worth retrying; ``running`` means another worker
        holds it.
        """
        if not self._claim(upload_id):
            return self.status(upload_id)
        with self.sessions() as session:
            record = session.get(UploadRecord, upload_id)
            assert record is not None
            source, filename, attempts = record.source, record.filename, record.attempts
            submitter = Viewer(
                label=str(record.submitter["label"]),
                role=str(record.submitter["role"]),
                person_name=record.submitter.get("person_name"),
                sees_everything=bool(record.submitter.get("sees_everything")),
            )
            mapping, payload = record.note_metadata or {}, record.payload or b""
        try:
            metadata = metadata_from_mapping(mapping)
            ingestor = self.ingestor_for(submitter)
            if source == "text":
                result = ingestor.ingest_text(payload.decode("utf-8"), metadata)
            else:
                result = ingestor.ingest_bytes(payload, metadata, filename)
            self._ensure_extraction(result)
        except (CaptureError, RetrievalError) as exc:
            code, detail = exc.code, exc.detail
        except Exception as exc:  # a bug or a dependency's failure: recorded, never the worker's end
            # Only the type: an exception's message may quote the note, and logs are not for its content.
            logger.error("upload %s failed with %s", upload_id, type(exc).__name__)
            code, detail = "internal_error", f"unexpected {type(exc).__name__}"
        else:
            self._finish(upload_id, "done", note_id=result.note_id, result=result.status, chunks=result.chunk_count)
            return "done"
        status = "pending" if code in TRANSIENT_CODES and attempts < MAX_ATTEMPTS else "failed"
        self._finish(upload_id, status, error_code=code, detail=detail)
        return status

    def _ensure_extraction(self, result: SaveResult) -> None:
        """Queue the note's extraction when a worker stopped between storing it and queueing its job."""
        if result.status != "unchanged":
            return
        with self.sessions() as session:
            queued = session.scalar(select(JobRecord.id).where(JobRecord.note_id == result.note_id).limit(1))
        if queued is None:
            self.jobs.enqueue(result.note_id)

    def _finish(self, upload_id: str, status: str, **values: Any) -> None:
        cleared = {"payload": None, "note_metadata": None} if status in ("done", "failed") else {}
        with self.sessions.begin() as session:
            session.execute(
                update(UploadRecord)
                .where(UploadRecord.id == upload_id, UploadRecord.status == "running")
                .values(status=status, lease_until=None, updated_at=_now(), **cleared, **values)
            )

    def stranded(self, older_than: dt.timedelta) -> list[str]:
        """Uploads whose message was lost or whose worker died: pending or running, untouched for ``older_than``.

        Each one returned has had its clock reset for the caller, so that of several sweepers one sends it.
        """
        cutoff = _now() - older_than
        waiting = (UploadRecord.status.in_(("pending", "running")), UploadRecord.updated_at < cutoff)
        with self.sessions() as session:
            candidates = session.scalars(select(UploadRecord.id).where(*waiting)).all()
        taken: list[str] = []
        for upload_id in candidates:
            with self.sessions.begin() as session:
                touched = session.execute(
                    update(UploadRecord).where(UploadRecord.id == upload_id, *waiting).values(updated_at=_now())
                )
            if touched.rowcount == 1:
                taken.append(str(upload_id))
        return taken
