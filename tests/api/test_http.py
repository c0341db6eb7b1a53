"""The HTTP API: uploads, errors with stable codes, search, notes, through a real ASGI client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from tests.conftest import ServicesFactory, bearer

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOTE = "# Binôme terrain\n\nKarim : on prépare le kit de joints la veille du changement de format.\n"
FIELDS = {
    "kind": "pair",
    "community": "maintenance",
    "date": "2026-05-04",
    "participant": ["Karim Benali:pair", "Lucas Moreau:pair"],
    "visibility": "public",
}


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    return make_services(max_upload_bytes=4096)


@pytest.fixture
def employee(services: Services) -> dict[str, str]:
    """A signed-in colleague of no community who took part in no session: public notes only."""
    return bearer(services, "bob", "employee")


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app(ApiSettings(admin_token=TOKEN), services)
    with TestClient(app) as test_client:
        yield test_client


def test_upload_a_file_then_the_same_again(client: TestClient, employee: dict[str, str]) -> None:
    files = {"file": ("notes.txt", NOTE.encode(), "text/plain")}
    first = client.post("/api/notes", data=FIELDS, files=files, headers=AUTH)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "created"
    again = client.post("/api/notes", data=FIELDS, files=files, headers=AUTH)
    assert again.status_code == 200
    assert again.json() == {**first.json(), "status": "unchanged"}
    note = client.get(f"/api/notes/{first.json()['note_id']}", headers=employee).json()
    assert note["participants"] == [{"name": "Karim Benali", "role": "pair"}, {"name": "Lucas Moreau", "role": "pair"}]
    assert note["chunk_list"][0]["speaker"] == "Karim Benali"
    assert note["text"][note["chunk_list"][0]["start"] : note["chunk_list"][0]["end"]] == note["chunk_list"][0]["text"]


def test_upload_pasted_text_as_json(client: TestClient, services: Services, employee: dict[str, str]) -> None:
    body = {
        "text": NOTE,
        "kind": "mentoring",
        "community": "maintenance",
        "date": "2026-05-04",
        "participants": [{"name": "Karim Benali", "role": "mentor"}],
        "id": "ext-7",
    }
    response = client.post("/api/notes", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    mentor = bearer(services, "karim", "facilitator", "Karim Benali")
    listed = client.get("/api/notes", headers=mentor).json()["notes"]
    assert listed[0]["external_id"] == "ext-7"
    assert listed[0]["visibility"] == "private"
    # A private note is its participants' only: neither a colleague nor the admin who uploaded it reads it.
    assert client.get("/api/notes", headers=employee).json() == {"notes": []}
    assert client.get("/api/notes", headers=AUTH).json() == {"notes": []}
    assert client.get("/api/notes/ext-7", headers=employee).json()["error_code"] == "note_not_found"


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, 415, "unsupported_format"),
        (b"   \n\n ", 422, "empty_document"),
        (b"%PDF-1.7\n garbage", 422, "corrupt_document"),
        (b"PK\x03\x04 not really a zip", 422, "corrupt_document"),
        (b"x" * 5000, 413, "document_too_large"),
    ],
)
def test_bad_files_get_a_stable_code_and_nothing_is_written(
    client: TestClient, services: Services, payload: bytes, status: int, code: str
) -> None:
    response = client.post("/api/notes", data=FIELDS, files={"file": ("n.txt", payload, "text/plain")}, headers=AUTH)
    assert response.status_code == status
    assert response.json()["error_code"] == code
    assert response.json()["detail"]
    assert services.knowledge.store.count() == 0
    assert client.get("/api/notes", headers=AUTH).json() == {"notes": []}
    assert not list(services.retrieval.originals_dir.glob("*")) if services.retrieval.originals_dir.exists() else True


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"kind": "meeting"}, "kind"),
        ({"date": "04/05/2026"}, "date"),
        ({"visibility": "everyone"}, "visibility"),
        ({"participant": ["Karim Benali:boss"]}, "role"),
        ({"participant": ["Karim"]}, "Name:role"),
    ],
)
def test_bad_metadata_is_refused_with_what_is_wrong(client: TestClient, change: dict[str, object], detail: str) -> None:
    files = {"file": ("notes.txt", NOTE.encode(), "text/plain")}
    response = client.post("/api/notes", data={**FIELDS, **change}, files=files, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error_code"] == "invalid_metadata"
    assert detail in response.json()["detail"]


def test_writes_need_an_uploader(client: TestClient, employee: dict[str, str]) -> None:
    files = {"file": ("notes.txt", NOTE.encode(), "text/plain")}
    assert client.post("/api/notes", data=FIELDS, files=files).json()["error_code"] == "unauthorized"
    wrong = {"Authorization": "Bearer nope"}
    assert client.post("/api/notes", data=FIELDS, files=files, headers=wrong).status_code == 401
    refused = client.post("/api/notes", data=FIELDS, files=files, headers=employee)
    assert (refused.status_code, refused.json()["error_code"]) == (403, "forbidden")
    assert client.delete("/api/notes/whatever").status_code == 401
    assert client.delete("/api/notes/whatever", headers=employee).status_code == 403


def test_a_streamed_body_over_the_limit_is_cut_off(client: TestClient, services: Services) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"a" * 4096

    response = client.post("/api/notes", content=chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error_code"] == "document_too_large"


def test_search_returns_the_documented_shape_and_respects_visibility(
    client: TestClient, services: Services, employee: dict[str, str]
) -> None:
    client.post("/api/notes", data=FIELDS, files={"file": ("n.txt", NOTE.encode(), "text/plain")}, headers=AUTH)
    private = {**FIELDS, "visibility": "private"}
    secret = "# Mentorat\n\nKarim : je prépare le kit de joints en cachette, personne ne le sait.\n"
    client.post("/api/notes", data=private, files={"file": ("s.txt", secret.encode(), "text/plain")}, headers=AUTH)

    response = client.get("/api/search", params={"q": "kit de joints", "k": 5}, headers=employee)
    assert response.status_code == 200
    body = response.json()
    assert body["query"] == "kit de joints"
    assert len(body["hits"]) == 1
    assert set(body["hits"][0]) == {
        "note_id",
        "external_id",
        "chunk_id",
        "score",
        "title",
        "kind",
        "community",
        "speaker",
        "start",
        "end",
        "text",
    }
    assert "cachette" not in json.dumps(body)
    karim = bearer(services, "karim", "facilitator", "Karim Benali")
    assert len(client.get("/api/search", params={"q": "kit de joints"}, headers=karim).json()["hits"]) == 2
    assert len(client.get("/api/search", params={"q": "kit de joints"}, headers=AUTH).json()["hits"]) == 1
    assert client.get("/api/search", params={"q": "kit", "k": 0}, headers=employee).json()["error_code"] == (
        "invalid_request"
    )


def test_delete_then_the_note_is_gone(client: TestClient, employee: dict[str, str]) -> None:
    created = client.post(
        "/api/notes", data=FIELDS, files={"file": ("n.txt", NOTE.encode(), "text/plain")}, headers=AUTH
    ).json()
    assert client.delete(f"/api/notes/{created['note_id']}", headers=AUTH).status_code == 204
    assert client.get(f"/api/notes/{created['note_id']}", headers=AUTH).status_code == 404
    assert client.get("/api/search", params={"q": "kit de joints"}, headers=employee).json()["hits"] == []


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    schema = client.get("/openapi.json").json()
    assert {"/api/notes", "/api/notes/{note_id}", "/api/search", "/healthz"} <= set(schema["paths"])
    assert client.get("/nowhere").json()["error_code"] == "not_found"
