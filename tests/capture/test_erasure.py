"""The right to erasure: the person is gone from every store, and from every byte under the data directory."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from api.services import Services
from capture.chunking import chunk_blocks
from capture.erasure import PSEUDONYM_PREFIX, NameRewriter, note_blocks, private_words
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from capture.parsing import parse_document
from capture.sniffing import sniff
from retrieval.access import Viewer
from retrieval.audit import PERSON_ERASED, AuditFilters
from retrieval.embedders import Vectors
from retrieval.errors import Forbidden, PersonNotFound
from retrieval.lexical import analyse
from retrieval.notes import Participant
from retrieval.records import Base, ChunkRecord, FeedbackRecord, PersonRecord, QuestionRecord, UserRecord
from tests.byte_scan import float_bytes_in
from tests.conftest import DATA, ServicesFactory

ADMIN = Viewer.administrator()
NAME = "Hélène Dubreuil"
HELENE = Participant(NAME, "mentee")
MARC = Participant("Marc Lefort", "mentor")
SOPHIE = Participant("Sophie Martin", "facilitator")
LUCAS = Participant("Lucas Moreau", "pair")
LOGIN = "hd42"

MENTORING = """# Mentorat sécurité électrique

Hélène : je ne savais pas quand consigner l'armoire avant d'intervenir sur le variateur.

Marc : on consigne toujours l'armoire et on vérifie l'absence de tension au multimètre, même pour deux minutes.

- Astuce de Hélène Dubreuil : garder le cadenas personnel accroché à la ceinture.
- Marc : noter l'heure de consignation sur l'étiquette.
"""
CIRCLE = """# Cercle maintenance — graissage

Sophie : on graisse les paliers du convoyeur chaque lundi, avant la première équipe.

Dubreuil a proposé une fiche de graissage plastifiée accrochée près de la machine.
"""
MENTIONED = """# Cercle sécurité

Sophie : comme l'a montré HÉLÈNE DUBREUIL, on étiquette chaque cadenas au nom de son porteur.
"""
SURVIVOR = """# Binôme commercial

Lucas : on montre l'indice du coût de la résine mois par mois pour négocier la hausse de prix.
"""
# Spellings of the name as they may sit in a file: UTF-8 in any case, and JSON-escaped (ASCII JSON columns).
NEEDLES = [
    spelling.encode("utf-8")
    for spelling in ("Hélène", "HÉLÈNE", "hélène", "Dubreuil", "DUBREUIL", "dubreuil", r"H\u00e9l\u00e8ne")
]


def ingest(services: Services, text: str, kind: str, participants: tuple[Participant, ...], **extra: Any) -> str:
    metadata = NoteMetadata(
        kind=kind, community="maintenance", session_date=dt.date(2026, 4, 2), participants=participants, **extra
    )
    return services.ingestor.ingest_text(text, metadata).note_id


def corpus(services: Services) -> dict[str, str]:
    """Four notes: hers (private mentoring, community circle), one naming her, one without her."""
    return {
        "mentoring": ingest(services, MENTORING, "mentoring", (HELENE, MARC)),
        "circle": ingest(services, CIRCLE, "circle", (SOPHIE, Participant(NAME, "member"))),
        "mentioned": ingest(services, MENTIONED, "circle", (SOPHIE,), visibility="public"),
        "survivor": ingest(services, SURVIVOR, "pair", (LUCAS,), visibility="public"),
    }


def approved_entry(services: Services, note_id: str) -> str:
    """An approved entry drawn from her note, with her name in its text and quote, credited to her."""
    source = note_source(services.knowledge, note_id)
    drafted = PracticeDraft(
        title="La méthode d'Hélène Dubreuil : un cadenas personnel",
        practice="Garder le cadenas personnel accroché à la ceinture, comme le fait Hélène Dubreuil.",
        contributors=(HELENE, MARC),
        evidence=(
            Evidence("practice", "Astuce de Hélène Dubreuil : garder le cadenas personnel accroché à la ceinture."),
            Evidence("why", "on vérifie l'absence de tension au multimètre"),
        ),
        extracted_by="test",
    )
    verified = verify_draft(drafted, source)
    assert verified is not None
    [practice_id] = services.practices.store_drafts(source, [verified], actor="test")
    services.practices.approve(practice_id, ADMIN)
    return practice_id


def questions(services: Services, person_id: int) -> tuple[str, str]:
    """Her question (with a rating of hers), and Marc's question that names her; both indexed for peers."""
    mine, his = uuid.uuid4().hex, uuid.uuid4().hex
    now = dt.datetime.now(dt.UTC)
    with services.knowledge.sessions.begin() as session:
        session.add(UserRecord(login=LOGIN, role="employee", person_id=person_id))
        for question_id, asker, owner, text in (
            (mine, LOGIN, person_id, "Quand faut-il consigner l'armoire du variateur ?"),
            (his, "marc", None, f"Qui a eu l'idée du cadenas, {NAME} ?"),
        ):
            session.add(
                QuestionRecord(
                    id=question_id,
                    asked_at=now,
                    asker=asker,
                    person_id=owner,
                    question=text,
                    language="fr",
                    engine="test",
                    answered=True,
                    confidence=0.5,
                    answer=f"Voir la note de mentorat ({text}).",
                    sources=[],
                )
            )
        session.flush()
        session.add(FeedbackRecord(question_id=his, rating=1, comment="merci", author=LOGIN, at=now))
    store = services.eraser.question_store
    assert store is not None
    texts = ["Quand faut-il consigner l'armoire du variateur ?", f"Qui a eu l'idée du cadenas, {NAME} ?"]
    store.upsert([mine, his], services.knowledge.embedder.embed_documents(texts), [{"person_id": 1}] * 2)
    return mine, his


