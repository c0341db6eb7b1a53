"""The HR review queue: priority and its components, sorts, filters, paging, side-by-side evidence, privacy."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from api.services import Services
from capture.errors import InvalidMetadata
from capture.extraction.drafts import Evidence, PracticeDraft, verify_draft
from capture.ingestion import Ingestor, NoteMetadata
from capture.jobs import note_source
from capture.review import PracticeNotFound, ReviewForbidden
from capture.review_queue import FULL_NOTE_CHARS, QueueFilters, QueueItem, ReviewQueue, priority_of
from capture.sandbox import ParseSandbox
from capture.settings import CaptureSettings
from retrieval.access import Viewer
from retrieval.audit import NOTE_READ, AuditFilters
from retrieval.notes import Participant
from retrieval.records import PracticeRecord
from tests.conftest import ServicesFactory

HR = Viewer(label="rh", role="hr")
ADMIN = Viewer.administrator()
KARIM = Participant("Karim Benali", "facilitator")
SOPHIE = Participant("Sophie Martin", "member")
LUCAS = Participant("Lucas Moreau", "pair")
NADIA = Participant("Nadia Ferrand", "facilitator")
CIRCLE = """# Cercle maintenance — joints

## Changement de format
Karim : on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes.

## Contrôle qualité
Sophie : toujours faire un test de pelage sur trois barquettes après le remontage du joint.
"""
PAIR = """# Binôme terrain

Lucas: the trick is to prepare the full seal kit the day before the changeover.
"""
DOCK = """# Cercle logistique — quai

Nadia : on étiquette les palettes dès la réception, sinon on les cherche ensuite dans tout le quai.
"""
MENTORING = """# Mentorat

Sophie : j'ai du mal avec les réglages de la thermoformeuse en fin de poste.

