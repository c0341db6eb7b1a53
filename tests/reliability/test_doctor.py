"""The reconciler and ``compagnon doctor``: each kind of disagreement injected into the real stores is found and fixed."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from api.cli import main
from api.services import Services
from capture.ingestion import NoteMetadata
from retrieval.access import Viewer
from retrieval.knowledge import staged_original_name
from retrieval.reconcile import ReconcileReport
from retrieval.records import ChunkRecord, JobRecord, NoteRecord
from tests.conftest import ServicesFactory

NOTES = {
    "seal": "# Joints\n\nKarim : on prépare le kit de joints zircotte la veille du changement de bobine.\n",
    "camera": "# Vision\n\nSophie : la caméra quarvelle rejette trop de barquettes quand l'éclairage change.\n",
    "resin": "# Prix\n\nLucas : on a montré au client l'indice plimsoll de la résine mois par mois.\n",
    "torque": "# Serrage\n\nEmma : on note le couple brindave de chaque vis sur la fiche du poste.\n",
}


def _meta(external_id: str) -> NoteMetadata:
    return NoteMetadata(
        kind="circle",
        community="maintenance",
        session_date=dt.date(2026, 3, 12),
        visibility="public",
        external_id=external_id,
    )


def _ingest(services: Services) -> dict[str, str]:
    return {name: services.ingestor.ingest_text(text, _meta(name)).note_id for name, text in NOTES.items()}


def _chunk_ids(services: Services, note_id: str) -> list[str]:
    with services.knowledge.sessions() as session:
        return list(session.scalars(select(ChunkRecord.id).where(ChunkRecord.note_id == note_id)))


def _note(services: Services, note_id: str) -> NoteRecord:
    with services.knowledge.sessions() as session:
        note: NoteRecord | None = session.get(NoteRecord, note_id)
        assert note is not None
        return note


def _search_ids(services: Services, query: str, mode: str) -> list[str]:
    return [hit.note_id for hit in services.searcher.search(query, Viewer.public(), k=3, mode=mode)]


def test_every_kind_of_disagreement_is_found_and_repaired(services: Services) -> None:
    ids = _ingest(services)
    assert services.jobs.drain() == 4
    knowledge = services.knowledge
    originals = services.retrieval.originals_dir
    reconciler = services.reconciler()
    assert reconciler.check().consistent

    [missing_vector] = _chunk_ids(services, ids["camera"])
    knowledge.store.delete([missing_vector])
    orphan_vector = "c" + "0" * 31
    knowledge.store.upsert([orphan_vector], knowledge.embedder.embed_documents(["ghost"]), [{"note_id": "ngone"}])
    seal = _note(services, ids["seal"])
    assert seal.original_path is not None
    original_bytes = (originals / seal.original_path).read_bytes()
    # Killed between the commit and the move: the committed version's original is still staged.
    unplaced = staged_original_name(seal.id, seal.fingerprint)
    (originals / seal.original_path).rename(originals / unplaced)
    # Killed before the commit: a staged copy of a version that never was, and one of the old naming.
    stale = staged_original_name(ids["resin"], "f" * 64)
    (originals / stale).write_bytes(b"never committed")
    (originals / ".staged-5d41402abc4b2a76b9719d911017c592").write_bytes(b"older build")
    (originals / "ngone.md").write_bytes(b"a deleted note's file")
    torque = _note(services, ids["torque"])
    assert torque.original_path is not None
    (originals / torque.original_path).unlink()
    with knowledge.sessions.begin() as session:
        session.execute(delete(JobRecord).where(JobRecord.note_id == ids["resin"]))
        session.execute(update(JobRecord).where(JobRecord.note_id == ids["seal"]).values(status="running"))
        stuck = list(session.scalars(select(JobRecord.id).where(JobRecord.note_id == ids["seal"])))
    [lexical_missing] = _chunk_ids(services, ids["resin"])
    knowledge.catalog.refresh()
    knowledge.catalog.lexical.remove([lexical_missing])
    knowledge.catalog.lexical.add("cghost", ["ghost"])

    found = reconciler.check()

    assert not found.consistent
    assert found.orphan_vectors == (orphan_vector,)
    assert found.missing_vectors == (missing_vector,)
    assert found.unplaced_originals == (unplaced,)
    assert set(found.staged_leftovers) == {stale, ".staged-5d41402abc4b2a76b9719d911017c592"}
    assert found.orphan_originals == ("ngone.md",)
    assert found.missing_originals == (ids["torque"],)
    assert found.notes_without_job == (ids["resin"],)
    assert found.stuck_jobs == tuple(sorted(stuck))
    assert found.lexical_missing == (lexical_missing,)
    assert found.lexical_orphans == ("cghost",)
    assert (found.notes, found.chunks, found.vectors) == (4, 4, 4)
    assert _search_ids(services, "quarvelle camera lighting", "dense")[0] != ids["camera"]

    reconciler.repair(found)

    after = reconciler.check()
    assert after.consistent, after.disagreements()
    assert knowledge.store.all_ids() == {c for note_id in ids.values() for c in _chunk_ids(services, note_id)}
    assert (originals / seal.original_path).read_bytes() == original_bytes
    assert sorted(p.name for p in originals.iterdir()) == sorted(
        p for p in (_note(services, i).original_path for i in ids.values()) if p is not None
    )
    assert _note(services, ids["torque"]).original_path is None  # its file is lost: the record says so
    with knowledge.sessions() as session:
        jobs = {job.note_id: job.status for job in session.scalars(select(JobRecord))}
    assert jobs[ids["resin"]] == "pending" and jobs[ids["seal"]] == "pending"
    assert _search_ids(services, "quarvelle camera lighting", "dense")[0] == ids["camera"]
    assert _search_ids(services, "plimsoll", "lexical") == [ids["resin"]]
    assert services.jobs.drain() == 2
    assert reconciler.repair().consistent  # nothing left to do: a second repair finds nothing


def test_a_reembedded_vector_keeps_the_access_metadata_of_its_note(services: Services) -> None:
    private = services.ingestor.ingest_text(
        "# Mentorat\n\nNadia : je doute de ma prise de poste sur la ligne vorpelle.\n",
        NoteMetadata(
            kind="mentoring",
            community="maintenance",
            session_date=dt.date(2026, 3, 1),
            external_id="private-1",
        ),
    )
    [chunk] = _chunk_ids(services, private.note_id)
    before = services.knowledge.store.query(services.knowledge.store.get_vectors([chunk])[chunk], 1)[0].metadata
    services.knowledge.store.delete([chunk])

    services.reconciler().repair()

    [hit] = services.knowledge.store.query(services.knowledge.store.get_vectors([chunk])[chunk], 1)
    assert hit.metadata == before and hit.metadata["visibility"] == "private"
    assert _search_ids(services, "vorpelle", "dense") == []  # still hidden from those not taking part


def test_a_fresh_start_repairs_what_a_crash_left(make_services: ServicesFactory, tmp_path: Path) -> None:
    first = make_services()
    ids = _ingest(first)
    [chunk] = _chunk_ids(first, ids["seal"])
    first.knowledge.store.delete([chunk])
    with first.knowledge.sessions.begin() as session:
        session.execute(delete(JobRecord).where(JobRecord.note_id == ids["camera"]))
    first.close()

    again = make_services()

    report = again.startup_repair
    assert isinstance(report, ReconcileReport)
    assert report.missing_vectors == (chunk,) and report.notes_without_job == (ids["camera"],)
    assert again.reconciler().check().consistent
    assert _search_ids(again, "zircotte kit de joints", "dense")[0] == ids["seal"]


@pytest.fixture
def cli_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("COMPAGNON_DATA_DIR", str(directory))
    return directory


def test_doctor_command_reports_repairs_and_exits_by_what_remains(
    make_services: ServicesFactory, cli_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    services = make_services(data_dir=cli_data_dir)
    ids = _ingest(services)
    [chunk] = _chunk_ids(services, ids["resin"])
    services.knowledge.store.delete([chunk])
    (services.retrieval.originals_dir / "nstray.md").write_bytes(b"stray")

    assert main(["doctor", "--json"]) == 1
    checked = json.loads(capsys.readouterr().out)
    assert checked["consistent"] is False
    assert checked["found"]["disagreements"]["missing_vectors"] == 1
    assert checked["found"]["ids"] == {"missing_vectors": [chunk], "orphan_originals": ["nstray.md"]}
    assert checked["found"]["counts"] == {"notes": 4, "chunks": 4, "vectors": 3}

    assert main(["doctor", "--repair"]) == 0
    out = capsys.readouterr().out
    assert "missing_vectors: 1" in out and "repaired: the stores agree" in out

    assert main(["doctor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["remaining"]["consistent"] is True
    assert _search_ids(services, "indice plimsoll de la résine", "dense")[0] == ids["resin"]
