"""The task queue on a real Redis and a real RabbitMQ: uploads and extraction jobs run once, whatever the broker does."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator

import dramatiq
import pika
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from capture.ingestion import Ingestor, NoteMetadata
from capture.queue import TaskQueue, broker_reachable
from capture.uploads import MAX_ATTEMPTS, UploadRecord, Uploads
from retrieval.access import Viewer
from retrieval.errors import StoreUnavailable
from retrieval.notes import Participant
from retrieval.records import EvidenceRecord, JobRecord, NoteRecord
from tests.conftest import DATA, ServicesFactory, bearer
from tests.scale.conftest import REDIS_URL

pytestmark = pytest.mark.broker

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
TOKEN = "queue-admin-token-0123456789abcdef"
NOTE = (
    "# Cercle maintenance\n\n"
    "Karim Benali : astuce, on prépare le kit de joints complet la veille du changement de format.\n\n"
    "Lucas Moreau : on vérifie toujours le couple de serrage des brides au remontage, sinon ça fuit.\n"
)
METADATA = NoteMetadata(
    kind="circle",
    community="maintenance",
    session_date=dt.date(2026, 5, 4),
    participants=(Participant("Karim Benali", "facilitator"), Participant("Lucas Moreau", "member")),
    visibility="public",
)
FANNY = Viewer(label="fanny", role="facilitator", person_name="Karim Benali")


def wait_for(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    """Poll until the condition holds, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.2)


@pytest.fixture
def queued(make_services: ServicesFactory, database_url: str | None, prefix: str) -> Services:
    """Services whose uploads and jobs go through Redis, on SQLite and on PostgreSQL."""
    return make_services(database_url=database_url, broker_url=REDIS_URL, broker_queue=prefix)


def tasks_of(services: Services) -> TaskQueue:
    assert services.tasks is not None
    return services.tasks


@pytest.fixture
def worker(queued: Services) -> Iterator[dramatiq.Worker]:
    """A Dramatiq worker consuming the test's queues in this process, one message at a time."""
    tasks = tasks_of(queued)
    running = dramatiq.Worker(tasks.broker, queues=tasks.queue_names, worker_threads=1, worker_timeout=100)
    running.start()
    yield running
    running.stop(timeout=30_000)


def upload_row(services: Services, upload_id: str) -> UploadRecord:
    with services.knowledge.sessions() as session:
        record = session.get(UploadRecord, upload_id)
        assert record is not None
        return record


def counts(services: Services) -> tuple[int, int, int]:
    """Notes, extraction jobs and evidence rows of drafts stored."""
    with services.knowledge.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(NoteRecord)) or 0,
            session.scalar(select(func.count()).select_from(JobRecord)) or 0,
            session.scalar(select(func.count()).select_from(EvidenceRecord)) or 0,
        )


def settled(services: Services) -> bool:
    """Every upload and job has ended."""
    with services.knowledge.sessions() as session:
        open_uploads = session.scalar(
            select(func.count()).select_from(UploadRecord).where(UploadRecord.status.in_(("pending", "running")))
        )
        open_jobs = session.scalar(
            select(func.count()).select_from(JobRecord).where(JobRecord.status.in_(("pending", "running")))
        )
    return open_uploads == 0 and open_jobs == 0


def test_an_upload_runs_once_on_a_worker_even_when_its_message_comes_twice(
    queued: Services, worker: dramatiq.Worker
) -> None:
    tasks = tasks_of(queued)
    upload = tasks.submit_text(NOTE, METADATA, FANNY)
    assert upload.status == "pending" and upload.note_id is None
    tasks.ingest_actor.send(upload.id)  # the broker delivers it twice
    wait_for(lambda: upload_row(queued, upload.id).status == "done" and settled(queued))
    record = upload_row(queued, upload.id)
    assert (record.result, record.attempts, record.error_code) == ("created", 1, None)
    assert record.payload is None and record.note_metadata is None  # the note is what remains
    notes, jobs, evidence = counts(queued)
    assert (notes, jobs) == (1, 1) and evidence > 0
    with queued.knowledge.sessions() as session:
        note = session.get(NoteRecord, record.note_id)
        assert note is not None and note.uploaded_by == "fanny"
        assert session.scalars(select(JobRecord.status)).all() == ["done"]
    # A message coming again long after, and the same note uploaded again: nothing more is stored.
    tasks.ingest_actor.send(upload.id)
    again = tasks.submit_text(NOTE, METADATA, FANNY)
    wait_for(lambda: upload_row(queued, again.id).status == "done" and settled(queued))
    tasks.broker.join(tasks.ingest_actor.queue_name, timeout=30_000)
    worker.join()
    assert upload_row(queued, again.id).result == "unchanged"
    assert counts(queued) == (notes, jobs, evidence)


