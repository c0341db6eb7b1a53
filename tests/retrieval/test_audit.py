"""The audit log: append-only, read by admins, fed by private-note reads and the review history (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest
from sqlalchemy import func, select

from api.services import Services
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from retrieval.access import Viewer
from retrieval.audit import NOTE_ORIGINAL, NOTE_READ, AuditFilters, AuditLog
from retrieval.errors import Forbidden
from retrieval.notes import Participant
from retrieval.records import AuditRecord

ADMIN = Viewer.administrator()
MENTORING = """# Mentorat

Karim : avant d'ouvrir l'armoire, je consigne et je vérifie l'absence de tension.
"""


def mentoring_note(services: Services, visibility: str = "private") -> str:
    metadata = NoteMetadata(
        kind="mentoring",
        community="maintenance",
        session_date=dt.date(2026, 4, 2),
        participants=(Participant("Karim Benali", "mentor"), Participant("Nora Haddad", "mentee")),
        visibility=visibility,
    )
    return services.ingestor.ingest_text(MENTORING, metadata).note_id


def audit_rows(services: Services) -> int:
    with services.knowledge.sessions() as session:
        return session.scalar(select(func.count()).select_from(AuditRecord)) or 0


def test_the_log_has_no_way_to_change_or_remove_a_row(services: Services) -> None:
    public = {name for name, _ in inspect.getmembers(AuditLog, inspect.isfunction) if not name.startswith("_")}
    assert public == {"append", "list_entries"}
    counts = []
    for n in range(3):
        services.audit.append("admin", "test.act", "note", f"n{n}", {"n": n})
        counts.append(audit_rows(services))
    assert counts == [1, 2, 3]
    entries = services.audit.list_entries(ADMIN, AuditFilters(action="test.act"))
    assert [e.target_id for e in entries] == ["n2", "n1", "n0"]  # newest first
    assert [e.target_id for e in services.audit.list_entries(ADMIN, AuditFilters(target_id="n1"))] == ["n1"]
    assert services.audit.list_entries(ADMIN, AuditFilters(actor="someone else")) == []
    assert len(services.audit.list_entries(ADMIN, AuditFilters(limit=2))) == 2


def test_only_admins_read_the_log(services: Services) -> None:
    services.audit.append("admin", "test.act", "note", "n1")
    nora = Viewer(label="nora", person_name="Nora Haddad", communities=frozenset({"a"}))
    for viewer in (Viewer.public(), nora, Viewer(label="hr", role="hr")):
        with pytest.raises(Forbidden):
            services.audit.list_entries(viewer)
    assert len(services.audit.list_entries(Viewer(label="root", role="admin"))) == 1


def test_reading_a_private_note_without_taking_part_is_audited(services: Services) -> None:
    note_id = mentoring_note(services)
    start = audit_rows(services)

    services.knowledge.get_note(note_id, Viewer(label="nora", person_name="Nora Haddad"))  # a participant
    services.knowledge.get_note(note_id, ADMIN, audited=False)  # the system's own read
    assert audit_rows(services) == start

    services.knowledge.get_note(note_id, ADMIN)
    services.knowledge.original_path(note_id, ADMIN)
    reads = services.audit.list_entries(ADMIN, AuditFilters(target_id=note_id))
    assert [(e.actor, e.action, e.target_type) for e in reads] == [
        ("admin", NOTE_ORIGINAL, "note"),
        ("admin", NOTE_READ, "note"),
    ]
    assert "Karim" not in str(reads[0].as_json())


def test_a_public_note_read_is_not_audited(services: Services) -> None:
    note_id = mentoring_note(services, visibility="public")
    services.knowledge.get_note(note_id, ADMIN)
    assert audit_rows(services) == 0


def test_review_actions_show_in_the_log_with_who_did_them(services: Services) -> None:
    note_id = mentoring_note(services)
    source = note_source(services.knowledge, note_id)
    drafts = [
        verify_draft(
            PracticeDraft(
                title=title,
                practice=practice,
                contributors=(Participant("Karim Benali", "mentor"),),
                evidence=(Evidence("practice", quote),),
                extracted_by="test",
            ),
            source,
        )
        for title, practice, quote in (
            ("Consigner", "Consigner avant d'ouvrir l'armoire.", "je consigne"),
            ("Vérifier", "Vérifier l'absence de tension.", "je vérifie l'absence de tension"),
        )
    ]
    first, second = services.practices.store_drafts(source, [d for d in drafts if d is not None], actor="test")
    services.practices.approve(first, ADMIN)
    services.practices.reject(second, ADMIN, "doublon")
    actions = [(e.action, e.target_id, e.actor) for e in services.audit.list_entries(ADMIN)]
    assert ("practice.approved", first, "admin") in actions
    assert ("practice.rejected", second, "admin") in actions
    assert all(action != "practice.drafted" for action, _, _ in actions)  # the system's drafting is not an act
    rejected = services.audit.list_entries(ADMIN, AuditFilters(action="practice.rejected"))
    assert [(e.target_id, e.detail) for e in rejected] == [(second, {"reason": "doublon"})]
    assert services.audit.list_entries(ADMIN, AuditFilters(action="practice.approved", target_type="note")) == []
