"""The programme's measures on real services (SQLite and PostgreSQL): exact figures, filters, privacy."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from api.services import Services
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import NoteMetadata
from capture.jobs import note_source
from retrieval.access import Viewer
from retrieval.embedders import Embedder
from retrieval.errors import Forbidden, InvalidQuery
from retrieval.kpis import MEASURES, KpiFilters, ProgrammeMeasures
from retrieval.notes import Participant
from retrieval.records import HistoryRecord
from tests.conftest import ServicesFactory

KARIM = Participant("Karim Benali", "facilitator")
SOPHIE = Participant("Sophie Martin", "member")
LUCAS = Participant("Lucas Girard", "member")
NADIA = Participant("Nadia Roux", "member")
EMMA = Participant("Emma Leroy", "pair")
LINA = Participant("Lina Petit", "mentee")
HR = Viewer(label="rh", role="hr")
ADMIN = Viewer.administrator()
TODAY = dt.date(2026, 4, 1)
PERIOD = KpiFilters(date_from="2026-01-01", date_to="2026-03-31", bucket="month")

AUTUMN = """# Cercle maintenance — graissage des convoyeurs

Sophie : on graisse les convoyeurs le lundi matin, avant la première équipe.

Nadia : la graisse alimentaire est rangée dans l'armoire bleue.
"""
JANUARY = """# Cercle maintenance — changer le joint de la TF-5

Karim : on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes.

Sophie : on contrôle la température du cadre au thermomètre laser, pas à l'afficheur.
"""
FEBRUARY = """# Cercle maintenance — réglage des capteurs

Karim : on nettoie la lentille du capteur optique avant chaque réglage.

Lucas : on note la valeur de seuil sur l'étiquette du capteur.

Karim : on teste le capteur avec une barquette vide puis une pleine.
"""
PAIR = """# Binôme qualité — contrôle des soudures

Lucas : on fait un test de pelage sur trois barquettes après chaque remontage.

Emma : on photographie la soudure ratée pour la fiche de non-conformité.
"""
MENTORING = """# Mentorat direction — négociation salariale de Lina

Karim : pour ta négociation salariale, prépare trois chiffres du marché avant l'entretien.

Lina : j'ai peur de demander une augmentation à ma responsable.
"""
PRIVATE_WORDS = ("Lina", "direction", "salaire", "négociation", "Mentorat")


@dataclass(frozen=True)
class Corpus:
    """The ids of the corpus's notes and entries."""

    notes: dict[str, str]
    entries: dict[str, str]


def ingest(services: Services, text: str, **metadata: object) -> str:
    return services.ingestor.ingest_text(text, NoteMetadata(**metadata)).note_id  # type: ignore[arg-type]


def store(services: Services, note_id: str, practice: str, quote: str, who: Participant) -> str:
    note = note_source(services.knowledge, note_id)
    draft = PracticeDraft(
        title=practice,
        practice=practice,
        contributors=(who,),
        evidence=(Evidence("practice", quote),),
        extracted_by="test",
    )
    verified = verify_draft(draft, note)
    assert verified is not None
    [practice_id] = services.practices.store_drafts(note, [verified], actor="test")
    return practice_id


def backdate(services: Services, practice_id: str, action: str, when: dt.datetime) -> None:
    """Move an entry's history event to the day it is meant to have happened."""
    with services.knowledge.sessions.begin() as session:
        session.execute(
            update(HistoryRecord)
            .where(HistoryRecord.practice_id == practice_id, HistoryRecord.action == action)
            .values(at=when)
        )


def at(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, 10, 0, tzinfo=dt.UTC)


