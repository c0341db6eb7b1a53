"""End to end over HTTP: upload -> extraction -> HR approves -> an employee asks in the other language -> a cited
answer and the colleague who knows; abstention; streaming; feedback; a private note never leaks."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from retrieval.access import Viewer
from tests.api.test_practices_http import wait_for_jobs
from tests.conftest import ServicesFactory, bearer

TOKEN = "test-admin-token-0123456789"
CIRCLE = """# Cercle maintenance — changement de joint

## Ce qui a marché
Karim : astuce, on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes.

Karim : pour changer le joint sans arrêter la ligne, on bascule d'abord la production sur la thermoformeuse voisine.

Sophie : comment sait-on que le joint est bien remonté ?

Karim : on fait toujours un test de pelage sur trois barquettes après le remontage du joint.
"""
SECRET = """# Mentorat

Julie : je n'ose pas dire à mon chef que je compte quitter l'équipe maintenance en juin.

Karim : parlons-en à notre prochain point, le changement de joint attendra.
"""


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    return make_services()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(admin_token=TOKEN), services)) as test_client:
        yield test_client


@pytest.fixture
def hr(services: Services) -> dict[str, str]:
    """HR: uploads, reviews, reads the questions asked and their feedback."""
    return bearer(services, "rh", "hr")


@pytest.fixture
def employee(services: Services) -> dict[str, str]:
    """A signed-in colleague of no community who took part in no session: public notes only."""
    return bearer(services, "bob", "employee")


def upload(client: TestClient, hr: dict[str, str], text: str, follow: bool = True, **fields: Any) -> str:
    """Upload as HR and, when HR may follow the note's job (not a private note's), wait for its extraction."""
    body = {"text": text, "community": "maintenance", "date": "2026-03-12", **fields}
    response = client.post("/api/notes", json=body, headers=hr)
    assert response.status_code == 201, response.text
    note_id: str = response.json()["note_id"]
    if follow:
        wait_for_jobs(client, note_id, hr)
    return note_id


def upload_circle(client: TestClient, hr: dict[str, str]) -> str:
    """The public maintenance circle where Karim explains the gasket change and Sophie asks."""
    return upload(
        client,
        hr,
        CIRCLE,
        kind="circle",
        visibility="public",
        participants=[{"name": "Karim Benali", "role": "facilitator"}, {"name": "Sophie Martin", "role": "member"}],
    )


def test_upload_approve_then_ask_in_english_gets_a_cited_answer_and_the_expert(
    client: TestClient, services: Services, hr: dict[str, str], employee: dict[str, str]
) -> None:
    note_id = upload_circle(client, hr)
    secret_id = upload(
        client,
        hr,
        SECRET,
        follow=False,
        kind="mentoring",
        participants=[{"name": "Karim Benali", "role": "mentor"}, {"name": "Julie Petit", "role": "mentee"}],
    )
    # HR does not see the jobs of a mentoring it cannot read: its extraction is awaited on the services.
    assert client.get("/api/jobs", params={"note_id": secret_id}, headers=hr).json() == {"jobs": []}
    deadline = time.monotonic() + 120
    while any(job.status in ("pending", "running") for job in services.jobs.list_jobs(Viewer.administrator())):
        assert time.monotonic() < deadline, "extraction did not finish"
        time.sleep(0.2)
    drafts = client.get("/api/practices", params={"status": "draft", "note_id": note_id}, headers=hr).json()
    kit = next(p for p in drafts["practices"] if "kit de joints" in p["practice"])
    assert client.post(f"/api/practices/{kit['id']}/approve", headers=hr).status_code == 200

    response = client.post("/api/ask", json={"question": "How do we prepare a gasket change?"}, headers=employee)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"answer", "language", "abstained", "citations", "experts", "peers"} <= set(body)
    assert body["language"] == "en" and body["abstained"] is False
    assert body["citations"], body
    note = client.get(f"/api/notes/{note_id}", headers=employee).json()
    for citation in body["citations"]:
        assert f"[{citation['n']}]" in body["answer"]
        assert citation["note_id"] == note_id
        assert note["text"][citation["start"] : citation["end"]] == citation["quote"]
    assert kit["id"] in {citation["entry_id"] for citation in body["citations"]}
    [first, *_] = body["experts"]
    assert first["name"] == "Karim Benali"
    assert first["evidence"] and all(e["note_id"] == note_id for e in first["evidence"])

    # A colleague who took no part sees public notes only: nothing of the mentoring note, in any field.
    for question in ("Who wants to leave the maintenance team?", "Julie quitter l'équipe en juin"):
        asked = client.post("/api/ask", json={"question": question}, headers=employee).json()
        leaked = json.dumps(asked, ensure_ascii=False)
        assert "quitter" not in leaked and secret_id not in leaked and "Julie" not in leaked
        found = client.get("/api/experts", params={"q": question}, headers=employee).json()
        experts = json.dumps(found, ensure_ascii=False)
        assert "quitter" not in experts and "Julie" not in experts


def test_an_off_topic_question_abstains_and_is_a_knowledge_gap(
    client: TestClient, hr: dict[str, str], employee: dict[str, str]
) -> None:
    upload_circle(client, hr)
    question = {"question": "Combien de jours de congés payés a-t-on par an ?"}
    body = client.post("/api/ask", json=question, headers=employee).json()
    assert body["abstained"] is True and body["language"] == "fr"
    assert body["citations"] == []
    gaps = client.get("/api/questions", params={"answered": "false"}, headers=hr).json()["questions"]
    assert [gap["question"] for gap in gaps] == ["Combien de jours de congés payés a-t-on par an ?"]


def test_the_stream_sends_the_answer_claim_by_claim_then_citations_and_suggestions(
    client: TestClient, hr: dict[str, str], employee: dict[str, str]
) -> None:
    upload_circle(client, hr)
    question = {"question": "Comment changer le joint sans arrêter la ligne ?"}
    with client.stream("POST", "/api/ask/stream", json=question, headers=employee) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    events = [
        (block.split("\n")[0].removeprefix("event: "), json.loads(block.split("\n")[1].removeprefix("data: ")))
        for block in raw.strip().split("\n\n")
    ]
    names = [name for name, _ in events]
    assert names[0] == "answer" and names[-3:] == ["citations", "suggestions", "done"]
    claims = [data for name, data in events if name == "claim"]
    assert claims and all(claim["citations"] for claim in claims)
    citations = dict(events)["citations"]
    assert {n for claim in claims for n in claim["citations"]} == {c["n"] for c in citations}
    assert any("bascule" in c["quote"] for c in citations)

    question_id = events[0][1]["question_id"]
    rated = client.post(
        f"/api/questions/{question_id}/feedback", json={"rating": 1, "comment": "clair, merci"}, headers=employee
    )
    assert rated.status_code == 201, rated.text
    feedback = client.get("/api/feedback", headers=hr).json()["feedback"]
    assert [(f["rating"], f["comment"]) for f in feedback] == [(1, "clair, merci")]
    bad = client.post(f"/api/questions/{question_id}/feedback", json={"rating": 5}, headers=employee)
    assert bad.status_code == 422
    assert client.get("/api/feedback").status_code == 401
    assert client.get("/api/feedback", headers=employee).status_code == 403
