"""A person's page and the chat's own history over HTTP: only what the caller may read, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services, build_services
from api.settings import ApiSettings
from capture.settings import CaptureSettings
from retrieval.database import open_database
from retrieval.embedders import Embedder
from retrieval.records import Base
from retrieval.settings import RetrievalSettings
from tests.conftest import bearer

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CIRCLE = """# Cercle maintenance — joints

## Ce qui a marché
Karim : astuce, on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes.

Karim : à retenir, on serre les brides en étoile avec la clé dynamométrique avant de relancer la ligne.

Sophie : à retenir, toujours faire un test de pelage sur trois barquettes après le remontage du joint.
"""
PRIVATE_TITLE = "Mentorat confidentiel : le trac des audits"
MENTORING = f"""# {PRIVATE_TITLE}

## Ce qui a marché
Karim : astuce, avant un audit on relit la check-list de sécurité la veille, au calme.

Julie : à retenir, la respiration lente m'aide à garder mon calme pendant l'audit.
"""


@dataclass(frozen=True)
class World:
    """The seeded service: a client, the accounts' headers, and the ids of what was seeded."""

    client: TestClient
    headers: dict[str, dict[str, str]]
    circle: str
    mentoring: str
    kit: str


def wait_for_jobs(client: TestClient, note_id: str, headers: dict[str, str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        jobs = client.get("/api/jobs", params={"note_id": note_id}, headers=headers).json()["jobs"]
        if jobs and all(job["status"] not in ("pending", "running") for job in jobs):
            return
        time.sleep(0.2)
    raise AssertionError("extraction did not finish")


def seed(client: TestClient, services: Services) -> World:
    """A public circle with an entry credited to Karim approved, and Karim's private mentoring of Julie."""
    headers = {
        "julie": bearer(services, "julie", "employee", "Julie Moreau"),
        "bob": bearer(services, "bob", "employee"),
        "rh": bearer(services, "rh", "hr"),
    }
    circle = client.post(
        "/api/notes",
        json={
            "text": CIRCLE,
            "kind": "circle",
            "community": "maintenance",
            "date": "2026-03-12",
            "visibility": "public",
            "participants": [
                {"name": "Karim Benali", "role": "facilitator"},
                {"name": "Sophie Martin", "role": "member"},
            ],
        },
        headers=ADMIN,
    ).json()["note_id"]
    mentoring = client.post(
        "/api/notes",
        json={
            "text": MENTORING,
            "kind": "mentoring",
            "community": "qualite-audits",
            "date": "2026-04-02",
            "participants": [{"name": "Karim Benali", "role": "mentor"}, {"name": "Julie Moreau", "role": "mentee"}],
        },
        headers=ADMIN,
    ).json()["note_id"]
    wait_for_jobs(client, circle, ADMIN)
    # A private note's jobs are listed to its participants only.
    wait_for_jobs(client, mentoring, headers["julie"])
    drafts = client.get("/api/practices", params={"status": "draft", "note_id": circle}, headers=headers["rh"])
    kit = next(entry for entry in drafts.json()["practices"] if "kit" in entry["practice"])
    assert client.post(f"/api/practices/{kit['id']}/approve", headers=headers["rh"]).status_code == 200
    return World(client, headers, circle, mentoring, kit["id"])


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def world(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    group_embedder: Embedder,
) -> Iterator[World]:
    """One seeded service per database for the whole module (extraction is the slow part)."""
    url: str | None = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        sessions = open_database(url)
        with sessions.begin() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(table.delete())
        sessions.kw["bind"].dispose()
    settings = RetrievalSettings(data_dir=tmp_path_factory.mktemp("people") / "data", database_url=url)
    services = build_services(settings, CaptureSettings(), embedder=embedder, group_embedder=group_embedder)
    try:
        with TestClient(create_app(ApiSettings(admin_token=TOKEN), services)) as client:
            yield seed(client, services)
    finally:
        services.close()


def page(client: TestClient, name: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"/api/people/{name}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_colleague_sees_shared_sessions_and_approved_entries_never_a_private_mentoring(world: World) -> None:
    karim = page(world.client, "Karim Benali", world.headers["bob"])

    assert [(s["note_id"], s["role"], s["kind"]) for s in karim["sessions"]] == [
        (world.circle, "facilitator", "circle")
    ]
    assert [(e["id"], e["status"]) for e in karim["entries"]] == [(world.kit, "approved")]
    topics = {(t["topic"], t["source"]) for t in karim["topics"]}
    assert ("maintenance", "community") in topics
    assert all(t["evidence"] and t["count"] >= len(t["evidence"]) for t in karim["topics"])
    assert not karim["is_viewer"] and not karim["may_change_opt_out"] and karim["opted_out"] is False
    raw = json.dumps(karim, ensure_ascii=False)
    for secret in (PRIVATE_TITLE, "qualite-audits", world.mentoring, "mentor", "respiration"):
        assert secret not in raw


def test_someone_seen_only_in_a_private_note_is_unknown_to_others_and_sees_it_on_their_own_page(world: World) -> None:
    refused = world.client.get("/api/people/Julie Moreau", headers=world.headers["bob"])
    assert refused.status_code == 404 and refused.json()["error_code"] == "person_not_found"

    own = page(world.client, "Julie Moreau", world.headers["julie"])
    assert own["is_viewer"] and own["may_change_opt_out"]
    assert [(s["title"], s["role"], s["visibility"]) for s in own["sessions"]] == [(PRIVATE_TITLE, "mentee", "private")]
    # Julie took part in the mentoring: on Karim's page she sees it too, and nothing HR would not show her.
    karim = page(world.client, "Karim Benali", world.headers["julie"])
    assert {s["note_id"] for s in karim["sessions"]} == {world.circle, world.mentoring}


def test_hr_sees_drafts_credited_but_not_those_drawn_from_private_mentoring(world: World) -> None:
    karim = page(world.client, "Karim Benali", world.headers["rh"])
    statuses = {e["status"] for e in karim["entries"]}
    assert statuses == {"approved", "draft"}
    assert world.mentoring not in {s["note_id"] for s in karim["sessions"]}
    hr_drafts = world.client.get("/api/practices", params={"status": "draft"}, headers=world.headers["rh"]).json()
    assert {e["id"] for e in karim["entries"]} <= {e["id"] for e in hr_drafts["practices"]} | {world.kit}
    assert PRIVATE_TITLE not in json.dumps(karim, ensure_ascii=False)
    colleague = page(world.client, "Karim Benali", world.headers["bob"])
    assert {e["status"] for e in colleague["entries"]} == {"approved"}


def test_a_person_opts_themself_out_and_nobody_else_but_an_admin_may(world: World) -> None:
    julie = world.headers["julie"]
    changed = world.client.put("/api/people/Julie Moreau/suggestions", json={"opted_out": True}, headers=julie)
    assert changed.status_code == 200 and changed.json() == {"name": "Julie Moreau", "opted_out": True}
    assert page(world.client, "Julie Moreau", julie)["opted_out"] is True

    other = world.client.put("/api/people/Karim Benali/suggestions", json={"opted_out": True}, headers=julie)
    assert other.status_code == 403 and other.json()["error_code"] == "forbidden"
    assert page(world.client, "Karim Benali", julie)["opted_out"] is False
    by_admin = world.client.put("/api/people/Karim Benali/suggestions", json={"opted_out": True}, headers=ADMIN)
    assert by_admin.status_code == 200
    assert page(world.client, "Karim Benali", julie)["opted_out"] is True
    for name, headers in (("Julie Moreau", julie), ("Karim Benali", ADMIN)):
        assert world.client.put(
            f"/api/people/{name}/suggestions", json={"opted_out": False}, headers=headers
        ).is_success


def test_the_page_needs_a_signed_in_caller_and_a_known_person(world: World) -> None:
    assert world.client.get("/api/people/Karim Benali").status_code == 401
    unknown = world.client.get("/api/people/Nobody Here", headers=world.headers["bob"])
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "person_not_found"


def test_the_chat_history_lists_only_ones_own_questions_and_the_stream_sends_the_cited_passages(world: World) -> None:
    julie, bob = world.headers["julie"], world.headers["bob"]
    with world.client.stream(
        "POST", "/api/ask/stream", json={"question": "Comment prépare-t-on le kit de joints ?"}, headers=julie
    ) as streamed:
        raw = "".join(streamed.iter_text())
    events = []
    for block in raw.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((lines["event"], json.loads(lines["data"])))
    data = dict(events)
    assert [name for name, _ in events][-4:] == ["sources", "citations", "suggestions", "done"]
    assert data["citations"], "the kit question is answered from the circle"
    sources = {s["n"]: s for s in data["sources"]}
    assert {c["source"] for c in data["citations"]} == set(sources)
    for citation in data["citations"]:
        source = sources[citation["source"]]
        offset = citation["start"] - source["start"]
        assert source["text"][offset : offset + len(citation["quote"])] == citation["quote"]
        assert source["community"] and source["kind_of_note"]
    world.client.post("/api/ask", json={"question": "Quelle est la recette du gâteau basque ?"}, headers=bob)

    mine = world.client.get("/api/questions/mine", headers=julie).json()["questions"]

    assert [(q["id"], q["question"]) for q in mine] == [
        (data["done"]["question_id"], "Comment prépare-t-on le kit de joints ?")
    ]
    assert mine[0]["answered"] and mine[0]["answer"]
    assert [q["question"] for q in world.client.get("/api/questions/mine", headers=bob).json()["questions"]] == [
        "Quelle est la recette du gâteau basque ?"
    ]
    assert world.client.get("/api/questions/mine").status_code == 401
