"""Deleting a note cleans up what was derived from it; derived entries inherit their sources' visibility."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from api.services import Services
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from capture.review import PracticeFilters, PracticeNotFound
from retrieval.access import Viewer
from retrieval.notes import Participant
from retrieval.records import ChunkRecord, JobRecord

HR = Viewer.administrator()
KARIM = Participant("Karim Benali", "mentor")
NORA = Participant("Nora Haddad", "mentee")
LUCAS = Participant("Lucas Moreau", "pair")
MENTORING = """# Mentorat consignation

Karim : avant d'ouvrir l'armoire électrique, on consigne et on vérifie l'absence de tension.

Nora : et je note l'heure de consignation sur l'étiquette du cadenas.
"""
PAIR = """# Binôme maintenance

Lucas : on consigne l'armoire et on vérifie l'absence de tension avant d'ouvrir.
"""


def ingest(services: Services, text: str, kind: str, participants: tuple[Participant, ...], **extra: object) -> str:
    metadata = NoteMetadata(
        kind=kind,
        community="maintenance",
        session_date=dt.date(2026, 4, 2),
        participants=participants,
        **extra,  # type: ignore[arg-type]
    )
    return services.ingestor.ingest_text(text, metadata).note_id


def entry(services: Services, note_id: str, practice: str, quote: str, who: Participant) -> str:
    source = note_source(services.knowledge, note_id)
    drafted = verify_draft(
        PracticeDraft(
            title=practice[:40],
            practice=practice,
            contributors=(who,),
            evidence=(Evidence("practice", quote),),
            extracted_by="test",
        ),
        source,
    )
    assert drafted is not None
    [practice_id] = services.practices.store_drafts(source, [drafted], actor="test")
    return practice_id


def test_deleting_a_note_removes_what_came_only_from_it_and_settles_the_rest(services: Services) -> None:
    mentoring = ingest(services, MENTORING, "mentoring", (KARIM, NORA))
    pair = ingest(services, PAIR, "pair", (LUCAS,), visibility="public")
    only_draft = entry(services, mentoring, "Noter l'heure de consignation.", "je note l'heure de consignation", NORA)
    only_approved = entry(services, mentoring, "Consigner avant d'ouvrir.", "on consigne et on vérifie", KARIM)
    shared = entry(services, mentoring, "Vérifier l'absence de tension.", "on vérifie l'absence de tension", KARIM)
    other = entry(services, pair, "Verify there is no voltage.", "on vérifie l'absence de tension avant", LUCAS)
    services.practices.merge(shared, [other], HR)
    for practice_id in (only_approved, shared):
        services.practices.approve(practice_id, HR)
    chunk_ids = [c.id for c in services.knowledge.get_note(mentoring, HR).chunks]
    assert services.practices.group_store.get_vectors([only_draft])

    services.delete_note(mentoring, HR)

    with services.knowledge.sessions() as session:
        assert session.scalar(select(func.count()).where(ChunkRecord.note_id == mentoring)) == 0
        assert session.scalar(select(func.count()).where(JobRecord.note_id == mentoring)) == 0
    assert not set(chunk_ids) & services.knowledge.store.all_ids()
    assert not set(chunk_ids) & services.knowledge.catalog.lexical.ids()
    assert not list(services.retrieval.originals_dir.glob(f"{mentoring}.*"))
    # A draft drawn only from the note goes, with its grouping vector.
    with pytest.raises(PracticeNotFound):
        services.practices.get(only_draft, HR)
    assert services.practices.group_store.get_vectors([only_draft]) == {}
    # An approved entry left without evidence is withdrawn from search and back in review.
    alone = services.practices.get(only_approved, HR)
    assert (alone.status, alone.evidence, alone.review_due) == ("draft", (), dt.date.today())
    assert services.practice_index.store.get_vectors([only_approved]) == {}
    # An approved entry with other evidence keeps it, stays published, and falls due.
    kept = services.practices.get(shared, HR)
    assert kept.status == "approved" and kept.review_due == dt.date.today()
    assert {e.note_id for e in kept.evidence} == {pair}
    assert [h.practice_id for h in services.practice_index.search("absence de tension", Viewer.public())] == [shared]


def test_an_entry_is_as_private_as_its_most_private_source(services: Services) -> None:
    mentoring = ingest(services, MENTORING, "mentoring", (KARIM, NORA))
    pair = ingest(services, PAIR, "pair", (LUCAS,), visibility="public")
    private = entry(services, mentoring, "Vérifier l'absence de tension.", "on vérifie l'absence de tension", KARIM)
    public = entry(services, pair, "Verify there is no voltage.", "on vérifie l'absence de tension avant", LUCAS)
    services.practices.approve(public, HR)
    outsider = Viewer(label="x", person_name="Nadia Ferrand", communities=frozenset({"maintenance"}))
    mentee = Viewer(label="nora", person_name="Nora Haddad")
    # A draft of a private note: HR only (its facilitator, if it had one).
    assert [p.id for p in services.practices.list_practices(outsider)] == [public]
    with pytest.raises(PracticeNotFound):
        services.practices.get(private, outsider)

    # Merged into the public entry, the private evidence makes the whole entry private.
    services.practices.merge(public, [private], HR)
    assert services.practices.list_practices(outsider, PracticeFilters(status="approved")) == []
    assert services.practice_index.search("absence de tension", outsider) == []
    with pytest.raises(PracticeNotFound):
        services.practices.get(public, Viewer.public())
    lucas = Viewer(label="lucas", person_name="Lucas Moreau")  # took part in the public source only
    assert services.practice_index.search("absence de tension", lucas) == []
    # Who may read every source still finds it.
    assert [h.practice_id for h in services.practice_index.search("absence de tension", mentee)] == [public]
