"""The review queue over HTTP: HR only, drafts of private notes hidden, evidence spans beside their note."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from tests.api.test_practices_http import wait_for_jobs
from tests.conftest import ServicesFactory, bearer

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CIRCLE = """# Cercle maintenance — joints

## Ce qui a marché
Karim : astuce, on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes.

Sophie : à retenir, toujours faire un test de pelage sur trois barquettes après le remontage du joint.
"""
MENTORING = """# Mentorat — prise de poste

Sophie : je me sens perdue avec les réglages de la thermoformeuse en fin de poste.

Karim : astuce, note chaque réglage dans le carnet de bord avant de partir, tu retrouveras tout le lendemain.
"""


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    return make_services(pii_detection=False)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(admin_token=TOKEN), services)) as test_client:
        yield test_client


def upload(client: TestClient, text: str, kind: str, visibility: str, watcher: dict[str, str] = ADMIN) -> str:
    """Upload a note as the admin and wait for its extraction, watched by someone who may list its jobs."""
    body = {
        "text": text,
        "kind": kind,
        "community": "maintenance",
        "date": "2026-03-12",
        "visibility": visibility,
        "participants": [
            {"name": "Karim Benali", "role": "facilitator" if kind == "circle" else "mentor"},
            {"name": "Sophie Martin", "role": "member" if kind == "circle" else "mentee"},
        ],
    }
    created = client.post("/api/notes", json=body, headers=ADMIN)
    assert created.status_code == 201, created.text
    note_id: str = created.json()["note_id"]
    [job] = wait_for_jobs(client, note_id, watcher)
    assert job["status"] == "done" and job["drafts"] >= 1
    return note_id


def test_hr_reviews_the_queue_and_nobody_else_does(client: TestClient, services: Services) -> None:
    hr = bearer(services, "rh", "hr")
    mentor = bearer(services, "karim", "facilitator", person="Karim Benali")
    circle = upload(client, CIRCLE, "circle", "community")
    # The jobs of a private note are listed to its participants only.
    mentoring = upload(client, MENTORING, "mentoring", "private", watcher=mentor)
    # The mentor sees the draft of his mentoring session: the queue hides something that exists.
    private_ids = {
        p["id"] for p in client.get("/api/practices", params={"note_id": mentoring}, headers=mentor).json()["practices"]
    }
    assert private_ids

    queue = client.get("/api/review/queue", headers=hr)
    assert queue.status_code == 200
    page = queue.json()
    items = page["items"]
    assert items and page["total"] == len(items) and page["sort"] == "priority"
    assert {e["note_id"] for item in items for e in item["evidence"]} == {circle}
    assert not private_ids & {item["id"] for item in items}
    scores = [item["priority"]["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    assert set(items[0]["priority"]) == {"score", "grounding", "corroboration", "contributors", "age_days"}
    assert page["facets"] == {"communities": ["maintenance"], "kinds": ["circle"], "tags": page["facets"]["tags"]}

    opened = client.get(f"/api/review/items/{items[0]['id']}", headers=hr)
    assert opened.status_code == 200
    detail = opened.json()
    assert detail["practice"]["id"] == items[0]["id"]
    [source] = detail["sources"]
    assert source["note_id"] == circle and source["offset"] == 0
    for span in source["spans"]:
        assert source["text"][span["start"] : span["end"]] == span["quote"]
    assert [event["action"] for event in detail["history"]] == ["drafted"]

    for private_id in private_ids:
        hidden = client.get(f"/api/review/items/{private_id}", headers=hr)
        assert (hidden.status_code, hidden.json()["error_code"]) == (404, "practice_not_found")

    employee = bearer(services, "julie", "employee", person="Julie Moreau")
    for headers in (employee, mentor, ADMIN):
        for path in ("/api/review/queue", f"/api/review/items/{items[0]['id']}"):
            refused = client.get(path, headers=headers)
            assert (refused.status_code, refused.json()["error_code"]) == (403, "forbidden")
    assert client.get("/api/review/queue").status_code == 401


def test_bad_queue_parameters_get_a_stable_error(client: TestClient, services: Services) -> None:
    hr = bearer(services, "rh", "hr")
    for params in ({"sort": "random"}, {"status": "pending"}, {"limit": 0}, {"limit": 201}, {"due_before": "demain"}):
        refused = client.get("/api/review/queue", params=params, headers=hr)
        assert (refused.status_code, refused.json()["error_code"]) == (422, "invalid_request")
    empty = client.get("/api/review/queue", params={"status": "due", "sort": "age"}, headers=hr).json()
    assert (empty["items"], empty["total"]) == ([], 0)
    missing = client.get("/api/review/items/nope", headers=hr)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "practice_not_found")
