"""Experts and peers on the real knowledge base (Chroma, SQL, packaged models): evidence, privacy, opt-out, peers."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import numpy as np
import pytest
from sqlalchemy import select

from api.services import Services
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from retrieval.access import Viewer
from retrieval.embedders import Embedder
from retrieval.errors import PersonNotFound, QuestionNotFound
from retrieval.expert_finder import MAX_QUOTE_CHARS, ExpertFinder, Suggestions, best_quote
from retrieval.notes import Participant
from retrieval.records import PersonRecord, QuestionRecord
from retrieval.vectors import ChromaVectorStore

HR = Viewer.administrator()
QUESTION = "How do I change the thermoformer seal without stopping the line?"
MENTORING = """# Mentorat maintenance — le joint de la thermoformeuse

Léa : comment je change le joint de la thermoformeuse sans arrêter la ligne ?

Paul : on prépare le kit de joints complet la veille, déjà graissé. Ensuite on attend le changement de bobine \
pour changer le joint de la thermoformeuse : la ligne ne s'arrête pas.
"""
CIRCLE = """# Cercle maintenance — réglages

Karim : pour le joint de la thermoformeuse, on garde toujours un joint d'avance dans le chariot.

Sophie : la caméra de vision rejette trop de barquettes quand l'éclairage de l'atelier change.
"""
PRIVATE = """# Mentorat confidentiel — joint thermoformeuse

Tom : je n'arrive pas à changer le joint de la thermoformeuse sans arrêter la ligne.

