"""One writer per data directory: a second process is refused; with a Chroma server several write side by side."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from capture.ingestion import NoteMetadata
from retrieval.access import Viewer
from retrieval.lock import LOCK_FILE, DataDirLocked, holder_pid, lock_data_dir, open_records_readonly
from retrieval.records import NoteRecord
from retrieval.settings import RetrievalSettings
from tests.conftest import ServicesFactory
from tests.retrieval.test_vectors import chroma_server

__all__ = ["chroma_server"]  # the fixture, shared with the vector store's tests

ROOT = Path(__file__).parents[2]


def _cli(data_dir: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COMPAGNON_DATA_DIR": str(data_dir), **env}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *argv],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the write lock of ``tmp_path / "data"`` until it is killed."""
    script = (
        "import sys; from pathlib import Path; from retrieval.lock import lock_data_dir; "
        f"lock_data_dir(Path({str(tmp_path / 'data')!r})); print('locked', flush=True); sys.stdin.read()"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    yield process
    process.kill()
    process.communicate(timeout=30)  # closes the pipes


def test_a_second_process_is_refused_naming_the_holder(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    data_dir = tmp_path / "data"
    assert holder_pid(data_dir) == holder.pid

    refused = _cli(data_dir, "notes", "list", "--json")

    assert refused.returncode == 2
    error = json.loads(refused.stdout)
    assert error["error_code"] == "data_dir_locked"
    assert f"process {holder.pid}" in error["detail"] and "COMPAGNON_CHROMA_URL" in error["detail"]
    with pytest.raises(DataDirLocked):
        lock_data_dir(data_dir)

    holder.send_signal(signal.SIGKILL)  # however the holder dies, the kernel drops its lock
    holder.wait(timeout=30)
    assert holder_pid(data_dir) is None
    served = _cli(data_dir, "notes", "list", "--json")
    assert served.returncode == 0, served.stderr
    assert json.loads(served.stdout) == {"notes": []}


def test_the_command_line_is_refused_while_the_service_runs(
    make_services: ServicesFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    services = make_services()
    assert holder_pid(tmp_path / "data") == os.getpid()

    refused = _cli(tmp_path / "data", "doctor")

    assert refused.returncode == 2
    assert refused.stderr.startswith("error data_dir_locked: ") and f"process {os.getpid()}" in refused.stderr
    services.close()
    assert holder_pid(tmp_path / "data") is None


def test_the_lock_is_shared_within_a_process_and_dropped_with_its_last_holder(
    make_services: ServicesFactory, tmp_path: Path
) -> None:
    first = make_services()
    second = make_services()  # the same data directory, opened twice in one process
    assert first.data_lock is not None and first.data_lock.first
    assert second.data_lock is not None and not second.data_lock.first
    assert second.startup_repair is None  # start-up repair runs once per process
    first.close()
    assert holder_pid(tmp_path / "data") == os.getpid()
    second.close()
    second.close()  # closing twice gives the hold up once
    assert holder_pid(tmp_path / "data") is None
    assert (tmp_path / "data" / LOCK_FILE).exists()


def test_a_forked_child_does_not_inherit_the_lock(tmp_path: Path) -> None:
    hold = lock_data_dir(tmp_path)
    pid = os.fork()
    if pid == 0:  # the child: it must not believe it holds its parent's lock
        try:
            lock_data_dir(tmp_path)
        except DataDirLocked:
            os._exit(0)
        os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert holder_pid(tmp_path) == os.getpid()  # the child's exit left the parent's lock in place
    hold.release()
    assert holder_pid(tmp_path) is None


def test_records_open_read_only_while_the_writer_runs(make_services: ServicesFactory, tmp_path: Path) -> None:
    services = make_services()
    metadata = NoteMetadata(kind="pair", community="qualite", session_date=dt.date(2026, 1, 5), visibility="public")
    services.ingestor.ingest_text("Sophie : on nettoie l'objectif chaque matin.", metadata)
    url = RetrievalSettings(data_dir=tmp_path / "data").resolved_database_url

    readonly = open_records_readonly(url)

    with readonly() as session:
        assert session.scalar(select(func.count()).select_from(NoteRecord)) == 1
        session.add(NoteRecord(id="nforbidden"))
        with pytest.raises(OperationalError, match=r"readonly|read-only"):
            session.flush()
    readonly.kw["bind"].dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_records_open_read_only_on_postgresql(database_url: str) -> None:
    readonly = open_records_readonly(database_url)
    with readonly() as session:
        session.scalar(select(func.count()).select_from(NoteRecord))
        session.add(NoteRecord(id="nforbidden"))
        with pytest.raises(Exception, match="read-only transaction"):
            session.flush()
    readonly.kw["bind"].dispose()


def _manifest(path: Path, prefix: str, count: int) -> Path:
    with path.open("w", encoding="utf-8") as manifest:
        for i in range(count):
            line = {
                "id": f"{prefix}-{i}",
                "text": f"# {prefix} {i}\n\nKarim : le réglage {prefix}{i}zeta tient quand on graisse la came.\n",
                "kind": "circle",
                "community": "maintenance",
                "date": "2026-02-01",
                "visibility": "public",
            }
            manifest.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


@pytest.mark.chroma_server
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_with_a_chroma_server_two_processes_write_side_by_side(
    make_services: ServicesFactory, chroma_server: str, database_url: str, tmp_path: Path
) -> None:
    env = {"COMPAGNON_CHROMA_URL": chroma_server, "COMPAGNON_DATABASE_URL": database_url}
    data_dir = tmp_path / "data"
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "api.cli", "import", str(_manifest(tmp_path / f"{p}.jsonl", p, 10)), "--json"],
            cwd=ROOT,
            env={**os.environ, "COMPAGNON_DATA_DIR": str(data_dir), **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in ("alpha", "beta")
    ]
    for writer in writers:
        out, err = writer.communicate(timeout=900)
        assert writer.returncode == 0, out + err
        assert json.loads(out) == {"imported": 10, "unchanged": 0, "failed": []}
    assert not (data_dir / "chroma").exists() and holder_pid(data_dir) is None

    services = make_services(chroma_url=chroma_server, database_url=database_url, data_dir=data_dir)

    report = services.reconciler().check()
    assert report.consistent, report.disagreements()
    assert (report.notes, report.chunks, report.vectors) == (20, 20, 20)
    for prefix in ("alpha", "beta"):
        for i in (0, 9):
            hits = services.searcher.search(f"{prefix}{i}zeta", Viewer.public(), k=1, mode="lexical")
            assert [hit.external_id for hit in hits] == [f"{prefix}-{i}"]
