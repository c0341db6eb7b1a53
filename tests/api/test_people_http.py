"""The right to erasure and the audit log over HTTP: admins only, the documented shapes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.accounts import Accounts
from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from capture.erasure import PSEUDONYM_PREFIX
from capture.ingestion import NoteMetadata
from retrieval.notes import Participant

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
NOTE = "# Binôme terrain\n\nKarim : on prépare le kit de joints la veille du changement de format.\n"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(admin_token=TOKEN), services)) as test_client:
        yield test_client


def employee(services: Services) -> dict[str, str]:
    accounts = Accounts(services.knowledge.sessions)
    accounts.create_user("bob", "employee")
    return {"Authorization": f"Bearer {accounts.issue_token('bob').token}"}


def test_an_admin_erases_a_person_and_the_audit_log_says_so(client: TestClient, services: Services) -> None:
    metadata = NoteMetadata(
        kind="pair",
        community="maintenance",
        session_date=dt.date(2026, 5, 4),
        participants=(Participant("Karim Benali", "pair"), Participant("Lucas Moreau", "pair")),
        visibility="public",
    )
    note_id = services.ingestor.ingest_text(NOTE, metadata).note_id
    bob = employee(services)
    assert client.delete("/api/people/Karim Benali").status_code == 401
    assert client.delete("/api/people/Karim Benali", headers=bob).json()["error_code"] == "forbidden"
    assert client.get("/api/audit", headers=bob).status_code == 403

    erased = client.delete("/api/people/Karim Benali", headers=ADMIN)

    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert report["pseudonym"].startswith(PSEUDONYM_PREFIX) and report["notes_rewritten"] == 1
    assert set(report["vectors_kept"]) == {
        "compagnon_chunks",
        "compagnon_chunks_practices",
        "compagnon_chunks_groups",
        "compagnon_chunks_questions",
    }
    note = client.get(f"/api/notes/{note_id}", headers=bob).json()
    assert [p["name"] for p in note["participants"]] == [report["pseudonym"], "Lucas Moreau"]
    assert "Karim" not in note["text"]
    entries = client.get("/api/audit", params={"action": "person.erased"}, headers=ADMIN).json()["entries"]
    assert [(e["actor"], e["target_type"], e["target_id"]) for e in entries] == [
        ("bootstrap-admin", "person", report["pseudonym"])
    ]
    assert "Karim" not in str(entries)