def load(services: Services) -> Corpus:
    """Five sessions over five months, questions with feedback and abstentions, entries in every status."""
    notes = {
        "autumn": ingest(
            services,
            AUTUMN,
            kind="circle",
            community="maintenance",
            session_date=dt.date(2025, 11, 10),
            participants=(SOPHIE, NADIA),
            visibility="community",
        ),
        "january": ingest(
            services,
            JANUARY,
            kind="circle",
            community="maintenance",
            session_date=dt.date(2026, 1, 15),
            participants=(KARIM, SOPHIE),
            visibility="community",
        ),
        "february": ingest(
            services,
            FEBRUARY,
            kind="circle",
            community="maintenance",
            session_date=dt.date(2026, 2, 10),
            participants=(KARIM, LUCAS),
            visibility="community",
        ),
        "pair": ingest(
            services,
            PAIR,
            kind="pair",
            community="qualite",
            session_date=dt.date(2026, 2, 20),
            participants=(LUCAS, EMMA),
            visibility="community",
        ),
        "mentoring": ingest(
            services,
            MENTORING,
            kind="mentoring",
            community="direction",
            session_date=dt.date(2026, 3, 5),
            participants=(Participant("Karim Benali", "mentor"), LINA),
            visibility="private",
        ),
    }
    book = services.practices
    book.today = lambda: dt.date(2026, 2, 1)
    book.review_after_days = 30
    kit = store(
        services,
        notes["january"],
        "Préparer le kit de joints la veille.",
        "on prépare le kit de joints complet la veille",
        KARIM,
    )
    book.edit(kit, ADMIN, {"tags": ["joint", "kit"]})
    book.approve(kit, ADMIN)
    backdate(services, kit, "drafted", at(1, 20))
    backdate(services, kit, "approved", at(2, 1))
    lens = store(
        services,
        notes["february"],
        "Nettoyer la lentille du capteur.",
        "on nettoie la lentille du capteur optique",
        KARIM,
    )
    label = store(
        services,
        notes["february"],
        "Noter le seuil sur l'étiquette.",
        "on note la valeur de seuil sur l'étiquette du capteur",
        LUCAS,
    )
    book.reject(lens, ADMIN, "déjà dans la procédure")
    for entry in (lens, label):
        backdate(services, entry, "drafted", at(2, 12))
    backdate(services, lens, "rejected", at(3, 2))
    salary = store(
        services, notes["mentoring"], "Préparer trois chiffres du marché.", "prépare trois chiffres du marché", LINA
    )
    book.edit(salary, ADMIN, {"tags": ["salaire"]})
    book.approve(salary, ADMIN)
    backdate(services, salary, "drafted", at(3, 6))
    backdate(services, salary, "approved", at(3, 6))

    asker = services.asker
    sophie = Viewer(label="sophie", person_name="Sophie Martin", communities=frozenset({"maintenance"}))
    questions = {}
    for name, when, text in (
        ("kit", at(2, 3), "Comment prépare-t-on le kit de joints avant un changement de format ?"),
        ("seal", at(2, 5), "Comment vérifier l'étanchéité du joint après le remontage ?"),
        ("compressor", at(2, 18), "Comment régler la pression du compresseur d'air de l'atelier ?"),
        ("compressor_again", at(3, 9), "Quelle pression faut-il pour le compresseur d'air de l'atelier ?"),
        ("parking", at(3, 12), "Où se garer quand le parking visiteurs est plein ?"),
        ("before", dt.datetime(2025, 12, 1, 10, tzinfo=dt.UTC), "Qui commande les blouses jetables ?"),
    ):
        asker.clock = lambda when=when: when
        questions[name] = asker.ask(text, sophie, "fr").question_id
    asker.clock = lambda: at(2, 4)
    asker.feedback(questions["kit"], sophie, 1, "Très utile, merci")
    asker.clock = lambda: at(3, 1)
    asker.feedback(questions["seal"], sophie, -1, '=HYPERLINK("http://evil") ne répond pas')
    asker.clock = lambda: at(3, 1)
    asker.feedback(questions["kit"], sophie, 1)
    return Corpus(notes, {"kit": kit, "lens": lens, "label": label, "salary": salary, **questions})


@pytest.fixture
def corpus(services: Services) -> Corpus:
    return load(services)


@pytest.fixture
def measures(services: Services, group_embedder: Embedder) -> ProgrammeMeasures:
    return ProgrammeMeasures(
        services.knowledge.sessions,
        services.finder,
        group_embedder,
        services.retrieval.peer_question_threshold,
        today=lambda: TODAY,
    )


def rows(measure: dict[str, object], *columns: str) -> list[tuple[object, ...]]:
    return [tuple(row[c] for c in columns) for row in measure["rows"]]  # type: ignore[attr-defined]


