"""Two API processes and two workers share PostgreSQL, Redis and a Chroma server: nothing lost, nothing twice."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import chromadb
import httpx
import pytest
from sqlalchemy import func, select

from api.accounts import Accounts
from capture.uploads import UploadRecord
from retrieval.database import open_database
from retrieval.records import ChunkRecord, EvidenceRecord, JobRecord, NoteRecord, PracticeRecord
from tests.conftest import fresh_postgres_database
from tests.retrieval.test_vectors import chroma_server  # noqa: F401 (a fixture)
from tests.scale.conftest import REDIS_URL

pytestmark = [pytest.mark.scale_out, pytest.mark.postgres, pytest.mark.chroma_server, pytest.mark.broker]

ROOT = Path(__file__).parents[2]
NOTES = 10  # distinct notes; the first three are also uploaded a second time, through the other API
TWICE = 3
TOKEN = "scale-out-admin-token-0123456789"


def note_text(n: int) -> str:
    """A circle note with a word of its own (``repere{n}x``) that search must find."""
    return (
        f"# Cercle maintenance {n}\n\n"
        f"Karim Benali : astuce, on prépare le kit de joints repere{n}x complet la veille du changement de format.\n\n"
        f"Lucas Moreau : on vérifie toujours le couple de serrage des brides de la ligne {n} au remontage.\n"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll until the condition holds, or fail saying what did not happen."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.5)


@pytest.fixture
def scale_database() -> Iterator[str]:
    """A fresh PostgreSQL database of the test's own, dropped afterwards."""
    yield from fresh_postgres_database("compagnon_scale")


