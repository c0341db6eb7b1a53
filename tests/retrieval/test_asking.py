"""Asking end to end on real services (SQLite and PostgreSQL): sources, privacy, records, feedback, HR lists."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from api.services import Services
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from retrieval.access import Viewer
from retrieval.answers import ExtractiveAnswerer
from retrieval.asking import Asker, practice_statement
from retrieval.embedders import Embedder
from retrieval.errors import Forbidden, InvalidFeedback, InvalidQuery, QuestionNotFound
from retrieval.notes import Participant
from retrieval.records import FeedbackRecord, QuestionRecord

KARIM = Participant("Karim Benali", "mentor")
JULIE = Participant("Julie Fabre", "mentee")
CIRCLE = """# Cercle maintenance — changer le joint de la TF-5 sans arrêter la ligne

Karim : On passe la TF-5 en mode maintenance à 4 cycles par minute au lieu de l'arrêter, le four reste chaud.

Karim : On retire l'ancien joint avec la spatule en PEEK, jamais avec un tournevis.

Hugo : On contrôle la température du cadre au thermomètre laser, pas à l'afficheur.
"""
RETRO = """# Pair retrospective — passing on resin price increases

Lucas: Call the buyer first, then send the letter; the letter confirms the conversation.

Lucas: Give sixty days of written notice for a price increase, applied to deliveries rather than to orders.
"""
SECRET = "Pour la gorge du joint, Julie a peur de rayer l'inox : on s'entraîne sur le cadre de rebut du magasin."
MENTORING = f"""# Mentorat maintenance — Karim / Julie — joint de la TF-5

Karim : {SECRET}