def test_hr_sees_exact_figures_per_month_and_week_within_the_filters(
    corpus: Corpus, measures: ProgrammeMeasures
) -> None:
    report = measures.report(HR, PERIOD)
    assert report["period"] == {
        "date_from": "2026-01-01",
        "date_to": "2026-03-31",
        "bucket": "month",
        "community": None,
        "kind": None,
    }
    assert report["communities"] == ["maintenance", "qualite"]
    participation = report["participation"]
    # Nadia took part in the autumn circle only: she is known in maintenance, not a participant of the period.
    assert rows(participation, "community", "kind", "participants", "known", "rate") == [
        ("maintenance", "circle", 3, 4, 0.75),
        ("qualite", "pair", 2, 2, 1.0),
    ]
    assert [(c["community"], c["participants"], c["known"]) for c in participation["communities"]] == [
        ("maintenance", 3, 4),
        ("qualite", 2, 2),
    ]
    assert rows(report["activity"], "label", "sessions", "turns", "questions", "exchanges") == [
        ("2026-01", 1, 2, 0, 2),
        ("2026-02", 2, 5, 3, 8),
        ("2026-03", 0, 0, 2, 2),
    ]
    feedback = report["feedback"]
    assert rows(feedback, "label", "up", "down", "rate") == [
        ("2026-01", 0, 0, None),
        ("2026-02", 1, 0, 1.0),
        ("2026-03", 1, 1, 0.5),
    ]
    assert feedback["totals"] == {"up": 2, "down": 1, "rate": 0.6667}
    assert [(c["rating"], c["comment"]) for c in feedback["comments"]] == [
        (-1, '=HYPERLINK("http://evil") ne répond pas'),
        (1, "Très utile, merci"),
    ]
    assert all("answer" not in comment for comment in feedback["comments"])
    assert rows(report["skills"], "person", "label", "topic", "source", "contributions", "new") == [
        ("Emma Leroy", "2026-02", "qualite", "community", 1, True),
        ("Karim Benali", "2026-01", "joint", "tag", 1, True),
        ("Karim Benali", "2026-01", "kit", "tag", 1, True),
        ("Karim Benali", "2026-01", "maintenance", "community", 1, True),
        ("Karim Benali", "2026-02", "maintenance", "community", 1, False),
        ("Lucas Girard", "2026-02", "maintenance", "community", 1, True),
        ("Lucas Girard", "2026-02", "qualite", "community", 1, True),
        # Sophie's first circle was in November: maintenance is not new to her in January.
        ("Sophie Martin", "2026-01", "maintenance", "community", 1, False),
    ]
    assert [(p["person"], p["topics"], p["new_topics"]) for p in report["skills"]["people"]] == [
        ("Karim Benali", 3, 3),
        ("Lucas Girard", 2, 2),
        ("Emma Leroy", 1, 1),
        ("Sophie Martin", 1, 0),
    ]
    review = report["review"]
    assert rows(review, "label", "drafted", "approved", "rejected", "due") == [
        ("2026-01", 1, 0, 0, 0),
        ("2026-02", 2, 1, 0, 0),
        ("2026-03", 0, 0, 1, 1),
    ]
    assert review["current"] == {"draft": 1, "approved": 1, "rejected": 1, "due_now": 1}
    gaps = report["gaps"]
    assert gaps["total"] == 4
    assert [(g["topic"], g["count"], g["unanswered"], g["rated_down"], g["tags"]) for g in gaps["groups"]] == [
        ("Comment régler la pression du compresseur d'air de l'atelier ?", 2, 2, 0, []),
        ("Où se garer quand le parking visiteurs est plein ?", 1, 1, 0, []),
        ("Comment vérifier l'étanchéité du joint après le remontage ?", 1, 0, 1, ["joint"]),
    ]
    assert [e["question"] for e in gaps["groups"][0]["examples"]] == [
        "Quelle pression faut-il pour le compresseur d'air de l'atelier ?",
        "Comment régler la pression du compresseur d'air de l'atelier ?",
    ]
    readable_people = {"Karim Benali", "Sophie Martin", "Lucas Girard", "Nadia Roux", "Emma Leroy"}
    assert all(g["suggested"] and set(g["suggested"]) <= readable_people for g in gaps["groups"])

    circles = measures.report(
        HR,
        KpiFilters(date_from="2026-02-01", date_to="2026-02-28", community="maintenance", kind="circle", bucket="week"),
    )
    assert rows(circles["participation"], "community", "kind", "participants", "known") == [
        ("maintenance", "circle", 2, 4)
    ]
    # Weeks start on Monday: February 2026 touches five of them, from Monday 26 January.
    assert rows(circles["activity"], "period", "label", "sessions", "turns", "questions") == [
        ("2026-01-26", "2026-W05", 0, 0, 0),
        ("2026-02-02", "2026-W06", 0, 0, 2),
        ("2026-02-09", "2026-W07", 1, 3, 0),
        ("2026-02-16", "2026-W08", 0, 0, 1),
        ("2026-02-23", "2026-W09", 0, 0, 0),
    ]
    assert {row["person"] for row in circles["skills"]["rows"]} == {"Karim Benali", "Lucas Girard"}
    assert rows(circles["review"], "label", "drafted", "approved") == [
        ("2026-W05", 0, 1),
        ("2026-W06", 0, 0),
        ("2026-W07", 2, 0),
        ("2026-W08", 0, 0),
        ("2026-W09", 0, 0),
    ]
    pairs = measures.table(HR, KpiFilters(date_from="2026-01-01", date_to="2026-03-31", kind="pair"), "participation")
    assert pairs.columns == ("community", "kind", "participants", "known", "rate")
    assert pairs.rows == (
        ("qualite", "pair", 2, 2, 1.0),
        ("maintenance", "all", 0, 4, 0.0),
        ("qualite", "all", 2, 2, 1.0),
    )


