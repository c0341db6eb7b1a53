"""Who may see what: roles, accounts' communities and the fail-closed scope, over real records (SQLite, PostgreSQL)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from api.services import Services
from capture.ingestion import NoteMetadata
from retrieval.access import ROLES, AccessScope, Viewer, account_viewer, resolve_scope
from retrieval.errors import NoteNotFound
from retrieval.notes import Participant
from retrieval.records import MembershipRecord, PersonRecord, UserRecord

PUBLIC = "# Binôme commercial\n\nLucas : on montre l'indice du prix de la résine mois par mois au client.\n"
MAINTENANCE = "# Cercle maintenance\n\nKarim : on prépare le kit de joints la veille du changement de format.\n"
QUALITY = "# Cercle qualité\n\nSophie : on recalibre la caméra de vision chaque lundi matin.\n"
MENTORING = "# Mentorat\n\nJulie : je pense quitter l'équipe en juin, je n'ose pas le dire.\n"
QUERY = "prix résine kit joints caméra vision quitter équipe"


def ingest(services: Services, text: str, kind: str, community: str, visibility: str, *people: Participant) -> str:
    metadata = NoteMetadata(
        kind=kind,
        community=community,
        session_date=dt.date(2026, 3, 2),
        participants=people,
        visibility=visibility,
    )
    return services.ingestor.ingest_text(text, metadata).note_id


@pytest.fixture
def corpus(services: Services) -> dict[str, str]:
    """One note of each visibility: public, community (two communities) and a private mentoring session."""
    return {
        "public": ingest(services, PUBLIC, "pair", "commercial", "public", Participant("Lucas Moreau", "pair")),
        "maintenance": ingest(
            services,
            MAINTENANCE,
            "circle",
            "maintenance",
            "community",
            Participant("Karim Benali", "facilitator"),
            Participant("Julie Fabre", "member"),
        ),
        "quality": ingest(
            services, QUALITY, "circle", "qualite", "community", Participant("Sophie Martin", "facilitator")
        ),
        "private": ingest(
            services,
            MENTORING,
            "mentoring",
            "qualite",
            "private",
            Participant("Karim Benali", "mentor"),
            Participant("Julie Fabre", "mentee"),
        ),
    }


def add_user(services: Services, login: str, role: str, person: str | None = None, *communities: str) -> Viewer:
    """An account written straight to the records, and the viewer it acts as."""
    with services.knowledge.sessions.begin() as session:
        user = UserRecord(login=login, role=role)
        if person is not None:
            user.person_id = session.scalar(select(PersonRecord.id).where(PersonRecord.name == person))
        user.memberships = [MembershipRecord(community=c) for c in communities]
        session.add(user)
    with services.knowledge.sessions() as session:
        record = session.scalars(select(UserRecord).where(UserRecord.login == login)).one()
        return account_viewer(session, record)


def visible(services: Services, viewer: Viewer) -> set[str]:
    """The notes a viewer finds, checked to be the same by listing and by hybrid search."""
    listed = {note.id for note in services.knowledge.list_notes(viewer)}
    searched = {hit.note_id for hit in services.searcher.search(QUERY, viewer, k=20)}
    assert searched == listed
    return listed


def test_each_role_sees_what_the_policy_says(services: Services, corpus: dict[str, str]) -> None:
    viewers = {
        "member": add_user(services, "ana", "employee", None, "maintenance"),
        "outsider": add_user(services, "bob", "employee", None, "logistique"),
        "mentee": add_user(services, "julie", "employee", "Julie Fabre"),
        "facilitator": add_user(services, "sophie", "facilitator", "Sophie Martin"),
        "hr": add_user(services, "rh", "hr"),
        "admin": add_user(services, "it", "admin"),
    }
    expected = {
        "member": {"public", "maintenance"},
        "outsider": {"public"},
        # Her circle makes her a member of maintenance; the private session is hers as a participant.
        "mentee": {"public", "maintenance", "private"},
        "facilitator": {"public", "quality"},
        # HR reads every community's shared notes, but not other people's private sessions.
        "hr": {"public", "maintenance", "quality"},
        # An admin over HTTP is not a reader of everything: a privacy tool gives no one a master key.
        "admin": {"public"},
    }
    for name, viewer in viewers.items():
        assert visible(services, viewer) == {corpus[key] for key in expected[name]}, name
    assert visible(services, Viewer.administrator()) == set(corpus.values())
    assert visible(services, Viewer.public()) == {corpus["public"]}
    with pytest.raises(NoteNotFound):
        services.knowledge.get_note(corpus["private"], viewers["hr"])
    with pytest.raises(NoteNotFound):
        services.knowledge.get_note(corpus["maintenance"], viewers["outsider"])


def test_an_account_belongs_to_its_memberships_and_the_communities_of_its_shared_sessions(
    services: Services, corpus: dict[str, str]
) -> None:
    julie = add_user(services, "julie", "employee", "Julie Fabre", "data")
    # The maintenance circle counts; the private mentoring session (community qualite) does not.
    assert julie.communities == frozenset({"data", "maintenance"})
    assert julie.person_name == "Julie Fabre"
    assert (julie.label, julie.role) == ("julie", "employee")


def test_an_unknown_role_sees_nothing_not_even_public_notes(services: Services, corpus: dict[str, str]) -> None:
    ghost = add_user(services, "ghost", "superuser", "Julie Fabre", "maintenance")
    assert visible(services, ghost) == set()
    assert not (ghost.may_upload or ghost.may_review or ghost.may_manage_accounts or ghost.sees_community_notes)
    with services.knowledge.sessions() as session:
        assert resolve_scope(session, ghost) == AccessScope.nothing()


def test_an_empty_community_membership_opens_nothing(services: Services, corpus: dict[str, str]) -> None:
    assert visible(services, Viewer(label="x", communities=frozenset({""}))) == {corpus["public"]}


@pytest.mark.parametrize(
    ("role", "upload", "review", "accounts", "all_communities"),
    [
        ("employee", False, False, False, False),
        ("facilitator", True, False, False, False),
        ("hr", True, True, False, True),
        ("admin", True, False, True, False),
        ("public", False, False, False, False),
        ("root", False, False, False, False),
    ],
)
def test_capabilities_of_each_role(
    role: str, upload: bool, review: bool, accounts: bool, all_communities: bool
) -> None:
    viewer = Viewer(label="x", role=role)
    assert (viewer.may_upload, viewer.may_review, viewer.may_manage_accounts, viewer.sees_community_notes) == (
        upload,
        review,
        accounts,
        all_communities,
    )


def test_the_local_administrator_may_do_everything_and_the_public_viewer_nothing() -> None:
    admin = Viewer.administrator()
    assert admin.may_upload and admin.may_review and admin.may_manage_accounts and admin.may_delete_note([])
    public = Viewer.public()
    assert not (public.may_upload or public.may_review or public.may_manage_accounts or public.may_delete_note([]))
    assert set(ROLES) == {"employee", "facilitator", "hr", "admin"}


def test_a_facilitator_deletes_only_the_notes_they_took_part_in() -> None:
    karim = Viewer(label="karim", person_name="Karim Benali", role="facilitator")
    assert karim.may_delete_note(["Karim Benali", "Julie Fabre"])
    assert not karim.may_delete_note(["Sophie Martin"])
    assert not Viewer(label="x", role="facilitator").may_delete_note(["Sophie Martin"])
    assert Viewer(label="rh", role="hr").may_delete_note([])


@pytest.mark.parametrize(
    ("visibility", "community", "note_id", "allowed"),
    [
        ("public", "commercial", "n1", True),
        ("community", "maintenance", "n2", True),
        ("community", "qualite", "n3", False),
        ("community", "", "n4", False),
        ("private", "maintenance", "n5", False),
        ("private", "maintenance", "mine", True),
        ("secret", "maintenance", "n6", False),
        ("", "", "n7", False),
    ],
)
def test_the_scope_fails_closed(visibility: str, community: str, note_id: str, allowed: bool) -> None:
    scope = AccessScope(sees_everything=False, communities=frozenset({"maintenance"}), note_ids=frozenset({"mine"}))
    assert scope.allows(visibility, community, note_id) is allowed
    meta = {"visibility": visibility, "community": community, "note_id": note_id}
    assert scope.allows_metadata(meta) is allowed
    assert not AccessScope.nothing().allows(visibility, community, note_id)
    assert not AccessScope.nothing().allows_metadata({})


def test_the_empty_scope_is_a_chroma_filter_that_matches_nothing(services: Services, corpus: dict[str, str]) -> None:
    where = AccessScope.nothing().where()
    assert where is not None
    assert services.knowledge.store.query(services.knowledge.embedder.embed_query(QUERY), 10, where) == []
    assert services.knowledge.store.query(services.knowledge.embedder.embed_query(QUERY), 10, None)
