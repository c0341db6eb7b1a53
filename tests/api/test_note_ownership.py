"""Who sees a note's extraction jobs, and who may replace a stored note by uploading it again (HTTP and CLI)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.accounts import Accounts
from api.app import create_app
from api.cli import main
from api.services import Services
from api.settings import ApiSettings
from retrieval.access import Viewer
from retrieval.database import open_database
from retrieval.records import NoteRecord
from retrieval.settings import RetrievalSettings
from tests.conftest import ServicesFactory

TOKEN = "ownership-admin-token-0123456789"
BOOTSTRAP = {"Authorization": f"Bearer {TOKEN}"}
CIRCLE = "# Cercle maintenance\n\nKarim : astuce, on prépare le kit de joints complet la veille du changement.\n"
CIRCLE_V2 = "# Cercle maintenance\n\nKarim : on vérifie aussi le couple de serrage des brides au remontage.\n"
FORGED = "# Cercle maintenance\n\nSophie : tout va bien, rien à signaler sur la TF-5.\n"
MENTORING = "# Mentorat\n\nJulie : je prépare en secret une candidature au bureau des méthodes, code ORCHIDEE-17.\n"
QUALITE = "# Cercle qualité\n\nQuentin : on étalonne la balance de contrôle chaque lundi avant la production.\n"


@pytest.fixture
def services(make_services: ServicesFactory, database_url: str | None) -> Services:
    return make_services(database_url=database_url)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    # No lifespan: the extraction worker does not run, so the jobs stay where each test puts them.
    yield TestClient(create_app(ApiSettings(admin_token=TOKEN), services))


@pytest.fixture
def callers(services: Services) -> dict[str, dict[str, str]]:
    """One account per role, by login: their Authorization headers."""
    accounts = Accounts(services.knowledge.sessions)
    headers = {}
    for login, role, person, communities in (
        ("karim", "facilitator", "Karim Benali", ()),
        ("sophie", "facilitator", "Sophie Martin", ("maintenance",)),
        ("rh", "hr", None, ()),
        ("bob", "employee", None, ("maintenance",)),
        ("julie", "employee", "Julie Petit", ()),
        ("adele", "admin", "Adele Vautrin", ()),
    ):
        accounts.create_user(login, role, person=person, communities=communities)
        headers[login] = {"Authorization": f"Bearer {accounts.issue_token(login).token}"}
    headers["bootstrap"] = BOOTSTRAP
    return headers


def note_body(text: str, external_id: str | None, **metadata: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"text": text, "kind": "circle", "community": "maintenance", "date": "2026-03-12"}
    if external_id is not None:
        body["id"] = external_id
    return body | metadata


def upload(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = client.post("/api/notes", json=body, headers=headers)
    return response.status_code, response.json()


def job_notes(client: TestClient, headers: dict[str, str], **params: str) -> list[str]:
    response = client.get("/api/jobs", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [job["note_id"] for job in response.json()["jobs"]]


def stored_text(services: Services, note_id: str) -> str:
    return services.knowledge.get_note(note_id, Viewer.administrator(), audited=False).text


def test_the_jobs_list_shows_the_notes_the_caller_may_read_and_their_own_shared_uploads(
    client: TestClient, callers: dict[str, dict[str, str]]
) -> None:
    karim, rh = callers["karim"], callers["rh"]
    ids = {}
    for name, uploader, body in (
        ("public", rh, note_body(CIRCLE, "pub", visibility="public")),
        ("maintenance", rh, note_body(CIRCLE_V2, "maint", visibility="community")),
        # Karim uploads a circle of a community he is no member of, and a mentoring he led.
        ("qualite", karim, note_body(QUALITE, "qual", community="qualite", visibility="community")),
        (
            "karim_mentoring",
            karim,
            note_body(
                MENTORING,
                "mentorat-karim",
                kind="mentoring",
                participants=[{"name": "Karim Benali", "role": "mentor"}, {"name": "Julie Petit", "role": "mentee"}],
            ),
        ),
        # HR and the bootstrap admin upload a mentoring neither took part in.
        ("rh_mentoring", rh, note_body(MENTORING + "\nJulie : merci.\n", "mentorat-rh", kind="mentoring")),
        ("admin_mentoring", callers["bootstrap"], note_body(MENTORING + "\nFin.\n", "mentorat-adm", kind="mentoring")),
    ):
        status, created = upload(client, uploader, body)
        assert status == 201, created
        ids[name] = created["note_id"]

    def seen(login: str) -> set[str]:
        found = job_notes(client, callers[login], limit="500")
        assert len(found) == len(set(found))
        return {name for name, note_id in ids.items() if note_id in found}

    assert seen("bob") == {"public", "maintenance"}
    assert seen("sophie") == {"public", "maintenance"}
    # HR reads every community's notes, never a private note, not even one it uploaded.
    assert seen("rh") == {"public", "maintenance", "qualite"}
    # Karim sees his mentoring (he led it) and the qualite circle he uploaded without being a member.
    assert seen("karim") == {"public", "karim_mentoring", "qualite"}
    assert seen("julie") == {"public", "karim_mentoring"}
    # Admins read what employees read, plus the shared notes they uploaded: no one else's mentoring.
    assert seen("adele") == {"public"}
    assert seen("bootstrap") == {"public"}
    # A note id the caller may not read lists nothing, as if it had no job.
    assert job_notes(client, callers["bob"], note_id=ids["karim_mentoring"]) == []
    assert job_notes(client, karim, note_id=ids["qualite"]) == [ids["qualite"]]
    assert client.get("/api/jobs").status_code == 401


def test_only_the_uploader_an_admin_or_hr_for_a_shared_note_may_replace_it(
    client: TestClient, services: Services, callers: dict[str, dict[str, str]]
) -> None:
    karim, sophie, rh = callers["karim"], callers["sophie"], callers["rh"]
    status, created = upload(client, karim, note_body(CIRCLE, "cercle-tf5", visibility="community"))
    assert status == 201
    note_id = created["note_id"]
    jobs_before = len(services.jobs.list_jobs(Viewer.administrator()))

    # Another facilitator, though a member who reads the note, may not overwrite it: not with new text, not even
    # with the same one, and neither by an upload without the id whose text maps to an existing note.
    for body in (
        note_body(FORGED, "cercle-tf5", visibility="community"),
        note_body(CIRCLE, "cercle-tf5", visibility="community"),
        note_body(FORGED, "cercle-tf5", visibility="public"),
    ):
        status, refused = upload(client, sophie, body)
        assert (status, refused["error_code"]) == (409, "external_id_taken"), refused
        assert "cercle-tf5" in refused["detail"] and "kit de joints" not in refused["detail"]
    assert "kit de joints" in stored_text(services, note_id)
    assert "rien à signaler" not in stored_text(services, note_id)
    assert len(services.jobs.list_jobs(Viewer.administrator())) == jobs_before
    assert client.get(f"/api/notes/{note_id}", headers=sophie).json()["visibility"] == "community"

    # Its uploader replaces it; HR replaces a shared note; so does an admin.
    status, replaced = upload(client, karim, note_body(CIRCLE_V2, "cercle-tf5", visibility="community"))
    assert (status, replaced["status"], replaced["note_id"]) == (200, "replaced", note_id)
    status, replaced = upload(client, rh, note_body(CIRCLE, "cercle-tf5", visibility="community"))
    assert (status, replaced["status"]) == (200, "replaced")
    status, replaced = upload(client, callers["adele"], note_body(CIRCLE_V2, "cercle-tf5", visibility="community"))
    assert (status, replaced["status"]) == (200, "replaced")
    # The uploader stays the first one: Karim still replaces it, Sophie still may not.
    assert upload(client, karim, note_body(CIRCLE, "cercle-tf5", visibility="community"))[0] == 200
    assert upload(client, sophie, note_body(FORGED, "cercle-tf5", visibility="community"))[0] == 409

    # Without an external id, the id comes from the text: the same text by someone else is not theirs either.
    status, created = upload(client, karim, note_body(QUALITE, None, visibility="public"))
    assert status == 201
    status, refused = upload(client, sophie, note_body(QUALITE, None, visibility="community"))
    assert (status, refused["error_code"]) == (409, "external_id_taken")
    assert client.get(f"/api/notes/{created['note_id']}", headers=sophie).json()["visibility"] == "public"


def test_a_private_note_is_replaced_only_by_its_uploader_or_an_admin(
    client: TestClient, services: Services, callers: dict[str, dict[str, str]]
) -> None:
    participants = [{"name": "Karim Benali", "role": "mentor"}, {"name": "Julie Petit", "role": "mentee"}]
    body = note_body(MENTORING, "mentorat-julie", kind="mentoring", participants=participants)
    status, created = upload(client, callers["karim"], body)
    assert status == 201
    forged = note_body(FORGED, "mentorat-julie", kind="mentoring", visibility="public", participants=participants)
    for login in ("rh", "sophie"):
        status, refused = upload(client, callers[login], forged)
        assert (status, refused["error_code"]) == (409, "external_id_taken"), login
        assert "ORCHIDEE" not in json.dumps(refused)
    assert "ORCHIDEE-17" in stored_text(services, created["note_id"])
    # An employee may not upload at all.
    assert upload(client, callers["julie"], forged)[0] == 403
    status, replaced = upload(client, callers["bootstrap"], forged | {"visibility": "private"})
    assert (status, replaced["status"]) == (200, "replaced")


def test_the_cli_applies_the_same_rules_under_as(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("COMPAGNON_DATA_DIR", str(tmp_path / "data"))
    sessions = open_database(RetrievalSettings().resolved_database_url)
    accounts = Accounts(sessions)
    accounts.create_user("karim", "facilitator", person="Karim Benali")
    accounts.create_user("sophie", "facilitator", person="Sophie Martin")
    accounts.create_user("bob", "employee", communities=("maintenance",))

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    note, forged = tmp_path / "cercle.md", tmp_path / "forged.md"
    note.write_text(CIRCLE, encoding="utf-8")
    forged.write_text(FORGED, encoding="utf-8")
    common = ("--kind", "circle", "--community", "qualite", "--date", "2026-03-12", "--id", "cercle-cli", "--json")
    code, out, _ = run("--as", "karim", "ingest", str(note), *common)
    assert code == 0
    note_id = json.loads(out)["results"][0]["note_id"]

    code, out, _ = run("--as", "sophie", "ingest", str(forged), *common)
    assert (code, json.loads(out)["results"][0]["error_code"]) == (1, "external_id_taken")
    manifest = tmp_path / "manifest.jsonl"
    line = {"id": "cercle-cli", "path": "forged.md", "kind": "circle", "community": "qualite", "date": "2026-03-12"}
    manifest.write_text(json.dumps(line) + "\n", encoding="utf-8")
    code, out, _ = run("--as", "sophie", "import", str(manifest), "--json")
    assert (code, [f["error_code"] for f in json.loads(out)["failed"]]) == (1, ["external_id_taken"])
    with sessions() as session:
        stored = session.get(NoteRecord, note_id)
        assert stored is not None and "kit de joints" in stored.text and stored.uploaded_by == "karim"

    # The qualite circle's job: its uploader sees it, a maintenance employee does not; --run is for uploaders.
    code, out, _ = run("--as", "karim", "jobs", "--json")
    assert (code, [job["note_id"] for job in json.loads(out)["jobs"]]) == (0, [note_id])
    code, out, _ = run("--as", "bob", "jobs", "--json")
    assert (code, json.loads(out)["jobs"]) == (0, [])
    code, _, err = run("--as", "bob", "jobs", "--run")
    assert (code, "forbidden" in err) == (2, True)
    sessions.kw["bind"].dispose()
