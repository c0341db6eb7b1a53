"""Name suggestions for uploaders over HTTP: only people of the shared notes the caller may read (SQLite, PG)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.accounts import Accounts
from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from capture.ingestion import NoteMetadata
from retrieval.notes import Participant

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
KARIM = Participant("Karim Benali", "facilitator")


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    # Not entered as a context manager: no extraction worker, the suggestions read the notes only.
    test_client = TestClient(create_app(ApiSettings(admin_token=TOKEN), services))
    yield test_client
    test_client.close()


@pytest.fixture
def accounts(services: Services) -> Accounts:
    return Accounts(services.knowledge.sessions)


def bearer(accounts: Accounts, login: str, role: str, person: str | None = None) -> dict[str, str]:
    accounts.create_user(login, role, person=person)
    return {"Authorization": f"Bearer {accounts.issue_token(login).token}"}


def ingest(services: Services, community: str, visibility: str, *people: Participant, kind: str = "circle") -> str:
    metadata = NoteMetadata(
        kind=kind,
        community=community,
        session_date=dt.date(2026, 3, 2),
        participants=people,
        visibility=visibility,
    )
    text = f"# Séance {community} {visibility}\n\n" + "".join(f"{p.name} : on vérifie le joint.\n" for p in people)
    return services.ingestor.ingest_text(text, metadata).note_id


@pytest.fixture
def corpus(services: Services) -> None:
    """Karim leads maintenance circles; Sophie leads a quality circle Karim is not in; Karim mentors Julie."""
    ingest(services, "maintenance", "community", KARIM, Participant("Émilie Durand", "member"))
    ingest(services, "maintenance", "public", KARIM, Participant("Lucas Moreau", "pair"), kind="pair")
    ingest(services, "qualite", "community", Participant("Sophie Martin", "facilitator"))
    ingest(
        services,
        "maintenance",
        "private",
        Participant("Karim Benali", "mentor"),
        Participant("Julie Fabre", "mentee"),
        kind="mentoring",
    )


def names(client: TestClient, headers: dict[str, str], **params: object) -> list[str]:
    response = client.get("/api/people", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [person["name"] for person in response.json()["people"]]


@pytest.mark.usefixtures("corpus")
def test_a_facilitator_is_offered_the_people_of_the_shared_notes_they_may_read(
    client: TestClient, accounts: Accounts
) -> None:
    karim = bearer(accounts, "karim", "facilitator", "Karim Benali")

    people = client.get("/api/people", headers=karim).json()["people"]

    # Karim first (two notes), then by name; Sophie's quality circle is not his to read.
    assert people == [
        {"name": "Karim Benali", "roles": ["facilitator"], "communities": ["maintenance"], "notes": 2},
        {"name": "Émilie Durand", "roles": ["member"], "communities": ["maintenance"], "notes": 1},
        {"name": "Lucas Moreau", "roles": ["pair"], "communities": ["maintenance"], "notes": 1},
    ]


@pytest.mark.usefixtures("corpus")
def test_nobody_learns_from_suggestions_who_took_part_in_a_private_session(
    client: TestClient, accounts: Accounts
) -> None:
    karim = bearer(accounts, "karim", "facilitator", "Karim Benali")
    hr = bearer(accounts, "rh", "hr")

    # The mentee appears in a mentoring note only: not even her mentor is offered her name from it, and the
    # mentoring role does not show in the mentor's roles.
    assert "Julie Fabre" not in names(client, karim) + names(client, hr) + names(client, ADMIN)
    assert names(client, karim, prefix="jul") == []
    karim_roles = client.get("/api/people", params={"prefix": "karim"}, headers=karim).json()["people"][0]["roles"]
    assert karim_roles == ["facilitator"]
    # HR reads every community's shared notes, so it is offered Sophie too.
    assert names(client, hr) == ["Karim Benali", "Émilie Durand", "Lucas Moreau", "Sophie Martin"]


@pytest.mark.usefixtures("corpus")
def test_the_prefix_matches_any_word_of_a_name_whatever_its_case_and_accents(
    client: TestClient, accounts: Accounts
) -> None:
    hr = bearer(accounts, "rh", "hr")
    assert names(client, hr, prefix="BEN") == ["Karim Benali"]
    assert names(client, hr, prefix="emi") == ["Émilie Durand"]
    assert names(client, hr, prefix="  Mar ") == ["Sophie Martin"]
    assert names(client, hr, prefix="nobody") == []
    assert names(client, hr, limit=2) == ["Karim Benali", "Émilie Durand"]


@pytest.mark.usefixtures("corpus")
def test_people_who_opted_out_are_not_offered(client: TestClient, services: Services, accounts: Accounts) -> None:
    hr = bearer(accounts, "rh", "hr")
    services.finder.set_opt_out("Lucas Moreau", True)
    assert "Lucas Moreau" not in names(client, hr)


@pytest.mark.usefixtures("corpus")
def test_suggestions_are_for_uploaders_and_bad_parameters_get_a_stable_code(
    client: TestClient, accounts: Accounts
) -> None:
    employee = bearer(accounts, "bob", "employee", "Lucas Moreau")
    assert client.get("/api/people").status_code == 401
    refused = client.get("/api/people", headers=employee)
    assert (refused.status_code, refused.json()["error_code"]) == (403, "forbidden")
    for params in ({"limit": 0}, {"limit": 101}, {"prefix": "x" * 101}):
        response = client.get("/api/people", params=params, headers=ADMIN)
        assert (response.status_code, response.json()["error_code"]) == (422, "invalid_request")
