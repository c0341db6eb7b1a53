"""A facilitator corrects the drafts of the notes they uploaded, as the upload page does (SQLite, PG)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.accounts import Accounts
from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.jobs import note_source
from retrieval.notes import Participant

TOKEN = "test-admin-token-0123456789"
CIRCLE = "# Cercle qualité\n\nSophie : on prépare le kit de joints complet la veille du changement.\n"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    # Not entered as a context manager: no extraction worker, each test stores the drafts it needs.
    test_client = TestClient(create_app(ApiSettings(admin_token=TOKEN), services))
    yield test_client
    test_client.close()


@pytest.fixture
def callers(services: Services) -> dict[str, dict[str, str]]:
    """Karim and Nadia facilitate (neither took part in the session), Sophie led it, rh reviews."""
    accounts = Accounts(services.knowledge.sessions)
    headers = {}
    for login, role, person in (
        ("karim", "facilitator", "Karim Benali"),
        ("nadia", "facilitator", "Nadia Ferrand"),
        ("rh", "hr", None),
    ):
        accounts.create_user(login, role, person=person)
        headers[login] = {"Authorization": f"Bearer {accounts.issue_token(login).token}"}
    return headers


def upload(client: TestClient, headers: dict[str, str], visibility: str, kind: str = "circle") -> str:
    """Karim's upload of Sophie's session, as the upload page sends it (multipart, participants as JSON)."""
    response = client.post(
        "/api/notes",
        files={"file": ("cercle.md", CIRCLE.encode(), "text/markdown")},
        data={
            "kind": kind,
            "community": "qualite",
            "date": "2026-03-12",
            "visibility": visibility,
            "participants": '[{"name": "Sophie Martin", "role": "facilitator"}]',
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    note_id: str = response.json()["note_id"]
    return note_id


def draft_of(services: Services, note_id: str) -> str:
    """A verified draft of the note, stored as extraction would store it."""
    note = note_source(services.knowledge, note_id)
    candidate = PracticeDraft(
        title="Préparer le kit la veille",
        practice="Préparer le kit de joints complet la veille du changement.",
        contributors=(Participant("Sophie Martin", "facilitator"),),
        evidence=(Evidence("practice", "on prépare le kit de joints complet la veille"),),
        extracted_by="test",
    )
    verified = verify_draft(candidate, note)
    assert verified is not None
    [practice_id] = services.practices.store_drafts(note, [verified], actor="test")
    return practice_id


def drafts(client: TestClient, headers: dict[str, str], note_id: str) -> list[str]:
    listed = client.get("/api/practices", params={"note_id": note_id}, headers=headers)
    assert listed.status_code == 200, listed.text
    return [entry["id"] for entry in listed.json()["practices"]]


def test_the_uploading_facilitator_corrects_drafts_in_the_history_but_does_not_approve(
    client: TestClient, services: Services, callers: dict[str, dict[str, str]]
) -> None:
    karim, nadia, hr = callers["karim"], callers["nadia"], callers["rh"]
    note_id = upload(client, karim, "community")
    practice_id = draft_of(services, note_id)

    assert drafts(client, karim, note_id) == [practice_id]
    [evidence] = client.get(f"/api/practices/{practice_id}", headers=karim).json()["evidence"]
    assert evidence["quote"] == "on prépare le kit de joints complet la veille"
    edited = client.patch(
        f"/api/practices/{practice_id}", json={"title": "Kit de joints prêt la veille"}, headers=karim
    )
    assert edited.status_code == 200 and edited.json()["title"] == "Kit de joints prêt la veille"
    last = client.get(f"/api/practices/{practice_id}/history", headers=hr).json()["history"][-1]
    assert (last["action"], last["actor"]) == ("edited", "karim")
    assert (last["before"]["title"], last["after"]["title"]) == (
        "Préparer le kit la veille",
        "Kit de joints prêt la veille",
    )

    refused = client.post(f"/api/practices/{practice_id}/approve", headers=karim)
    assert (refused.status_code, refused.json()["error_code"]) == (403, "forbidden")
    # Another facilitator neither sees nor edits the drafts of a note they did not upload or lead.
    assert drafts(client, nadia, note_id) == []
    assert client.patch(f"/api/practices/{practice_id}", json={"title": "x"}, headers=nadia).status_code == 404

    assert client.post(f"/api/practices/{practice_id}/approve", headers=hr).status_code == 200
    # Approved, the entry is HR's to edit; and Karim, outside the quality community, no longer reads it.
    assert client.patch(f"/api/practices/{practice_id}", json={"title": "x"}, headers=karim).status_code == 404
    assert drafts(client, karim, note_id) == []


def test_the_drafts_of_a_private_note_stay_with_its_participants_even_for_its_uploader(
    client: TestClient, services: Services, callers: dict[str, dict[str, str]]
) -> None:
    karim = callers["karim"]
    note_id = upload(client, karim, "private", kind="mentoring")
    practice_id = draft_of(services, note_id)
    assert drafts(client, karim, note_id) == []
    assert client.patch(f"/api/practices/{practice_id}", json={"title": "x"}, headers=karim).status_code == 404