def derived_vectors(services: Services, note_ids: list[str], practice_id: str) -> dict[str, Vectors]:
    """The vectors embedded from text she contributed: her turns and chunks naming her, the entry, its draft."""
    found: dict[str, Vectors] = {}
    for note_id in note_ids:
        for chunk in services.knowledge.get_note(note_id, ADMIN, audited=False).chunks:
            if chunk.speaker == NAME or any(word in chunk.text.casefold() for word in ("hélène", "dubreuil")):
                found.update(services.knowledge.store.get_vectors([chunk.id]))
    found.update({f"entry:{k}": v for k, v in services.practice_index.store.get_vectors([practice_id]).items()})
    found.update({f"group:{k}": v for k, v in services.practices.group_store.get_vectors([practice_id]).items()})
    return found


def files_under(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


def sql_values(services: Services) -> list[tuple[str, str, str]]:
    """Every value of every column of every table, as text (JSON written out, accents as they are)."""
    values = []
    with services.knowledge.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                for column, value in row._mapping.items():
                    shown = json.dumps(value, ensure_ascii=False) if isinstance(value, list | dict) else str(value)
                    values.append((table.name, str(column), shown))
    return values


def test_an_erased_person_leaves_nothing_behind(
    services: Services, make_services: ServicesFactory, database_url: str | None
) -> None:
    notes = corpus(services)
    practice_id = approved_entry(services, notes["mentoring"])
    with services.knowledge.sessions() as session:
        person_id = session.scalars(select(PersonRecord.id).where(PersonRecord.name == NAME)).one()
    mine, his = questions(services, person_id)
    old_vectors = derived_vectors(services, [notes["mentoring"], notes["circle"], notes["mentioned"]], practice_id)
    old_chunk_ids = {
        c.id
        for key in ("mentoring", "circle", "mentioned")
        for c in services.knowledge.get_note(notes[key], ADMIN).chunks
    }
    survivor_vector = next(
        iter(
            services.knowledge.store.get_vectors(
                [c.id for c in services.knowledge.get_note(notes["survivor"], ADMIN).chunks]
            ).values()
        )
    )
    data_dir = services.retrieval.data_dir
    before = files_under(data_dir)
    # The scan sees the name and the vectors before the erasure: it can see them.
    assert any(needle in data for data in before.values() for needle in NEEDLES)
    assert any(float_bytes_in(data, vector) for data in before.values() for vector in old_vectors.values())
    assert len(old_vectors) >= 5

    report = services.erase_person(NAME, ADMIN)

    pseudonym = report.pseudonym
    assert pseudonym.startswith(PSEUDONYM_PREFIX)
    assert (report.notes_rewritten, report.questions_deleted, report.feedback_deleted) == (3, 1, 1)
    assert report.accounts_unlinked == 1

    # SQL: no table, no column holds the name or a word of it; her login is left only on her (unlinked) account.
    values = sql_values(services)
    assert [v for v in values if any(word in v[2].casefold() for word in ("hélène", "dubreuil"))] == []
    assert [v[:2] for v in values if LOGIN in v[2]] == [("users", "login")]
    # Files: nothing under the data directory (SQLite file and WAL, Chroma, originals) holds the name or her vectors.
    after = files_under(data_dir)
    assert [(f, n) for f, data in after.items() for n in NEEDLES if n in data] == []
    assert [(f, k) for f, data in after.items() for k, v in old_vectors.items() if float_bytes_in(data, v)] == []
    # ... while the scan still finds what survives: the other note's speaker and one of its vectors.
    assert any(b"Lucas" in data for data in after.values())
    assert any(float_bytes_in(data, survivor_vector) for data in after.values())
    assert all(len(data) == 0 for name, data in after.items() if name.endswith("-wal"))

    # Chroma, through its API: the old chunks are gone, and no stored vector is one of hers.
    stores = services.eraser.collections
    assert not old_chunk_ids & services.knowledge.store.all_ids()
    for store in stores:
        ids = sorted(store.all_ids())
        kept = np.asarray(list(store.get_vectors(ids).values())) if ids else np.zeros((0, 1))
        for vector in old_vectors.values():
            if kept.size and kept.shape[1] == len(vector):
                similarity = kept @ vector / (np.linalg.norm(kept, axis=1) * np.linalg.norm(vector))
                assert float(similarity.max()) < 0.99999
    question_store = services.eraser.question_store
    assert question_store is not None
    assert question_store.get_vectors([mine, his]) == {}

    # The lexical index: in this process, and rebuilt in a fresh one.
    terms = analyse(NAME, "fr")
    lexical = services.knowledge.catalog.lexical
    assert not set(terms) & set(lexical._postings)  # no dead postings either: the index was built afresh
    with services.knowledge.sessions() as session:
        assert lexical.ids() == set(session.scalars(select(ChunkRecord.id)))
    fresh = make_services(database_url=database_url, data_dir=data_dir)
    fresh.knowledge.catalog.refresh()
    assert fresh.knowledge.catalog.lexical.search(terms, 10) == []

    # The notes keep working: pseudonymised, re-chunked with exact offsets, searchable, their originals gone.
    note = services.knowledge.get_note(notes["mentoring"], ADMIN)
    assert Participant(pseudonym, "mentee") in note.summary.participants
    assert all(note.text[c.start : c.end] == c.text for c in note.chunks)
    assert note.chunks[0].speaker == pseudonym and note.chunks[0].text.startswith(f"{pseudonym} :")
    assert f"Astuce de {pseudonym} :" in note.text
    assert note.summary.visibility == "private"
    marc = Viewer(label="marc", person_name="Marc Lefort")
    hits = services.searcher.search("consigner l'armoire avant d'intervenir sur le variateur", marc, k=3)
    assert hits and hits[0].note_id == notes["mentoring"]
    assert f"{pseudonym} a proposé" in services.knowledge.get_note(notes["circle"], ADMIN).text
    assert pseudonym in services.knowledge.get_note(notes["mentioned"], ADMIN).text
    assert services.knowledge.original_path(notes["mentoring"], ADMIN) is None
    originals = {p.name.split(".")[0] for p in services.retrieval.originals_dir.iterdir()}
    assert originals == {notes["survivor"]}

    # The entry: credited to the pseudonym, quotes re-anchored in the new text, history says what happened.
    entry = services.practices.get(practice_id, ADMIN)
    assert [p.name for p in entry.contributors] == [pseudonym, "Marc Lefort"]
    assert entry.status == "approved" and pseudonym in entry.title
    assert all(note.text[e.start : e.end] == e.quote for e in entry.evidence)
    assert services.practices.history(practice_id, ADMIN)[-1].action == "pseudonymised"
    found = services.practice_index.search("cadenas personnel à la ceinture", ADMIN, k=1)
    assert [hit.practice_id for hit in found] == [practice_id]

    # People, accounts, questions: her row is gone, a pseudonym that is never suggested takes her place.
    with services.knowledge.sessions() as session:
        assert session.scalars(select(PersonRecord).where(PersonRecord.name == pseudonym)).one().opted_out
        assert session.get(PersonRecord, person_id) is None
        assert session.scalars(select(UserRecord.person_id).where(UserRecord.login == LOGIN)).one() is None
        assert session.get(QuestionRecord, mine) is None
        kept_question = session.get(QuestionRecord, his)
        assert kept_question is not None and pseudonym in kept_question.question
        assert session.scalars(select(FeedbackRecord)).all() == []

    # The audit log says who erased whom, without the name.
    [erased] = services.audit.list_entries(ADMIN, AuditFilters(action=PERSON_ERASED))
    assert (erased.actor, erased.target_id) == ("admin", pseudonym)
    assert "Dubreuil" not in json.dumps(erased.as_json(), ensure_ascii=False)
    with pytest.raises(PersonNotFound):
        services.erase_person(NAME, ADMIN)


def test_only_admins_erase(services: Services) -> None:
    ingest(services, SURVIVOR, "pair", (LUCAS,))
    with pytest.raises(Forbidden):
        services.erase_person("Lucas Moreau", Viewer(label="lucas", person_name="Lucas Moreau"))
    assert services.knowledge.list_notes(ADMIN)[0].participants == (LUCAS,)


@pytest.mark.parametrize(
    "name", ["note.md", "note.txt", "note.html", "note.docx", "note.odt", "note.pdf", "note_en.md"]
)
def test_a_stored_note_text_gives_back_its_blocks(name: str) -> None:
    data = (DATA / name).read_bytes()
    blocks = parse_document(data, sniff(data, 10**8, 100))
    original = chunk_blocks(blocks, (Participant("Karim Benali", "member"),))
    sections = {c.section for c in original.chunks if c.section}
    again = chunk_blocks(note_blocks(original.text, sections), (Participant("Karim Benali", "member"),))
    assert again == original


def test_a_paragraph_starting_like_an_item_stays_a_paragraph() -> None:
    text = "- un item\n\n- un paragraphe qui commence par un tiret"
    assert [b.kind for b in note_blocks(text, ())] == ["item", "paragraph"]
    assert chunk_blocks(note_blocks(text, ())).text == text


def test_the_rewriter_replaces_the_name_and_only_the_words_no_one_else_has() -> None:
    words = private_words("Marie De La Tour", ["Marie Curie"])
    assert words == ["Tour"]  # "Marie" is a namesake's too, "De" and "La" are stop words
    rewrite = NameRewriter("Marie De La Tour", "P-1").with_words(words)
    text = "MARIE DE LA TOUR et Marie ont vu la tour ; Tour a dit oui, TOUR aussi"
    assert rewrite.text(text) == "P-1 et Marie ont vu la tour ; P-1 a dit oui, P-1 aussi"
    assert rewrite({"a": ["Marie  De La Tour"], "b": 3, "c": None}) == {"a": ["P-1"], "b": 3, "c": None}
