"""The task queue: with ``COMPAGNON_BROKER_URL``, uploads and extraction jobs are run by workers (Dramatiq).

SQL holds the truth: an upload or a job is a row before its message is sent, and a message carries its id
only, never note text. A worker claims the row with a conditional update, so a message delivered twice (or
redelivered after its worker died) runs the work once; a failure worth retrying leaves the row ``pending`` and
the message comes back with exponential backoff; every row ends ``done`` or ``failed`` with a stable error code.
A message the broker lost is sent again by a worker's sweep once its row has waited longer than the lease.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any
from urllib.parse import urlsplit

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Retries, ShutdownNotifications, TimeLimit
from sqlalchemy import select, update

from capture.errors import CaptureError
from capture.ingestion import NoteMetadata
from capture.jobs import MAX_ATTEMPTS, ExtractionJobs
from capture.settings import CaptureSettings
from capture.uploads import Uploads, UploadView
from retrieval.access import Viewer
from retrieval.records import JobRecord

logger = logging.getLogger(__name__)
REDIS_SCHEMES = ("redis", "rediss")
AMQP_SCHEMES = ("amqp", "amqps")
# Backoff of a message whose work failed for a passing reason, or is held by another worker.
MIN_BACKOFF_MS = 2_000
MAX_RETRIES = 20


class BrokerUnavailable(CaptureError):
    """The task queue's broker cannot be reached (or is not configured): nothing was queued."""

    code = "broker_unavailable"


def build_broker(url: str) -> dramatiq.Broker:
    """A Dramatiq broker for a ``redis://`` or ``amqp://`` URL, with the middleware the workers rely on."""
    scheme = urlsplit(url).scheme
    middleware = [TimeLimit(), ShutdownNotifications(), Retries(min_backoff=MIN_BACKOFF_MS)]
    if scheme in REDIS_SCHEMES:
        return RedisBroker(url=url, middleware=middleware)  # type: ignore[no-untyped-call]
    if scheme in AMQP_SCHEMES:
        return RabbitmqBroker(url=url, middleware=middleware)
    raise BrokerUnavailable(
        f"COMPAGNON_BROKER_URL must start with redis://, rediss://, amqp:// or amqps://, not {scheme}://"
    )


def broker_reachable(url: str, timeout: float = 2.0) -> bool:
    """Whether the broker at ``url`` answers now (a Redis PING, or an AMQP connection opened and closed)."""
    scheme = urlsplit(url).scheme
    try:
        if scheme in REDIS_SCHEMES:
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
            try:
                return bool(client.ping())
            finally:
                client.close()
        if scheme in AMQP_SCHEMES:
            import pika  # type: ignore[import-untyped]

            parameters = pika.URLParameters(url)
            parameters.socket_timeout = timeout
            parameters.blocked_connection_timeout = timeout
            parameters.connection_attempts = 1
            connection = pika.BlockingConnection(parameters)
            connection.close()
            return True
    except Exception:  # any failure to connect, authenticate or answer means "not reachable"
        return False
    return False