def test_a_private_mentoring_note_counts_for_its_readers_only(corpus: Corpus, measures: ProgrammeMeasures) -> None:
    hr_report = json.dumps(measures.report(HR, PERIOD), ensure_ascii=False)
    hr_tables = [measures.table(HR, PERIOD, measure) for measure in MEASURES]
    for text in (hr_report, *(json.dumps(table.rows, ensure_ascii=False) for table in hr_tables)):
        for word in PRIVATE_WORDS:
            assert word not in text
    admin = measures.report(ADMIN, PERIOD)
    # The same data shows the mentoring session to a reader who may see it: the filter is what hides it from HR.
    assert "direction" in admin["communities"]
    assert ("direction", "mentoring", 2, 2, 1.0) in rows(
        admin["participation"], "community", "kind", "participants", "known", "rate"
    )
    assert rows(admin["activity"], "label", "sessions", "turns") == [
        ("2026-01", 1, 2),
        ("2026-02", 2, 5),
        ("2026-03", 1, 2),
    ]
    assert ("Lina Petit", "2026-03", "salaire", "tag", 1, True) in rows(
        admin["skills"], "person", "label", "topic", "source", "contributions", "new"
    )
    assert rows(admin["review"], "label", "drafted", "approved") == [
        ("2026-01", 1, 0),
        ("2026-02", 2, 1),
        ("2026-03", 1, 1),
    ]
    # Karim mentored Lina in March, but for HR he took part in nothing that month.
    assert "2026-03" not in {
        row["label"] for row in measures.report(HR, PERIOD)["skills"]["rows"] if row["person"] == "Karim Benali"
    }


def test_only_hr_and_admins_read_the_measures_and_bad_filters_are_refused(
    make_services: ServicesFactory, group_embedder: Embedder
) -> None:
    services = make_services()
    measures = ProgrammeMeasures(services.knowledge.sessions, services.finder, group_embedder, 0.5, today=lambda: TODAY)
    facilitator = Viewer(
        label="karim", person_name="Karim Benali", communities=frozenset({"maintenance"}), role="facilitator"
    )
    for viewer in (facilitator, Viewer(label="julie", role="employee"), Viewer.public()):
        with pytest.raises(Forbidden):
            measures.report(viewer, PERIOD)
        with pytest.raises(Forbidden):
            measures.table(viewer, PERIOD, "activity")
    empty = measures.report(Viewer(label="boss", role="admin"), KpiFilters())
    assert (empty["period"]["date_from"], empty["period"]["date_to"]) == ("2025-04-02", "2026-04-01")
    assert len(empty["activity"]["rows"]) == 13
    assert empty["gaps"] == {"filters": ["date"], "total": 0, "groups": []}
    for filters, message in (
        (KpiFilters(date_from="2026-13-01"), "date_from must be a date"),
        (KpiFilters(date_to="yesterday"), "date_to must be a date"),
        (KpiFilters(date_from="2026-03-01", date_to="2026-02-01"), "after date_to"),
        (KpiFilters(date_from="2010-01-01", date_to="2026-01-01"), "longer than"),
        (KpiFilters(bucket="day"), "bucket must be one of week, month"),
        (KpiFilters(kind="webinar"), "kind must be one of"),
        (KpiFilters(community="  "), "community must be"),
    ):
        with pytest.raises(InvalidQuery, match=message):
            measures.report(HR, filters)
    with pytest.raises(InvalidQuery, match="measure must be one of"):
        measures.table(HR, PERIOD, "salaries")