class Deployment:
    """The processes of one deployment, and how to reach its APIs."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.env = env
        self.processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self.api_urls: list[str] = []

    def start(self, name: str, *args: str) -> Path:
        log = self.tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "api.cli", *args], cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes.append((name, process, log))
        return log

    def start_api(self, name: str) -> None:
        port = _free_port()
        self.start(name, "serve", "--host", "127.0.0.1", "--port", str(port))
        self.api_urls.append(f"http://127.0.0.1:{port}")

    def alive(self) -> None:
        for name, process, log in self.processes:
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")

    def logs(self) -> str:
        """The last lines each process wrote."""
        return "\n".join(f"--- {name}:\n{log.read_text()[-2000:]}" for name, _process, log in self.processes)

    def stop(self) -> None:
        for _name, process, _log in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process, _log in self.processes:
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def deployment(
    tmp_path: Path,
    scale_database: str,
    chroma_server: str,  # noqa: F811 (the fixture imported above)
    prefix: str,
) -> Iterator[Deployment]:
    """Two API processes and two workers over one PostgreSQL database, one Chroma server and Redis."""
    env = {
        **os.environ,
        "COMPAGNON_DATA_DIR": str(tmp_path / "data"),
        "COMPAGNON_DATABASE_URL": scale_database,
        "COMPAGNON_CHROMA_URL": chroma_server,
        "COMPAGNON_BROKER_URL": REDIS_URL,
        "COMPAGNON_BROKER_QUEUE": prefix,
        "COMPAGNON_ADMIN_TOKEN": TOKEN,
        "COMPAGNON_EMBED_THREADS": "1",
        "COMPAGNON_PARSE_WORKERS": "1",
        "COMPAGNON_PII_DETECTION": "false",
    }
    open_database(scale_database).kw["bind"].dispose()  # migrated once, before the processes race to it
    running = Deployment(tmp_path, env)
    try:
        running.start_api("api-1")
        running.start_api("api-2")
        worker_logs = [running.start("worker-1", "worker", "--threads", "2")]
        worker_logs.append(running.start("worker-2", "worker", "--threads", "2"))

        def ready() -> bool:
            running.alive()
            for url in running.api_urls:
                try:
                    httpx.get(f"{url}/healthz", timeout=2).raise_for_status()
                except httpx.HTTPError:
                    return False
            return all("compagnon worker: consuming" in log.read_text() for log in worker_logs)

        wait_for(ready, 300, "the two APIs and the two workers starting")
        yield running
    finally:
        running.stop()


def test_notes_imported_through_two_apis_by_two_workers_are_all_there_once(
    deployment: Deployment,
    scale_database: str,
    chroma_server: str,  # noqa: F811
    request: pytest.FixtureRequest,
) -> None:
    sessions = open_database(scale_database)
    request.addfinalizer(sessions.kw["bind"].dispose)
    accounts = Accounts(sessions)
    tokens = []
    for login, role in (("fanny", "facilitator"), ("hugo", "employee")):
        accounts.create_user(login, role, communities=["maintenance"])
        tokens.append({"Authorization": f"Bearer {accounts.issue_token(login).token}"})
    # Note n goes through API n % 2; the first ones again through the other API, at the same time.
    plan = [(n, n % 2) for n in range(NOTES)] + [(n, (n + 1) % 2) for n in range(TWICE)]

    def upload(item: tuple[int, int]) -> tuple[int, int, str]:
        n, api = item
        body = {
            "text": note_text(n),
            "kind": "circle",
            "community": "maintenance",
            "date": "2026-05-04",
            "visibility": "community",
            "participants": [
                {"name": "Karim Benali", "role": "facilitator"},
                {"name": "Lucas Moreau", "role": "member"},
            ],
        }
        answer = httpx.post(f"{deployment.api_urls[api]}/api/notes", json=body, headers=tokens[0], timeout=60)
        assert answer.status_code == 202, answer.text
        return n, api, answer.headers["location"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        accepted = list(pool.map(upload, plan))

    def finished() -> bool:
        deployment.alive()
        with sessions() as session:
            open_uploads = session.scalar(
                select(func.count()).select_from(UploadRecord).where(UploadRecord.status.in_(("pending", "running")))
            )
            open_jobs = session.scalar(
                select(func.count()).select_from(JobRecord).where(JobRecord.status.in_(("pending", "running")))
            )
        return open_uploads == 0 and open_jobs == 0

    try:
        wait_for(finished, 900, "every upload and extraction job ending")
    except AssertionError as exc:
        with sessions() as session:
            uploads = session.execute(select(UploadRecord.status, UploadRecord.attempts, UploadRecord.error_code)).all()
            jobs = session.execute(select(JobRecord.status, JobRecord.attempts, JobRecord.detail)).all()
        raise AssertionError(f"{exc}: uploads {uploads}, jobs {jobs}\n{deployment.logs()}") from None

    results: dict[int, list[str]] = {}
    note_of: dict[int, str] = {}
    for n, api, location in accepted:
        upload_state = httpx.get(f"{deployment.api_urls[api]}{location}", headers=tokens[0], timeout=30).json()
        assert upload_state["status"] == "done", upload_state
        results.setdefault(n, []).append(upload_state["result"])
        assert note_of.setdefault(n, upload_state["note_id"]) == upload_state["note_id"]
    assert {n: sorted(r) for n, r in results.items() if n >= TWICE} == {n: ["created"] for n in results if n >= TWICE}
    assert {n: sorted(r) for n, r in results.items() if n < TWICE} == {
        n: ["created", "unchanged"] for n in results if n < TWICE
    }

    with sessions() as session:
        assert sorted(session.scalars(select(NoteRecord.id)).all()) == sorted(note_of.values())
        chunk_ids = set(session.scalars(select(ChunkRecord.id)).all())
        jobs = session.execute(select(JobRecord.note_id, JobRecord.status)).all()
        assert sorted(note for note, _ in jobs) == sorted(note_of.values())
        assert {status for _, status in jobs} == {"done"}
        drafts = session.execute(
            select(PracticeRecord.id, PracticeRecord.title, PracticeRecord.practice, EvidenceRecord.note_id)
            .join(EvidenceRecord, EvidenceRecord.practice_id == PracticeRecord.id)
            .distinct()
        ).all()
    assert drafts, "the offline extractor drafted nothing"
    statements = [(note, title, practice) for _, title, practice, note in drafts]
    assert len(statements) == len(set(statements)), "a draft was stored twice"

    vectors = chromadb.HttpClient(host="127.0.0.1", port=int(chroma_server.rsplit(":", 1)[1]))
    assert set(vectors.get_collection("compagnon_chunks").get(include=[])["ids"]) == chunk_ids

    for n, note_id in note_of.items():
        for api, url in enumerate(deployment.api_urls):
            found = httpx.get(
                f"{url}/api/search", params={"q": f"repere{n}x", "k": 3}, headers=tokens[1], timeout=60
            ).json()
            assert note_id in [hit["note_id"] for hit in found["hits"]], (n, api, found)