class TaskQueue:
    """Sends uploads and extraction jobs to the workers, and runs them there."""

    def __init__(self, settings: CaptureSettings, uploads: Uploads, jobs: ExtractionJobs) -> None:
        if not settings.broker_url:
            raise BrokerUnavailable("COMPAGNON_BROKER_URL is not set: there is no task queue")
        self.uploads = uploads
        self.jobs = jobs
        self.lease = dt.timedelta(seconds=settings.job_lease_seconds)
        self.broker = build_broker(settings.broker_url)
        lease_ms = settings.job_lease_seconds * 1000
        # A run over its lease is stopped, since another worker may take the work over from then on.
        options: dict[str, Any] = {
            "max_retries": MAX_RETRIES,
            "min_backoff": MIN_BACKOFF_MS,
            "max_backoff": lease_ms,
            "time_limit": lease_ms,
        }
        prefix = settings.broker_queue
        self.ingest_actor: dramatiq.Actor[[str], None] = dramatiq.Actor(
            self.ingest,
            broker=self.broker,
            actor_name=f"{prefix}_ingest",
            queue_name=f"{prefix}-uploads",
            priority=0,
            options=options,
        )
        self.extract_actor: dramatiq.Actor[[str], None] = dramatiq.Actor(
            self.extract,
            broker=self.broker,
            actor_name=f"{prefix}_extract",
            queue_name=f"{prefix}-extraction",
            priority=10,
            options=options,
        )

    @property
    def queue_names(self) -> set[str]:
        """The queues a worker consumes."""
        return {self.ingest_actor.queue_name, self.extract_actor.queue_name}

    def submit_bytes(self, data: bytes, metadata: NoteMetadata, filename: str | None, submitter: Viewer) -> UploadView:
        """Store an uploaded file for the workers and send its message; returns the upload to poll."""
        return self._dispatch(self.uploads.record_bytes(data, metadata, filename, submitter), submitter)

    def submit_text(self, text: str, metadata: NoteMetadata, submitter: Viewer) -> UploadView:
        """Store pasted text for the workers and send its message; returns the upload to poll."""
        return self._dispatch(self.uploads.record_text(text, metadata, submitter), submitter)

    def _dispatch(self, upload_id: str, submitter: Viewer) -> UploadView:
        try:
            self.ingest_actor.send(upload_id)
        except Exception as exc:  # the broker's client raises its own errors; none may leave a stray row
            self.uploads.withdraw(upload_id)
            raise BrokerUnavailable(
                f"the task queue cannot be reached ({type(exc).__name__}); nothing was stored"
            ) from exc
        return self.uploads.view(upload_id, submitter)

    def send_extraction(self, job_id: str) -> None:
        """Send a stored extraction job to the workers (when the broker is down, the sweep sends it later)."""
        try:
            self.extract_actor.send(job_id)
        except Exception as exc:  # the job row is kept: a worker's sweep sends it once the broker is back
            logger.warning("extraction job %s is queued in SQL but not sent (%s)", job_id, type(exc).__name__)

    def ingest(self, upload_id: str) -> None:
        """A worker's run of an upload's message."""
        status = self.uploads.run(upload_id)
        if status == "pending":
            raise dramatiq.Retry(f"upload {upload_id} failed for a passing reason")
        if status == "running":
            raise dramatiq.Retry(f"upload {upload_id} is held by another worker")

    def extract(self, job_id: str) -> None:
        """A worker's run of an extraction job's message."""
        self._take_over_stale_job(job_id)
        self.jobs.run_job(job_id)
        with self.jobs.sessions() as session:
            status = session.scalar(select(JobRecord.status).where(JobRecord.id == job_id))
        if status == "pending":
            raise dramatiq.Retry(f"extraction job {job_id} failed for a passing reason")
        if status == "running":
            raise dramatiq.Retry(f"extraction job {job_id} is held by another worker")

    def _take_over_stale_job(self, job_id: str) -> bool:
        """Give back a job whose worker held it past the lease (it died): pending again (True), or failed at last."""
        cutoff = dt.datetime.now(dt.UTC) - self.lease
        stale = (JobRecord.id == job_id, JobRecord.status == "running", JobRecord.updated_at < cutoff)
        with self.jobs.sessions.begin() as session:
            session.execute(
                update(JobRecord)
                .where(*stale, JobRecord.attempts >= MAX_ATTEMPTS)
                .values(status="failed", detail=f"worker_lost: the worker running it stopped {MAX_ATTEMPTS} times")
            )
            given_back = session.execute(update(JobRecord).where(*stale).values(status="pending"))
            return bool(given_back.rowcount == 1)

    def sweep(self) -> int:
        """Send again the uploads and jobs left waiting past the lease (a lost message, a dead worker)."""
        sent = 0
        for upload_id in self.uploads.stranded(self.lease):
            self.ingest_actor.send(upload_id)
            sent += 1
        cutoff = dt.datetime.now(dt.UTC) - self.lease
        with self.jobs.sessions() as session:
            rows = session.execute(
                select(JobRecord.id, JobRecord.status).where(
                    JobRecord.status.in_(("pending", "running")), JobRecord.updated_at < cutoff
                )
            ).all()
        for job_id, status in rows:
            if status == "running":
                taken = self._take_over_stale_job(job_id)
            else:
                # Conditional on the row being still untouched, so that of several sweepers one sends it.
                with self.jobs.sessions.begin() as session:
                    touched = session.execute(
                        update(JobRecord)
                        .where(JobRecord.id == job_id, JobRecord.status == "pending", JobRecord.updated_at < cutoff)
                        .values(updated_at=dt.datetime.now(dt.UTC))
                    )
                    taken = touched.rowcount == 1
            if taken:
                self.extract_actor.send(str(job_id))
                sent += 1
        return sent

    def close(self) -> None:
        """Close the broker's connections."""
        self.broker.close()