Karim : astuce, noter chaque réglage dans le carnet de bord avant de partir.
"""


@dataclass(frozen=True)
class Seeded:
    """The ids of the seeded notes and entries."""

    circle: str
    mentoring: str
    kit_circle: str
    peel: str
    kit_pair: str
    labels: str
    private: str


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ParseSandbox]:
    """One parsing sandbox for the module: its process starts once, not once per test."""
    shared = ParseSandbox.from_settings(CaptureSettings())
    yield shared
    shared.close()


@pytest.fixture
def services(make_services: ServicesFactory, database_url: str | None, sandbox: ParseSandbox) -> Services:
    # One passage per answer: each question grounds exactly the passage it retrieved first.
    built = make_services(database_url=database_url, answer_chunks=1, pii_detection=False)
    built.ingestor = Ingestor(built.knowledge, built.capture, on_saved=built.ingestor.on_saved, sandbox=sandbox)
    return built


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


def store(
    services: Services, note_id: str, title: str, quote: str, contributor: Participant, language: str = "fr"
) -> str:
    note = note_source(services.knowledge, note_id)
    drafted = PracticeDraft(
        title=title,
        practice=f"{quote[0].upper()}{quote[1:]}.",
        contributors=(contributor,),
        evidence=(Evidence("practice", quote),),
        extracted_by="test",
        language=language,
    )
    verified = verify_draft(drafted, note)
    assert verified is not None
    [practice_id] = services.practices.store_drafts(note, [verified], actor="test")
    return practice_id


def drafted_days_ago(services: Services, ages: dict[str, int]) -> None:
    now = dt.datetime.now(dt.UTC)
    with services.practices.sessions.begin() as session:
        for practice_id, days in ages.items():
            session.execute(
                update(PracticeRecord)
                .where(PracticeRecord.id == practice_id)
                .values(created_at=now - dt.timedelta(days=days, hours=1))
            )


def seed(services: Services) -> Seeded:
    circle = ingest(services, CIRCLE)
    pair = ingest(services, PAIR, kind="pair", participants=(LUCAS,), session_date=dt.date(2026, 4, 2))
    dock = ingest(services, DOCK, community="logistique", participants=(NADIA,))
    mentoring = ingest(
        services,
        MENTORING,
        kind="mentoring",
        visibility="private",
        participants=(Participant(KARIM.name, "mentor"), Participant(SOPHIE.name, "mentee")),
    )
    seeded = Seeded(
        circle=circle,
        mentoring=mentoring,
        kit_circle=store(
            services, circle, "Kit de joints la veille", "on prépare le kit de joints complet la veille", KARIM
        ),
        peel=store(services, circle, "Test de pelage", "toujours faire un test de pelage sur trois barquettes", SOPHIE),
        kit_pair=store(
            services,
            pair,
            "Seal kit the day before",
            "prepare the full seal kit the day before the changeover",
            LUCAS,
            "en",
        ),
        labels=store(services, dock, "Étiqueter à la réception", "on étiquette les palettes dès la réception", NADIA),
        private=store(services, mentoring, "Carnet de bord", "noter chaque réglage dans le carnet de bord", KARIM),
    )
    drafted_days_ago(
        services,
        {seeded.kit_circle: 10, seeded.peel: 2, seeded.kit_pair: 73, seeded.labels: 730, seeded.private: 1},
    )
    asker = services.asker
    for _ in range(2):
        asker.ask("Comment préparer le kit de joints complet avant le changement de format ?", HR, "fr")
    asker.ask("Quel test de pelage faire sur les barquettes après le remontage du joint ?", HR, "fr")
    # The mentee's own question retrieves her mentoring: it counts for that draft, which HR never sees.
    asker.ask(
        "Comment noter les réglages dans le carnet de bord ?", Viewer(label="sophie", person_name=SOPHIE.name), "fr"
    )
    return seeded


def ids(items: Sequence[QueueItem]) -> list[str]:
    return [item.practice.id for item in items]


def test_priority_combines_grounding_corroboration_and_age_and_each_item_shows_why(services: Services) -> None:
    seeded = seed(services)
    page = ReviewQueue(services.practices, services.knowledge).queue(HR)

    assert ids(page.items) == [seeded.kit_circle, seeded.kit_pair, seeded.peel, seeded.labels]
    assert page.total == 4
    components = {
        item.practice.id: (
            item.priority.grounding,
            item.priority.corroboration,
            item.priority.contributors,
            item.priority.age_days,
        )
        for item in page.items
    }
    assert components == {
        seeded.kit_circle: (2, 2, 2, 10),
        seeded.kit_pair: (0, 2, 2, 73),
        seeded.peel: (1, 1, 1, 2),
        seeded.labels: (0, 1, 1, 730),
    }
    for item in page.items:
        assert item.priority == priority_of(*components[item.practice.id])
    # Age counts for at most a year: the two-year-old lone draft nobody asked about comes last.
    [labels] = [item for item in page.items if item.practice.id == seeded.labels]
    assert labels.priority.score == pytest.approx(1.0)
    as_json = page.items[0].as_json()
    # log2(1 + 2) + log2(2) + 10 / 365
    assert as_json["priority"] == {
        "score": 2.612,
        "grounding": 2,
        "corroboration": 2,
        "contributors": 2,
        "age_days": 10,
    }
    assert as_json["id"] == seeded.kit_circle and as_json["drafted_at"]
    assert page.facets == {"communities": ["logistique", "maintenance"], "kinds": ["circle", "pair"], "tags": []}


def test_the_other_sorts_and_paging(services: Services) -> None:
    seeded = seed(services)
    queue = ReviewQueue(services.practices, services.knowledge)

    assert ids(queue.queue(HR, sort="age").items) == [seeded.labels, seeded.kit_pair, seeded.kit_circle, seeded.peel]
    assert ids(queue.queue(HR, sort="grounding").items) == [
        seeded.kit_circle,
        seeded.peel,
        seeded.labels,
        seeded.kit_pair,
    ]
    assert ids(queue.queue(HR, sort="corroboration").items) == [
        seeded.kit_pair,
        seeded.kit_circle,
        seeded.labels,
        seeded.peel,
    ]
    page = queue.queue(HR, offset=1, limit=2)
    assert (ids(page.items), page.total, page.offset, page.limit) == ([seeded.kit_pair, seeded.peel], 4, 1, 2)
    with pytest.raises(InvalidMetadata, match="sort"):
        queue.queue(HR, sort="random")
    with pytest.raises(InvalidMetadata, match="status"):
        queue.queue(HR, QueueFilters(status="pending"))
    with pytest.raises(InvalidMetadata, match="limit"):
        queue.queue(HR, limit=0)


def test_filters_by_community_format_tag_status_and_due_date(services: Services) -> None:
    seeded = seed(services)
    services.practices.edit(seeded.peel, HR, {"tags": ["qualité"]})
    queue = ReviewQueue(services.practices, services.knowledge)

    assert ids(queue.queue(HR, QueueFilters(community="logistique")).items) == [seeded.labels]
    assert ids(queue.queue(HR, QueueFilters(kind="pair")).items) == [seeded.kit_pair]
    tagged = queue.queue(HR, QueueFilters(tag="qualité"))
    assert ids(tagged.items) == [seeded.peel]
    assert tagged.facets["tags"] == ["qualité"]

    services.practices.approve(seeded.kit_circle, HR)
    services.practices.reject(seeded.labels, HR, "trop local")
    assert ids(queue.queue(HR).items) == [seeded.kit_pair, seeded.peel]
    assert ids(queue.queue(HR, QueueFilters(status="approved")).items) == [seeded.kit_circle]
    assert ids(queue.queue(HR, QueueFilters(status="rejected")).items) == [seeded.labels]
    assert ids(queue.queue(HR, QueueFilters(status="due")).items) == []

    # A year on, the approved entry falls due: it is back in the open queue, and the due date filter finds it.
    due_date = dt.date.today() + dt.timedelta(days=services.capture.review_after_days)
    services.practices.today = lambda: due_date + dt.timedelta(days=1)
    queue = ReviewQueue(services.practices, services.knowledge)
    assert seeded.kit_circle in ids(queue.queue(HR).items)
    assert ids(queue.queue(HR, QueueFilters(status="due", due_before=due_date)).items) == [seeded.kit_circle]
    assert ids(queue.queue(HR, QueueFilters(status="due", due_before=due_date - dt.timedelta(days=1))).items) == []
    assert ids(queue.queue(HR, QueueFilters(status="draft", due_before=due_date)).items) == []


def test_only_hr_reviews_and_hr_never_sees_drafts_of_private_notes(services: Services) -> None:
    seeded = seed(services)
    queue = ReviewQueue(services.practices, services.knowledge)

    assert seeded.private not in ids(queue.queue(HR, QueueFilters(status="draft")).items)
    with pytest.raises(PracticeNotFound):
        queue.item(seeded.private, HR)
    facilitator = Viewer(
        label="karim", person_name=KARIM.name, communities=frozenset({"maintenance"}), role="facilitator"
    )
    for viewer in (facilitator, Viewer(label="sophie", person_name=SOPHIE.name), Viewer(label="boss", role="admin")):
        with pytest.raises(ReviewForbidden):
            queue.queue(viewer)
        with pytest.raises(ReviewForbidden):
            queue.item(seeded.kit_circle, viewer)

    # The local administrator sees everything: the private draft, grounded by the mentee's question; reading its
    # note beside it is audited.
    [private] = [item for item in queue.queue(ADMIN).items if item.practice.id == seeded.private]
    assert private.priority.grounding == 1
    opened = queue.item(seeded.private, ADMIN)
    assert [source.note_id for source in opened.sources] == [seeded.mentoring]
    reads = services.audit.list_entries(ADMIN, AuditFilters(action=NOTE_READ, target_id=seeded.mentoring))
    assert [entry.actor for entry in reads] == ["admin"]


def test_an_item_shows_its_evidence_in_the_note_its_duplicates_and_its_history(services: Services) -> None:
    seeded = seed(services)
    services.practices.edit(seeded.kit_circle, HR, {"title": "Kit de joints prêt la veille"})
    item = ReviewQueue(services.practices, services.knowledge).item(seeded.kit_circle, HR)

    [source] = item.sources
    note_text = services.knowledge.get_note(seeded.circle, ADMIN).text
    assert (source.note_id, source.offset, source.text, source.note_length) == (
        seeded.circle,
        0,
        note_text,
        len(note_text),
    )
    [span] = source.spans
    assert source.text[span.start : span.end] == span.quote == "on prépare le kit de joints complet la veille"
    assert [d.id for d in item.duplicates] == [seeded.kit_pair]
    assert [event["action"] for event in item.history] == ["drafted", "edited"]
    assert item.priority.grounding == 2
    as_json = item.as_json()
    assert as_json["practice"]["title"] == "Kit de joints prêt la veille"
    assert as_json["duplicates"][0]["notes"] == ["Binôme terrain"]
    assert as_json["sources"][0]["spans"][0]["quote"] == span.quote


def test_a_long_note_is_shown_as_windows_around_its_quoted_spans(services: Services) -> None:
    filler = "\n\n".join(f"Point {i} : rien de particulier à signaler sur la ligne {i} ce jour-là." for i in range(60))
    text = f"# Cercle long\n\n{filler}\n\nKarim : on graisse la glissière avant chaque campagne.\n\n{filler}\n"
    assert len(text) > 2 * FULL_NOTE_CHARS
    note_id = ingest(services, text)
    practice_id = store(
        services, note_id, "Graisser la glissière", "on graisse la glissière avant chaque campagne", KARIM
    )

    [source] = ReviewQueue(services.practices, services.knowledge).item(practice_id, HR).sources
    note_text = services.knowledge.get_note(note_id, ADMIN).text
    assert source.offset > 0 and len(source.text) < 1000 < source.note_length == len(note_text)
    assert note_text[source.offset : source.offset + len(source.text)] == source.text
    assert note_text[source.offset - 1] == "\n"
    [span] = source.spans
    assert source.text[span.start : span.end] == "on graisse la glissière avant chaque campagne"
