"""The review lifecycle of best-practice entries, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from api.services import Services
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from capture.review import PracticeFilters, PracticeNotFound, ReviewConflict, ReviewForbidden
from retrieval.access import Viewer
from retrieval.notes import Participant

HR = Viewer.administrator()
KARIM = Participant("Karim Benali", "facilitator")
SOPHIE = Participant("Sophie Martin", "member")
CIRCLE = """# Cercle maintenance

Karim : pour changer le joint sans arrêter la ligne, on prépare le kit complet la veille.

Sophie : sinon on perd vingt minutes à chercher les pièces.
"""
PAIR = """# Binôme terrain

Lucas: the trick is to prepare the full seal kit the day before the changeover.
"""


def ingest(services: Services, text: str, **kwargs: object) -> str:
    defaults: dict[str, object] = {
        "kind": "circle",
        "community": "maintenance",
        "session_date": dt.date(2026, 3, 1),
        "participants": (KARIM, SOPHIE),
        "visibility": "community",
    }
    defaults.update(kwargs)
    return services.ingestor.ingest_text(text, NoteMetadata(**defaults)).note_id  # type: ignore[arg-type]


def draft(
    practice: str, quote: str, contributor: Participant, title: str = "Préparer le kit la veille"
) -> PracticeDraft:
    return PracticeDraft(
        title=title,
        practice=practice,
        rationale="On ne perd pas de temps à chercher les pièces.",
        contributors=(contributor,),
        evidence=(Evidence("practice", quote), Evidence("why", "sinon on perd vingt minutes")),
        extracted_by="test",
    )


def store(services: Services, note_id: str, drafts: list[PracticeDraft]) -> list[str]:
    note = note_source(services.knowledge, note_id)
    verified = [d for d in (verify_draft(x, note) for x in drafts) if d is not None]
    return services.practices.store_drafts(note, verified, actor="test")


def test_a_draft_keeps_exact_evidence_and_credited_contributors(services: Services) -> None:
    note_id = ingest(services, CIRCLE)
    [practice_id] = store(
        services, note_id, [draft("Préparer le kit complet la veille.", "on prépare le kit complet la veille", KARIM)]
    )
    entry = services.practices.get(practice_id, HR)
    text = services.knowledge.get_note(note_id, HR).text
    assert entry.status == "draft"
    assert [p.name for p in entry.contributors] == ["Karim Benali"]
    assert {e.claim for e in entry.evidence} == {"practice", "why"}
    assert all(text[e.start : e.end] == e.quote for e in entry.evidence)
    assert store(
        services, note_id, [draft("Préparer le kit complet la veille.", "on prépare le kit complet la veille", KARIM)]
    ) == [practice_id]
    assert len(services.practices.list_practices(HR)) == 1


def test_approve_publishes_and_reject_needs_a_reason(services: Services) -> None:
    note_id = ingest(services, CIRCLE, visibility="public")
    [practice_id] = store(
        services, note_id, [draft("Préparer le kit complet la veille.", "on prépare le kit complet la veille", KARIM)]
    )
    assert services.practice_index.search("kit de joints préparé la veille", Viewer.public()) == []
    approved = services.practices.approve(practice_id, HR)
    assert approved.status == "approved"
    assert approved.review_due == dt.date.today() + dt.timedelta(days=365)
    hits = services.practice_index.search("how to prepare the seal kit", Viewer.public(), language="en")
    assert [hit.practice_id for hit in hits] == [practice_id]
    with pytest.raises(Exception, match="reason"):
        services.practices.reject(practice_id, HR, "  ")
    services.practices.reject(practice_id, HR, "trop vague")
    assert services.practice_index.search("kit de joints", Viewer.public()) == []
    with pytest.raises(ReviewConflict):
        services.practices.approve(practice_id, HR)
    actions = [event.action for event in services.practices.history(practice_id, HR)]
    assert actions == ["drafted", "approved", "rejected"]


def test_edits_are_kept_with_before_and_after(services: Services) -> None:
    note_id = ingest(services, CIRCLE)
    [practice_id] = store(services, note_id, [draft("Préparer le kit.", "on prépare le kit complet la veille", KARIM)])
    services.practices.edit(practice_id, HR, {"title": "Kit de joints prêt la veille", "tags": ["joint", "SMED"]})
    event = services.practices.history(practice_id, HR)[-1]
    assert event.action == "edited"
    assert event.before is not None and event.before["title"] == "Préparer le kit la veille"
    assert event.after is not None and event.after["tags"] == ["joint", "SMED"]
    with pytest.raises(Exception, match="cannot edit"):
        services.practices.edit(practice_id, HR, {"status": "approved"})


def test_only_hr_reviews_and_drafts_are_seen_by_hr_and_the_facilitator(services: Services) -> None:
    note_id = ingest(services, CIRCLE)
    [practice_id] = store(services, note_id, [draft("Préparer le kit.", "on prépare le kit complet la veille", KARIM)])
    facilitator = Viewer(label="karim", person_name="Karim Benali", communities=frozenset({"maintenance"}))
    member = Viewer(label="sophie", person_name="Sophie Martin", communities=frozenset({"maintenance"}))
    assert [p.id for p in services.practices.list_practices(facilitator)] == [practice_id]
    assert services.practices.list_practices(member) == []
    with pytest.raises(PracticeNotFound):
        services.practices.get(practice_id, member)
    with pytest.raises(ReviewForbidden):
        services.practices.approve(practice_id, facilitator)


def test_an_entry_from_a_private_note_stays_private_once_approved(services: Services) -> None:
    note_id = ingest(services, CIRCLE, kind="mentoring", visibility=None)
    [practice_id] = store(services, note_id, [draft("Préparer le kit.", "on prépare le kit complet la veille", KARIM)])
    services.practices.approve(practice_id, HR)
    outsider = Viewer(label="x", person_name="Nadia Ferrand", communities=frozenset({"maintenance"}))
    mentee = Viewer(label="sophie", person_name="Sophie Martin")
    assert services.practices.list_practices(outsider, PracticeFilters(status="approved")) == []
    assert services.practice_index.search("kit la veille", outsider) == []
    assert [h.practice_id for h in services.practice_index.search("kit la veille", mentee)] == [practice_id]


def test_duplicates_across_notes_and_languages_are_grouped_then_merged(services: Services) -> None:
    circle = ingest(services, CIRCLE)
    pair = ingest(
        services,
        PAIR,
        kind="pair",
        participants=(Participant("Lucas Moreau", "pair"),),
        session_date=dt.date(2026, 4, 2),
    )
    [first] = store(
        services,
        circle,
        [
            draft(
                "Préparer le kit de joints complet la veille du changement.",
                "on prépare le kit complet la veille",
                KARIM,
            )
        ],
    )
    second_draft = PracticeDraft(
        title="Prepare the seal kit the day before",
        practice="Prepare the full seal kit the day before the changeover.",
        contributors=(Participant("Lucas Moreau", "pair"),),
        evidence=(Evidence("practice", "prepare the full seal kit the day before the changeover"),),
        extracted_by="test",
        language="en",
    )
    [second] = store(services, pair, [second_draft])
    entries = {e.id: e for e in services.practices.list_practices(HR)}
    assert entries[second].group_id == entries[first].group_id
    assert (entries[first].corroboration_notes, entries[first].corroboration_people) == (2, 2)

    merged = services.practices.merge(first, [second], HR)
    assert {e.note_id for e in merged.evidence} == {circle, pair}
    assert {p.name for p in merged.contributors} == {"Karim Benali", "Lucas Moreau"}
    assert services.practices.get(second, HR).status == "merged"
    assert services.practices.get(second, HR).merged_into == first


def test_supersede_keeps_the_old_entry_readable(services: Services) -> None:
    note_id = ingest(services, CIRCLE, visibility="public")
    old, new = store(
        services,
        note_id,
        [
            draft("Préparer le kit la veille.", "on prépare le kit complet la veille", KARIM),
            draft(
                "Vérifier les pièces.", "sinon on perd vingt minutes à chercher les pièces", SOPHIE, title="Vérifier"
            ),
        ],
    )
    services.practices.approve(old, HR)
    with pytest.raises(ReviewConflict):
        services.practices.supersede(old, new, HR)
    services.practices.approve(new, HR)
    superseded = services.practices.supersede(old, new, HR)
    assert superseded.status == "superseded"
    assert superseded.superseded_by == new
    assert [h.practice_id for h in services.practice_index.search("kit pièces", Viewer.public())] == [new]


def test_a_changed_or_deleted_source_settles_its_entries(services: Services) -> None:
    note_id = ingest(services, CIRCLE, external_id="c-1")
    kept, dropped = store(
        services,
        note_id,
        [
            draft("Préparer le kit la veille.", "on prépare le kit complet la veille", KARIM),
            draft("Chercher moins.", "sinon on perd vingt minutes", SOPHIE, title="Moins chercher"),
        ],
    )
    services.practices.approve(kept, HR)
    changed = CIRCLE.replace("sinon on perd vingt minutes à chercher les pièces", "tout est prêt.")
    changed = "Introduction ajoutée.\n\n" + changed
    ingest(services, changed, external_id="c-1")
    text = services.knowledge.get_note("c-1", HR).text
    entry = services.practices.get(kept, HR)
    assert [e.quote for e in entry.evidence] == ["on prépare le kit complet la veille"]
    assert all(text[e.start : e.end] == e.quote for e in entry.evidence)
    assert entry.review_due == dt.date.today()
    with pytest.raises(PracticeNotFound):
        services.practices.get(dropped, HR)

    services.delete_note(note_id, HR)
    after = services.practices.get(kept, HR)
    assert after.evidence == ()
    assert after.status == "draft"
    assert services.practice_index.search("kit la veille", HR) == []