Nadia : astuce zeppelin : change le joint de la thermoformeuse pendant le changement de bobine, kit prêt la veille.
"""
PAUL = Participant("Paul Girard", "mentor")
LEA = Participant("Léa Roux", "mentee")
KARIM = Participant("Karim Benali", "facilitator")
SOPHIE = Participant("Sophie Martin", "member")
JULIE = Participant("Julie Petit", "member")
NADIA = Participant("Nadia Ferrand", "mentor")
TOM = Participant("Tom Leroy", "mentee")
OUTSIDER = Viewer(label="sophie", person_name="Sophie Martin", communities=frozenset({"maintenance"}))


def ingest(services: Services, text: str, *participants: Participant, **kwargs: object) -> str:
    defaults: dict[str, object] = {
        "kind": "circle",
        "community": "maintenance",
        "session_date": dt.date.today() - dt.timedelta(days=30),
        "participants": participants,
        "visibility": "public",
    }
    defaults.update(kwargs)
    return services.ingestor.ingest_text(text, NoteMetadata(**defaults)).note_id  # type: ignore[arg-type]


def finder(services: Services, group_embedder: Embedder) -> ExpertFinder:
    settings = services.retrieval
    questions = ChromaVectorStore(settings.chroma_collection + "_questions", path=settings.chroma_dir)
    return ExpertFinder(
        services.knowledge.sessions, services.searcher, services.practice_index, questions, group_embedder
    )


def corpus(services: Services) -> dict[str, str]:
    return {
        "mentoring": ingest(services, MENTORING, PAUL, LEA, kind="mentoring"),
        "circle": ingest(services, CIRCLE, KARIM, SOPHIE, JULIE),
    }


def names(suggestions: Suggestions) -> tuple[list[str], list[str]]:
    return [e.name for e in suggestions.experts], [p.name for p in suggestions.peers]


def test_the_one_who_explains_ranks_above_the_one_who_asks_with_verbatim_visible_evidence(
    services: Services, group_embedder: Embedder
) -> None:
    corpus(services)
    suggestions = finder(services, group_embedder).suggest(QUESTION, OUTSIDER, "en", k=5)
    experts, peers = names(suggestions)
    assert experts[0] == "Paul Girard"
    assert "Léa Roux" not in experts or experts.index("Léa Roux") > experts.index("Paul Girard")
    assert "Sophie Martin" not in experts + peers  # the asker
    assert not set(experts) & set(peers)
    for expert in suggestions.experts:
        assert 1 <= len(expert.evidence) <= 3
        for evidence in expert.evidence:
            note = services.knowledge.get_note(evidence.note_id, OUTSIDER)  # visible, or this raises
            assert note.text[evidence.start : evidence.end] == evidence.quote
            assert 0 < len(evidence.quote) <= MAX_QUOTE_CHARS
    paul = suggestions.experts[0]
    assert paul.evidence[0].role == "mentor" and paul.evidence[0].title.startswith("Mentorat maintenance")
    assert "bobine" in paul.evidence[0].quote or "veille" in paul.evidence[0].quote
    shape = suggestions.as_json()
    assert set(shape) == {"experts", "peers"}
    assert set(shape["experts"][0]["evidence"][0]) == {
        "note_id",
        "external_id",
        "entry_id",
        "quote",
        "start",
        "end",
        "title",
        "role",
    }
    assert all(set(peer) == {"name", "reason", "kind"} for peer in shape["peers"])


def test_a_private_note_makes_its_people_experts_only_for_its_participants(
    services: Services, group_embedder: Embedder
) -> None:
    corpus(services)
    ingest(services, PRIVATE, NADIA, TOM, kind="mentoring", visibility=None)
    experts = finder(services, group_embedder)
    outside = experts.suggest(QUESTION, OUTSIDER, "en", k=10)
    assert not {"Nadia Ferrand", "Tom Leroy"} & {*names(outside)[0], *names(outside)[1]}
    dumped = json.dumps(outside.as_json(), ensure_ascii=False)
    for secret in ("zeppelin", "confidentiel", "Nadia", "Tom", "je n'arrive pas"):
        assert secret not in dumped
    tom = Viewer(label="tom", person_name="Tom Leroy")
    inside = experts.suggest(QUESTION, tom, "en", k=10)
    assert "Nadia Ferrand" in names(inside)[0] and "Tom Leroy" not in names(inside)[0] + names(inside)[1]
    nadia = next(e for e in inside.experts if e.name == "Nadia Ferrand")
    assert any("zeppelin" in evidence.quote for evidence in nadia.evidence)


def test_activity_counts_only_what_the_viewer_may_see(services: Services, group_embedder: Embedder) -> None:
    corpus(services)
    experts = finder(services, group_embedder)
    lea = Viewer(label="lea", person_name="Léa Roux")
    before, before_lea = experts.activity(OUTSIDER), experts.activity(lea)
    assert before["Paul Girard"] > 0 and before == pytest.approx(before_lea)
    # Paul is very active in mentoring sessions the asker may not see: his prior must not show it.
    for day in range(1, 4):
        text = PRIVATE.replace("Nadia", "Paul").replace("Tom", "Léa") + f"\nSéance {day}.\n"
        ingest(services, text, PAUL, LEA, kind="mentoring", visibility="private", external_id=f"private-{day}")
    assert experts.activity(OUTSIDER) == pytest.approx(before)
    assert experts.activity(lea)["Paul Girard"] > before["Paul Girard"] + 1  # three notes and their turns
    assert experts.activity(HR)["Paul Girard"] == pytest.approx(experts.activity(lea)["Paul Girard"])


def test_opted_out_people_are_never_suggested(make_services: object, group_embedder: Embedder) -> None:
    services = make_services()  # type: ignore[operator]
    corpus(services)
    experts = finder(services, group_embedder)
    assert "Paul Girard" in names(experts.suggest(QUESTION, OUTSIDER, "en", k=10))[0]
    experts.set_opt_out("Paul Girard", True)
    experts.set_opt_out("Julie Petit", True)
    opted_out = experts.suggest(QUESTION, OUTSIDER, "en", k=10)
    assert not {"Paul Girard", "Julie Petit"} & {*names(opted_out)[0], *names(opted_out)[1]}
    assert "Paul Girard" not in json.dumps(opted_out.as_json(), ensure_ascii=False)
    experts.set_opt_out("Paul Girard", False)
    assert names(experts.suggest(QUESTION, OUTSIDER, "en", k=10))[0][0] == "Paul Girard"
    with pytest.raises(PersonNotFound) as raised:
        experts.set_opt_out("Nobody Known", True)
    assert raised.value.code == "person_not_found"


def test_the_asker_is_never_suggested(make_services: object, group_embedder: Embedder) -> None:
    services = make_services()  # type: ignore[operator]
    corpus(services)
    paul = Viewer(label="paul", person_name="Paul Girard")
    experts, peers = names(finder(services, group_embedder).suggest(QUESTION, paul, "en", k=10))
    assert experts and "Paul Girard" not in experts + peers


def test_an_approved_entry_is_evidence_for_its_credited_contributor(
    services: Services, group_embedder: Embedder
) -> None:
    note_id = ingest(services, CIRCLE, KARIM, SOPHIE, JULIE)
    source = note_source(services.knowledge, note_id)
    draft = PracticeDraft(
        title="Garder un joint d'avance",
        practice="Garder toujours un joint de thermoformeuse d'avance dans le chariot.",
        contributors=(KARIM,),
        evidence=(Evidence("practice", "on garde toujours un joint d'avance dans le chariot"),),
        extracted_by="test",
    )
    verified = verify_draft(draft, source)
    assert verified is not None
    [entry_id] = services.practices.store_drafts(source, [verified], actor="test")
    services.practices.approve(entry_id, HR)
    suggestions = finder(services, group_embedder).suggest(
        "spare seal for the thermoformer", Viewer.public(), "en", k=5
    )
    karim = next(e for e in suggestions.experts if e.name == "Karim Benali")
    via_entry = [evidence for evidence in karim.evidence if evidence.entry_id == entry_id]
    assert via_entry and via_entry[0].title == "Garder un joint d'avance"
    assert via_entry[0].quote == "on garde toujours un joint d'avance dans le chariot"
    assert via_entry[0].role == "facilitator"


def colleague(services: Services, name: str) -> None:
    """A colleague known to the records who took part in no note (so they can only be a peer)."""
    with services.knowledge.sessions.begin() as session:
        session.add(PersonRecord(name=name))


def question(services: Services, person: str | None, text: str, days_ago: int) -> str:
    with services.knowledge.sessions.begin() as session:
        person_id = session.scalar(select(PersonRecord.id).where(PersonRecord.name == person)) if person else None
        record = QuestionRecord(
            id=uuid.uuid4().hex,
            asked_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago),
            asker=person or "anonymous",
            person_id=person_id,
            question=text,
            language="fr",
            engine="test",
            answered=True,
            confidence=0.5,
            answer="",
            sources=[],
        )
        session.add(record)
        return record.id


def test_people_who_recently_asked_a_similar_question_are_peers_without_their_question(
    services: Services, group_embedder: Embedder
) -> None:
    corpus(services)
    for name in ("Hugo Lambert", "Marc Blanc", "Inès Morel", "Zoé Caron"):
        colleague(services, name)
    experts = finder(services, group_embedder)
    similar = "Comment changer le joint de la thermoformeuse sans arrêter la ligne ?"
    asked = {
        "hugo": question(services, "Hugo Lambert", similar, days_ago=10),
        "marc": question(services, "Marc Blanc", "Comment poser mes jours de congés dans l'outil RH ?", days_ago=5),
        "ines": question(services, "Inès Morel", similar, days_ago=400),  # outside the window
        "zoe": question(services, "Zoé Caron", similar, days_ago=1),
        "own": question(services, "Sophie Martin", similar, days_ago=3),
        "anonymous": question(services, None, similar, days_ago=2),
    }
    for question_id in asked.values():
        experts.remember_question(question_id)
    assert experts.question_store.count() == 5  # an anonymous question has nobody to suggest
    suggestions = experts.suggest(QUESTION, OUTSIDER, "en", k=3, exclude_question_id=asked["zoe"])
    by_name = {peer.name: peer for peer in suggestions.peers}
    hugo = by_name["Hugo Lambert"]
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).date().isoformat()
    assert (hugo.kind, hugo.reason) == ("similar_question", f"asked a similar question on {day}")
    assert not {"Marc Blanc", "Inès Morel", "Zoé Caron", "Sophie Martin"} & set(by_name)
    dumped = json.dumps(suggestions.as_json(), ensure_ascii=False)
    assert "Comment changer" not in dumped and "congés" not in dumped
    french = experts.suggest("changer le joint de la thermoformeuse", OUTSIDER, "fr", k=3)
    reasons = {p.name: p.reason for p in french.peers}
    assert reasons["Hugo Lambert"] == f"a posé une question proche le {day}" and "Zoé Caron" in reasons
    as_hugo = experts.suggest(similar, Viewer(label="hugo", person_name="Hugo Lambert"), "fr", k=3)
    assert "Hugo Lambert" not in names(as_hugo)[1] and "Zoé Caron" in names(as_hugo)[1]
    experts.set_opt_out("Hugo Lambert", True)
    assert "Hugo Lambert" not in names(experts.suggest(QUESTION, OUTSIDER, "en", k=3))[1]
    with pytest.raises(QuestionNotFound):
        experts.remember_question("no-such-question")


def test_learners_of_the_notes_found_are_peers_and_never_also_experts(
    services: Services, group_embedder: Embedder
) -> None:
    corpus(services)
    experts = finder(services, group_embedder)
    day = (dt.date.today() - dt.timedelta(days=30)).isoformat()
    seal = experts.suggest("changer le joint de la thermoformeuse sans arrêter la ligne", HR, "fr", k=1)
    assert names(seal)[0] == ["Paul Girard"]
    mentee = next(p for p in seal.peers if p.name == "Léa Roux")
    assert (mentee.kind, mentee.reason) == (
        "mentee",
        f"mentoré·e dans « Mentorat maintenance — le joint de la thermoformeuse » ({day})",
    )
    camera = experts.suggest("la caméra de vision rejette des barquettes", HR, "en", k=1)
    assert names(camera)[0] == ["Sophie Martin"]
    member = next(p for p in camera.peers if p.name == "Julie Petit")
    assert member.kind == "circle_member" and member.reason.startswith("member of the circle « Cercle maintenance")
    learners = {p.name for s in (seal, camera) for p in s.peers}
    assert not learners & {"Paul Girard", "Karim Benali"}  # they explain, they do not learn
    assert "Sophie Martin" not in names(camera)[1]  # an expert is not also a peer


def test_the_quote_is_the_sentence_closest_to_the_question_with_exact_offsets(group_embedder: Embedder) -> None:
    text = "Intro.\nKarim : on parle de la cantine. Pour le joint, on prépare le kit la veille. Merci à tous."
    start = text.index("Karim")
    vector = group_embedder.embed_query("préparer le kit de joint la veille")
    left, right = best_quote(text, start, len(text), np.asarray(vector), group_embedder)
    assert text[left:right] == "Pour le joint, on prépare le kit la veille."
    long = "mot " * 200
    left, right = best_quote(long, 0, len(long), np.asarray(vector), group_embedder)
    assert right - left <= MAX_QUOTE_CHARS and long[left:right] == long[left:right].strip() and long[right] == " "