def test_a_redelivered_message_waits_for_a_live_worker_and_takes_over_a_dead_one(queued: Services) -> None:
    tasks = tasks_of(queued)
    upload = tasks.uploads.record_text(NOTE, METADATA, FANNY)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    with queued.knowledge.sessions.begin() as session:
        session.execute(
            update(UploadRecord)
            .where(UploadRecord.id == upload)
            .values(status="running", attempts=1, lease_until=later)
        )
    with pytest.raises(dramatiq.Retry):  # its worker is alive: the message comes back later
        tasks.ingest(upload)
    assert upload_row(queued, upload).status == "running"
    with queued.knowledge.sessions.begin() as session:
        session.execute(
            update(UploadRecord)
            .where(UploadRecord.id == upload)
            .values(lease_until=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
    tasks.ingest(upload)  # its worker died: the lease is over, this one takes it
    record = upload_row(queued, upload)
    assert (record.status, record.result, record.attempts) == ("done", "created", 2)

    job_id = queued.jobs.list_jobs(Viewer.administrator(), note_id=record.note_id)[0].id
    with queued.knowledge.sessions.begin() as session:
        session.execute(update(JobRecord).where(JobRecord.id == job_id).values(status="running", attempts=1))
    with pytest.raises(dramatiq.Retry):
        tasks.extract(job_id)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=queued.capture.job_lease_seconds + 5)
    with queued.knowledge.sessions.begin() as session:
        session.execute(update(JobRecord).where(JobRecord.id == job_id).values(updated_at=old))
    tasks.extract(job_id)
    [job] = queued.jobs.list_jobs(Viewer.administrator(), note_id=record.note_id)
    assert (job.status, job.attempts) == ("done", 2) and job.drafts > 0
    evidence = counts(queued)[2]
    tasks.extract(job_id)  # a duplicate of a finished job's message changes nothing
    assert counts(queued)[2] == evidence


def test_a_bad_document_fails_at_once_with_its_code(queued: Services) -> None:
    tasks = tasks_of(queued)
    upload = tasks.uploads.record_bytes((DATA / "random.bin").read_bytes(), METADATA, "random.bin", FANNY)
    tasks.ingest(upload)  # no retry: the document is at fault
    record = upload_row(queued, upload)
    assert (record.status, record.error_code, record.attempts) == ("failed", "unsupported_format", 1)
    assert record.payload is None
    assert counts(queued) == (0, 0, 0)


def test_a_passing_failure_is_retried_then_fails_with_its_code(queued: Services) -> None:
    tasks = tasks_of(queued)

    def unavailable(_viewer: Viewer) -> Ingestor:
        raise StoreUnavailable("the records database is down")

    tasks.uploads = Uploads(queued.knowledge.sessions, queued.capture, unavailable, queued.jobs)
    upload = tasks.uploads.record_text(NOTE, METADATA, FANNY)
    for _ in range(MAX_ATTEMPTS - 1):
        with pytest.raises(dramatiq.Retry):
            tasks.ingest(upload)
        assert upload_row(queued, upload).status == "pending"
    tasks.ingest(upload)
    record = upload_row(queued, upload)
    assert (record.status, record.error_code, record.attempts) == ("failed", "store_unavailable", MAX_ATTEMPTS)
    assert record.detail == "the records database is down" and record.payload is None


def test_the_sweep_sends_again_what_the_broker_lost(queued: Services, worker: dramatiq.Worker) -> None:
    tasks = tasks_of(queued)
    lost = tasks.uploads.record_text(NOTE, METADATA, FANNY)  # stored, but its message never sent
    assert tasks.sweep() == 0  # not yet: it may still be on its way
    old = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=queued.capture.job_lease_seconds + 5)
    with queued.knowledge.sessions.begin() as session:
        session.execute(update(UploadRecord).where(UploadRecord.id == lost).values(updated_at=old))
    assert tasks.sweep() == 1
    assert tasks.sweep() == 0  # sent once, whoever sweeps
    wait_for(lambda: upload_row(queued, lost).status == "done" and settled(queued))
    assert counts(queued)[:2] == (1, 1)