Julie : Je veux apprendre à changer le joint de la TF-5 seule avant l'été.
"""
QUESTION = "Comment change-t-on le joint de la TF-5 sans arrêter la ligne ?"
EMPLOYEE = Viewer(label="hugo", person_name="Hugo Lambert", communities=frozenset({"maintenance"}))
JULIE_VIEWER = Viewer(label="julie", person_name="Julie Fabre", communities=frozenset({"maintenance"}))


def meta(kind: str, visibility: str, participants: tuple[Participant, ...] = ()) -> NoteMetadata:
    return NoteMetadata(
        kind=kind,
        community="maintenance",
        session_date=dt.date(2026, 3, 1),
        participants=participants,
        visibility=visibility,
    )


def load(services: Services) -> dict[str, str]:
    ids = {
        "circle": services.ingestor.ingest_text(CIRCLE, meta("circle", "community")).note_id,
        "retro": services.ingestor.ingest_text(RETRO, meta("pair", "public")).note_id,
        "mentoring": services.ingestor.ingest_text(MENTORING, meta("mentoring", "private", (KARIM, JULIE))).note_id,
    }
    return ids


def asker_for(services: Services, use: Embedder) -> Asker:
    return Asker(services.knowledge.sessions, services.searcher, services.practice_index, ExtractiveAnswerer(use))


@pytest.fixture
def asker(services: Services, group_embedder: Embedder) -> Asker:
    load(services)
    return asker_for(services, group_embedder)


def test_a_question_is_answered_from_the_notes_and_recorded_without_their_text(
    services: Services, asker: Asker
) -> None:
    asked = asker.ask(QUESTION, EMPLOYEE, "fr")
    answer = asked.answer
    assert not answer.abstained and answer.language == "fr" and answer.engine == "offline:extractive-v1"
    assert any("mode maintenance" in c.quote for c in answer.citations)
    for citation in answer.citations:
        note = services.knowledge.get_note(citation.note_id, Viewer.administrator())
        assert note.text[citation.start : citation.end] == citation.quote
    with services.knowledge.sessions() as session:
        record = session.get(QuestionRecord, asked.question_id)
        assert record is not None
        assert (record.asker, record.question, record.language, record.answered) == ("hugo", QUESTION, "fr", True)
        assert record.engine == "offline:extractive-v1" and record.confidence == pytest.approx(answer.confidence)
        assert record.answer == answer.text
        # Hugo is nobody's participant yet: no person row to point at.
        assert record.person_id is None
        assert [s["n"] for s in record.sources] == [s.n for s in asked.sources]
        for stored, source in zip(record.sources, asked.sources, strict=True):
            assert set(stored) == {"n", "kind", "note_id", "entry_id", "chunk_id", "start", "end"}
            assert (stored["note_id"], stored["start"], stored["end"]) == (source.note_id, source.start, source.end)


def test_the_asker_is_resolved_to_their_person(services: Services, asker: Asker) -> None:
    asked = asker.ask(QUESTION, JULIE_VIEWER, "fr")
    with services.knowledge.sessions() as session:
        record = session.get(QuestionRecord, asked.question_id)
        assert record is not None and record.person_id is not None


def test_an_english_question_over_french_notes_is_answered_in_english(asker: Asker) -> None:
    answer = asker.ask("How do we change the TF-5 gasket without stopping the line?", EMPLOYEE, "en").answer
    assert not answer.abstained and answer.language == "en"
    assert answer.lead == "From the notes you can read (excerpts in French):"


def test_an_off_topic_question_abstains_and_is_a_knowledge_gap(asker: Asker) -> None:
    asked = asker.ask("Combien de jours de congés payés a-t-on par an ?", EMPLOYEE, "fr")
    assert asked.answer.abstained and asked.answer.citations == ()
    assert asked.answer.text.startswith("Je ne sais pas")
    [gap] = asker.list_questions(Viewer.administrator(), answered=False)
    assert gap.id == asked.question_id and not gap.answered
    assert asker.list_questions(Viewer.administrator(), answered=True) == []


def test_a_private_note_is_never_a_source_for_who_may_not_see_it(services: Services, asker: Asker) -> None:
    question = "Comment Julie s'entraîne-t-elle pour ne pas rayer la gorge du joint ?"
    ids = {note.external_id or note.id: note.id for note in services.knowledge.list_notes(Viewer.administrator())}
    asked = asker.ask(question, EMPLOYEE, "fr")
    hidden = [s for s in asked.sources if SECRET[:30] in s.text]
    assert hidden == []
    assert SECRET not in asked.answer.text and all(SECRET not in c.quote for c in asked.answer.citations)
    with services.knowledge.sessions() as session:
        record = session.get(QuestionRecord, asked.question_id)
        assert record is not None
        mentoring_ids = {note_id for note_id in ids.values() if SECRET in _text(services, note_id)}
        assert {s["note_id"] for s in record.sources}.isdisjoint(mentoring_ids)
    # Julie took part in the mentoring session: for her it is evidence like any other.
    mine = asker.ask(question, JULIE_VIEWER, "fr")
    assert any(SECRET in c.quote for c in mine.answer.citations)


def _text(services: Services, note_id: str) -> str:
    return services.knowledge.get_note(note_id, Viewer.administrator()).text


def test_feedback_is_recorded_for_the_asker_only(services: Services, asker: Asker) -> None:
    asked = asker.ask(QUESTION, EMPLOYEE, "fr")
    view = asker.feedback(asked.question_id, EMPLOYEE, -1, "  Il manque le test de pelage.  ")
    assert (view.rating, view.comment, view.author, view.question) == (
        -1,
        "Il manque le test de pelage.",
        "hugo",
        QUESTION,
    )
    with pytest.raises(QuestionNotFound) as foreign:
        asker.feedback(asked.question_id, JULIE_VIEWER, 1)
    assert foreign.value.code == "question_not_found"
    with pytest.raises(QuestionNotFound):
        asker.feedback("no-such-question", EMPLOYEE, 1)
    for rating in (0, 2, True):
        with pytest.raises(InvalidFeedback) as bad:
            asker.feedback(asked.question_id, EMPLOYEE, rating)
        assert bad.value.code == "invalid_feedback"
    asker.feedback(asked.question_id, Viewer.administrator(), 1)
    with services.knowledge.sessions() as session:
        ratings = session.scalars(select(FeedbackRecord.rating).order_by(FeedbackRecord.id)).all()
        assert list(ratings) == [-1, 1]
    [latest, first] = asker.list_feedback(Viewer.administrator())
    assert (first.rating, latest.rating) == (-1, 1) and first.question_id == asked.question_id
    [question] = asker.list_questions(Viewer.administrator())
    assert question.ratings == (-1, 1)
    assert question.as_json()["asked_at"].endswith("+00:00")


def test_only_hr_reads_the_questions_and_the_feedback(asker: Asker) -> None:
    asked = asker.ask(QUESTION, EMPLOYEE, "fr")
    for listing in (asker.list_questions, asker.list_feedback):
        for viewer in (EMPLOYEE, Viewer(label="fac", role="facilitator"), Viewer.public()):
            with pytest.raises(Forbidden) as refused:
                listing(viewer)
            assert refused.value.code == "forbidden"
    hr = Viewer(label="rh", role="hr")
    assert [q.id for q in asker.list_questions(hr)] == [asked.question_id]
    assert asker.list_feedback(hr) == []
    with pytest.raises(InvalidQuery):
        asker.list_questions(Viewer.administrator(), limit=0)


@pytest.mark.parametrize("question", ["", "   ", "x" * 2001])
def test_an_empty_or_overlong_question_is_refused(asker: Asker, question: str) -> None:
    with pytest.raises(InvalidQuery) as refused:
        asker.ask(question, EMPLOYEE, "fr")
    assert refused.value.code == "invalid_query"


def test_an_approved_practice_comes_first_and_is_cited_to_its_evidence(
    services: Services, group_embedder: Embedder
) -> None:
    ids = load(services)
    note = note_source(services.knowledge, ids["circle"])
    quote = "On passe la TF-5 en mode maintenance à 4 cycles par minute au lieu de l'arrêter"
    draft = PracticeDraft(
        title="Changer le joint de la TF-5 sans arrêter la ligne",
        practice="Passer la TF-5 en mode maintenance à 4 cycles par minute plutôt que de l'arrêter.",
        evidence=(Evidence("practice", quote),),
        extracted_by="test",
    )
    verified = verify_draft(draft, note)
    assert verified is not None
    [practice_id] = services.practices.store_drafts(note, [verified], actor="test")
    services.practices.approve(practice_id, Viewer.administrator())
    asked = asker_for(services, group_embedder).ask(QUESTION, EMPLOYEE, "fr")
    first = asked.sources[0]
    assert (first.kind, first.entry_id) == ("practice", practice_id)
    citation = asked.answer.citations[0]
    assert (citation.kind, citation.entry_id, citation.quote) == ("practice", practice_id, quote)
    assert asked.answer.claims[0].text.startswith("Changer le joint de la TF-5 sans arrêter la ligne.")
    assert _text(services, citation.note_id)[citation.start : citation.end] == quote


def test_a_practice_whose_text_already_says_its_title_is_stated_once() -> None:
    title = "Prépare le kit de joints complet la veille du changement de format"
    practice = "on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes."
    assert practice_statement(title, practice) == (
        "On prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes."
    )
    assert practice_statement("Retirer le joint à la spatule PEEK.", "Jamais d'outil métallique sur le joint.") == (
        "Retirer le joint à la spatule PEEK. Jamais d'outil métallique sur le joint."
    )
    # Whole words only: a title that is a prefix of another word is not said by the text.
    assert practice_statement("Le kit", "Les kits sont prêts.") == "Le kit. Les kits sont prêts."
