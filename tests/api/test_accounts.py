"""Accounts over HTTP: argon2 passwords, API tokens, cookie sessions with CSRF, and each role's rights (SQLite, PG)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.accounts import DEMO_ACCOUNTS, MIN_PASSWORD_LENGTH, Accounts, create_demo_accounts, secret_hash
from api.app import create_app
from api.deps import CSRF_HEADER, SESSION_COOKIE
from api.errors import ApiError, ErrorCode
from api.services import Services
from api.settings import ApiSettings
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from retrieval.notes import Participant
from retrieval.records import TokenRecord, UserRecord, WebSessionRecord

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PASSWORD = "correct horse battery staple"
CIRCLE = "# Cercle maintenance\n\nKarim : on prépare le kit de joints complet la veille du changement.\n"
MENTORING = "# Mentorat\n\nKarim : on prépare le kit de joints complet la veille, Julie a peur de se tromper.\n"
KARIM = Participant("Karim Benali", "facilitator")


@pytest.fixture
def accounts(services: Services) -> Accounts:
    return Accounts(services.knowledge.sessions)


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    # Not entered as a context manager, so the app's lifespan (the extraction worker) does not run: these tests
    # store the drafts they need themselves, and the jobs their notes queue stay queued.
    test_client = TestClient(create_app(ApiSettings(admin_token=TOKEN), services))
    yield test_client
    test_client.close()


def bearer(accounts: Accounts, login: str, role: str, person: str | None = None, *communities: str) -> dict[str, str]:
    """A new account and the Authorization header of a fresh token of it."""
    accounts.create_user(login, role, person=person, communities=communities)
    return {"Authorization": f"Bearer {accounts.issue_token(login).token}"}


def ingest(services: Services, text: str, *people: Participant, **fields: object) -> str:
    metadata = NoteMetadata(
        kind=str(fields.get("kind", "circle")),
        community="maintenance",
        session_date=dt.date(2026, 3, 2),
        participants=people,
        visibility=str(fields.get("visibility", "public")),
    )
    return services.ingestor.ingest_text(text, metadata).note_id


def draft_of(services: Services, note_id: str) -> str:
    """A verified draft of the note, stored as extraction would store it."""
    note = note_source(services.knowledge, note_id)
    candidate = PracticeDraft(
        title="Préparer le kit la veille",
        practice="Préparer le kit de joints complet la veille du changement.",
        contributors=(KARIM,),
        evidence=(Evidence("practice", "on prépare le kit de joints complet la veille"),),
        extracted_by="test",
    )
    verified = verify_draft(candidate, note)
    assert verified is not None
    [practice_id] = services.practices.store_drafts(note, [verified], actor="test")
    return practice_id


def test_passwords_are_hashed_with_argon2_and_checked(services: Services, accounts: Accounts) -> None:
    accounts.create_user("julie", "employee", PASSWORD, person="Julie Fabre")
    with services.knowledge.sessions() as session:
        stored = session.scalars(select(UserRecord.password_hash).where(UserRecord.login == "julie")).one()
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert accounts.verify_password("julie", PASSWORD).person == "Julie Fabre"
    for login, password in (("julie", PASSWORD + "!"), ("nobody", PASSWORD)):
        with pytest.raises(ApiError) as refused:
            accounts.verify_password(login, password)
        assert refused.value.error is ErrorCode.UNAUTHORIZED
    with pytest.raises(ApiError, match="password"):
        accounts.create_user("short", "employee", "x" * (MIN_PASSWORD_LENGTH - 1))
    with pytest.raises(ApiError, match="role"):
        accounts.create_user("boss", "superuser", PASSWORD)
    with pytest.raises(ApiError, match="already"):
        accounts.create_user("Julie", "hr", PASSWORD)
    # Without a password, an account signs in with tokens only.
    accounts.create_user("robot", "facilitator")
    with pytest.raises(ApiError):
        accounts.verify_password("robot", "")


def test_login_sets_a_safe_cookie_and_csrf_guards_unsafe_requests(
    services: Services, accounts: Accounts, client: TestClient
) -> None:
    accounts.create_user("karim", "facilitator", PASSWORD, person="Karim Benali")
    wrong = client.post("/api/auth/login", json={"login": "karim", "password": "not-his-password"})
    assert (wrong.status_code, wrong.json()["error_code"]) == (401, "unauthorized")
    assert SESSION_COOKIE not in wrong.cookies

    response = client.post("/api/auth/login", json={"login": "karim", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in ("login", "role", "person")} == {
        "login": "karim",
        "role": "facilitator",
        "person": "Karim Benali",
    }
    assert PASSWORD not in response.text
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "secure" not in cookie.lower()
    old_cookie = response.cookies[SESSION_COOKIE]
    with services.knowledge.sessions() as session:
        # Only hashes are kept: neither the cookie's value nor the CSRF token is in the records.
        [stored] = session.scalars(select(WebSessionRecord)).all()
        assert (stored.id, stored.csrf_hash) == (secret_hash(old_cookie), secret_hash(body["csrf_token"]))

    assert client.get("/api/auth/me").json()["login"] == "karim"
    note = {"text": CIRCLE, "kind": "circle", "community": "maintenance", "date": "2026-03-02"}
    assert client.post("/api/notes", json=note).status_code == 403
    assert client.post("/api/notes", json=note, headers={CSRF_HEADER: "forged"}).status_code == 403
    created = client.post("/api/notes", json=note, headers={CSRF_HEADER: body["csrf_token"]})
    assert created.status_code == 201, created.text

    assert client.post("/api/auth/logout").status_code == 403  # signing out is a change too
    assert client.post("/api/auth/logout", headers={CSRF_HEADER: body["csrf_token"]}).status_code == 204
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/api/auth/me", headers={"Cookie": f"{SESSION_COOKIE}={old_cookie}"}).status_code == 401


def test_the_cookie_is_secure_when_the_site_is_served_over_https(services: Services, accounts: Accounts) -> None:
    accounts.create_user("rh", "hr", PASSWORD)
    secure_client = TestClient(create_app(ApiSettings(https=True), services))
    response = secure_client.post("/api/auth/login", json={"login": "rh", "password": PASSWORD})
    secure_client.close()
    assert "secure" in response.headers["set-cookie"].lower()


def test_an_expired_session_is_refused(services: Services) -> None:
    late = Accounts(services.knowledge.sessions, clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(hours=13))
    accounts = Accounts(services.knowledge.sessions, session_hours=12)
    accounts.create_user("julie", "employee", PASSWORD)
    opened = accounts.open_session("julie", PASSWORD)
    assert accounts.session_viewer(opened.cookie).viewer.label == "julie"
    with pytest.raises(ApiError) as refused:
        late.session_viewer(opened.cookie)
    assert refused.value.error is ErrorCode.UNAUTHORIZED


def test_tokens_are_issued_by_admins_shown_once_stored_hashed_and_revocable(
    services: Services, accounts: Accounts, client: TestClient
) -> None:
    accounts.create_user("julie", "employee", person="Julie Fabre")
    issued = client.post("/api/users/julie/tokens", json={"name": "laptop"}, headers=ADMIN)
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]
    julie = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/auth/me", headers=julie).json()["login"] == "julie"
    with services.knowledge.sessions() as session:
        record = session.get(TokenRecord, issued.json()["id"])
        assert record is not None
        assert record.token_hash == secret_hash(token) != token
        assert record.last_used_at is not None and record.name == "laptop"
    assert client.get("/api/auth/me", headers={"Authorization": "Bearer made-up"}).status_code == 401
    assert client.delete(f"/api/tokens/{issued.json()['id']}", headers=julie).status_code == 403
    assert client.delete(f"/api/tokens/{issued.json()['id']}", headers=ADMIN).status_code == 204
    refused = client.get("/api/auth/me", headers=julie)
    assert (refused.status_code, refused.json()["error_code"]) == (401, "unauthorized")
    assert client.delete("/api/tokens/tok_unknown", headers=ADMIN).json()["error_code"] == "not_found"


def test_a_disabled_user_loses_tokens_sessions_and_login(accounts: Accounts, client: TestClient) -> None:
    created = client.post(
        "/api/users",
        json={"login": "sophie", "role": "facilitator", "password": PASSWORD, "communities": ["qualite"]},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    assert created.json() == {
        "login": "sophie",
        "role": "facilitator",
        "person": None,
        "communities": ["qualite"],
        "disabled": False,
        "has_password": True,
    }
    token = {"Authorization": f"Bearer {accounts.issue_token('sophie').token}"}
    assert client.post("/api/auth/login", json={"login": "sophie", "password": PASSWORD}).status_code == 200
    assert client.get("/api/auth/me").status_code == 200
    assert client.post("/api/users/sophie/disable", headers=ADMIN).json()["disabled"] is True
    assert client.get("/api/auth/me").status_code == 401
    assert client.get("/api/auth/me", headers=token).status_code == 401
    assert client.post("/api/auth/login", json={"login": "sophie", "password": PASSWORD}).status_code == 401
    listed = client.get("/api/users", headers=ADMIN).json()["users"]
    assert [(u["login"], u["disabled"]) for u in listed] == [("sophie", True)]
    assert "password" not in str(listed).replace("has_password", "")


def test_anonymous_callers_are_refused_but_health_and_login_stay_open(client: TestClient) -> None:
    for method, path in (("GET", "/api/notes"), ("GET", "/api/search?q=kit"), ("GET", "/api/practices")):
        response = client.request(method, path)
        assert (response.status_code, response.json()["error_code"]) == (401, "unauthorized"), path
    assert client.get("/healthz").status_code == 200
    assert client.post("/api/auth/login", json={"login": "x", "password": "y"}).status_code == 401
    assert client.get("/api/notes", headers={"Authorization": "Basic Ym9iOmJvYg=="}).status_code == 401
    # The docs offer both ways to sign in.
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyCookie"} <= set(schemes)


# What each role may do, one endpoint family per column (HTTP statuses).
RIGHTS = {
    #                upload delete-own delete-other approve reject users search
    "employee": (403, 403, 403, 403, 403, 403, 200),
    "facilitator": (201, 204, 403, 403, 403, 403, 200),
    "hr": (201, 204, 204, 200, 200, 403, 200),
    "admin": (201, 204, 204, 403, 403, 200, 200),
}


@pytest.mark.parametrize("role", sorted(RIGHTS))
def test_each_role_has_its_rights_on_each_endpoint_family(
    role: str, services: Services, accounts: Accounts, client: TestClient
) -> None:
    headers = bearer(accounts, "someone", role, "Karim Benali")
    own = ingest(services, CIRCLE, KARIM)
    other = ingest(services, CIRCLE.replace("Karim", "Sophie"), Participant("Sophie Martin", "facilitator"))
    practice_id = draft_of(services, ingest(services, CIRCLE + "\nFin.\n", Participant("Lucas Moreau", "member")))
    note = {"text": "Lucas : on graisse le joint.", "kind": "pair", "community": "maintenance", "date": "2026-03-03"}
    statuses = (
        client.post("/api/notes", json=note, headers=headers).status_code,
        client.delete(f"/api/notes/{own}", headers=headers).status_code,
        client.delete(f"/api/notes/{other}", headers=headers).status_code,
        client.post(f"/api/practices/{practice_id}/approve", headers=headers).status_code,
        client.post(f"/api/practices/{practice_id}/reject", json={"reason": "doublon"}, headers=headers).status_code,
        client.get("/api/users", headers=headers).status_code,
        client.get("/api/search", params={"q": "kit de joints"}, headers=headers).status_code,
    )
    assert statuses == RIGHTS[role]
    forbidden = client.post(f"/api/practices/{practice_id}/approve", headers=headers)
    if forbidden.status_code == 403:
        assert forbidden.json()["error_code"] == "forbidden"


def test_drafts_of_a_private_note_stay_with_the_mentor_and_hr_reviews_shared_ones(
    services: Services, accounts: Accounts, client: TestClient
) -> None:
    hr = bearer(accounts, "rh", "hr")
    mentor = bearer(accounts, "karim", "facilitator", "Karim Benali")
    mentee = bearer(accounts, "julie", "employee", "Julie Fabre")
    mentoring = ingest(
        services,
        MENTORING,
        Participant("Karim Benali", "mentor"),
        Participant("Julie Fabre", "mentee"),
        kind="mentoring",
        visibility="private",
    )
    private_draft = draft_of(services, mentoring)
    shared_draft = draft_of(services, ingest(services, CIRCLE, KARIM, visibility="community"))

    def drafts(headers: dict[str, str]) -> set[str]:
        listed = client.get("/api/practices", params={"status": "draft"}, headers=headers).json()["practices"]
        return {entry["id"] for entry in listed}

    assert drafts(hr) == {shared_draft}
    assert drafts(mentor) == {private_draft, shared_draft}
    assert drafts(mentee) == set()
    assert client.get(f"/api/practices/{private_draft}", headers=hr).status_code == 404
    assert client.post(f"/api/practices/{private_draft}/approve", headers=hr).status_code == 404
    merged = client.post(f"/api/practices/{shared_draft}/merge", json={"sources": [private_draft]}, headers=hr)
    assert merged.status_code == 404

    edited = client.patch(f"/api/practices/{private_draft}", json={"title": "Kit prêt la veille"}, headers=mentor)
    assert edited.status_code == 200 and edited.json()["title"] == "Kit prêt la veille"
    assert client.post(f"/api/practices/{private_draft}/approve", headers=mentor).status_code == 403
    assert client.patch(f"/api/practices/{shared_draft}", json={"title": "x"}, headers=mentee).status_code == 403
    assert client.post(f"/api/practices/{shared_draft}/approve", headers=hr).status_code == 200
    # Approved, a facilitator edits it no more: that is HR's job.
    assert client.patch(f"/api/practices/{shared_draft}", json={"title": "x"}, headers=mentor).status_code == 403


def test_a_facilitator_edits_only_drafts_of_sessions_they_led(
    services: Services, accounts: Accounts, client: TestClient
) -> None:
    sophie = bearer(accounts, "sophie", "facilitator", "Sophie Martin", "maintenance")
    practice_id = draft_of(services, ingest(services, CIRCLE, KARIM))
    refused = client.patch(f"/api/practices/{practice_id}", json={"title": "Kit"}, headers=sophie)
    assert refused.status_code == 404  # a draft of someone else's session is not hers to see


def test_demo_accounts_exist_for_each_role_with_their_documented_passwords(accounts: Accounts) -> None:
    assert create_demo_accounts(accounts) == [demo.login for demo in DEMO_ACCOUNTS]
    assert create_demo_accounts(accounts) == []
    assert {demo.role for demo in DEMO_ACCOUNTS} == {"employee", "facilitator", "hr", "admin"}
    for demo in DEMO_ACCOUNTS:
        assert accounts.verify_password(demo.login, demo.password).role == demo.role