@pytest.fixture
def client(queued: Services) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(admin_token=TOKEN), queued)) as test_client:
        yield test_client


def test_with_a_broker_an_upload_answers_202_and_its_submitter_follows_it(
    queued: Services, client: TestClient, worker: dramatiq.Worker
) -> None:
    fanny, other = bearer(queued, "fanny", "facilitator"), bearer(queued, "olga", "facilitator")
    body = {"text": NOTE, "kind": "circle", "community": "maintenance", "date": "2026-05-04", "visibility": "public"}
    accepted = client.post("/api/notes", json=body, headers=fanny)
    assert accepted.status_code == 202, accepted.text
    location = accepted.headers["location"]
    assert location == f"/api/notes/uploads/{accepted.json()['id']}"
    assert accepted.json()["status"] in ("pending", "running", "done")
    assert client.get(location, headers=other).json()["error_code"] == "upload_not_found"
    wait_for(lambda: client.get(location, headers=fanny).json()["status"] == "done")
    done = client.get(location, headers=fanny).json()
    assert (done["result"], done["error_code"]) == ("created", None)
    assert client.get(f"/api/notes/{done['note_id']}", headers=fanny).status_code == 200

    files = {"file": ("retex.md", (DATA / "note.md").read_bytes(), "text/markdown")}
    form = {"kind": "pair", "community": "maintenance", "date": "2026-05-05", "visibility": "public"}
    second = client.post("/api/notes", data=form, files=files, headers=fanny)
    assert second.status_code == 202
    wait_for(lambda: client.get(second.headers["location"], headers=fanny).json()["status"] == "done")

    refused = client.post("/api/notes", json={**body, "kind": "lecture"}, headers=fanny)
    assert (refused.status_code, refused.json()["error_code"]) == (422, "invalid_metadata")
    with queued.knowledge.sessions() as session:
        assert session.scalar(select(func.count()).select_from(UploadRecord)) == 2


def test_when_the_broker_is_down_the_upload_is_refused_and_nothing_is_kept(
    make_services: ServicesFactory, prefix: str
) -> None:
    services = make_services(broker_url="redis://127.0.0.1:1/0", broker_queue=prefix)
    with TestClient(create_app(ApiSettings(admin_token=TOKEN), services)) as client:
        body = {"text": NOTE, "kind": "circle", "community": "maintenance", "date": "2026-05-04"}
        answer = client.post("/api/notes", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert (answer.status_code, answer.json()["error_code"]) == (503, "broker_unavailable")
    with services.knowledge.sessions() as session:
        assert session.scalar(select(func.count()).select_from(UploadRecord)) == 0


@pytest.fixture
def rabbit_prefix() -> Iterator[str]:
    """A queue prefix of this test's own, whose RabbitMQ queues are deleted afterwards."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    for queue in (f"{name}-uploads", f"{name}-extraction"):
        for suffix in ("", ".DQ", ".XQ"):
            channel.queue_delete(queue + suffix)
    connection.close()


def test_rabbitmq_carries_an_upload_and_its_extraction_to_a_worker(
    make_services: ServicesFactory, rabbit_prefix: str
) -> None:
    services = make_services(broker_url=RABBITMQ_URL, broker_queue=rabbit_prefix)
    tasks = tasks_of(services)
    upload = tasks.submit_text(NOTE, METADATA, FANNY)
    running = dramatiq.Worker(tasks.broker, queues=tasks.queue_names, worker_threads=1, worker_timeout=100)
    running.start()
    try:
        wait_for(lambda: upload_row(services, upload.id).status == "done" and settled(services))
    finally:
        running.stop(timeout=30_000)
    assert counts(services)[:2] == (1, 1)


def test_broker_reachable_answers_for_redis_and_rabbitmq() -> None:
    assert broker_reachable(REDIS_URL)
    assert broker_reachable(RABBITMQ_URL)
    assert not broker_reachable("redis://127.0.0.1:1/0", timeout=1)
    assert not broker_reachable("amqp://guest:guest@127.0.0.1:1/%2F", timeout=1)
    assert not broker_reachable("http://127.0.0.1:6379/")
