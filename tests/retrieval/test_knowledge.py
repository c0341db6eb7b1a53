"""Storing, replacing and deleting notes across SQL, Chroma, the lexical index and disk; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

from api.services import Services
from capture.ingestion import Ingestor, NoteMetadata
from retrieval import knowledge
from retrieval.access import Viewer
from retrieval.catalog import REVISION_KEY, bump_revision, read_revision
from retrieval.embedders import Vectors
from retrieval.errors import NoteNotFound, StoreUnavailable
from retrieval.notes import Participant
from retrieval.records import ChunkRecord, NoteRecord, ParticipationRecord, StateRecord
from retrieval.vectors import Metadata, VectorStore

SEAL_FR = """# Cercle maintenance — joints

Karim : pour changer le joint de la thermoformeuse sans arrêter la ligne, on prépare le kit complet la veille
et on profite du changement de bobine.

Sophie : la caméra de vision rejette trop de barquettes quand l'éclairage de l'atelier change.

- Astuce : garder un joint d'avance, déjà graissé, dans le chariot.
"""

PRICE_EN = """# Sales pair retrospective

Lucas: we negotiated the price increase by showing the customer the resin cost index month by month.

Emma: next time, bring the contract's indexation clause printed.
"""


def meta(kind: str = "circle", community: str = "maintenance", **kwargs: object) -> NoteMetadata:
    return NoteMetadata(
        kind=kind,
        community=community,
        session_date=dt.date(2026, 3, 12),
        participants=(Participant("Karim Benali", "facilitator"), Participant("Sophie Martin", "member")),
        **kwargs,  # type: ignore[arg-type]
    )


def counts(services: Services) -> tuple[int, int, int, int]:
    with services.knowledge.sessions() as session:
        notes = session.scalar(select(func.count()).select_from(NoteRecord)) or 0
        chunks = session.scalar(select(func.count()).select_from(ChunkRecord)) or 0
    originals = len(list(services.retrieval.originals_dir.glob("*")))
    return notes, chunks, services.knowledge.store.count(), originals


def test_same_content_twice_changes_nothing_and_changed_content_replaces(services: Services) -> None:
    first = services.ingestor.ingest_text(SEAL_FR, meta(external_id="m-1"))
    assert first.status == "created"
    assert services.ingestor.ingest_text(SEAL_FR, meta(external_id="m-1")).status == "unchanged"
    before = counts(services)
    assert before == (1, first.chunk_count, first.chunk_count, 1)

    changed = SEAL_FR.replace("la veille", "le vendredi")
    second = services.ingestor.ingest_text(changed, meta(external_id="m-1"))
    assert second.status == "replaced"
    assert second.note_id == first.note_id
    assert counts(services) == (1, second.chunk_count, second.chunk_count, 1)
    assert "vendredi" in services.knowledge.get_note("m-1", Viewer.administrator()).text
    hits = services.searcher.search("préparer le kit la veille", Viewer.administrator(), k=5, mode="lexical")
    assert all("la veille" not in hit.text for hit in hits)


def test_delete_removes_the_note_everywhere(services: Services) -> None:
    kept = services.ingestor.ingest_text(PRICE_EN, meta(kind="pair", community="commercial"))
    gone = services.ingestor.ingest_text(SEAL_FR, meta())
    services.knowledge.delete_note(gone.note_id, Viewer.administrator())
    assert counts(services) == (1, kept.chunk_count, kept.chunk_count, 1)
    with services.knowledge.sessions() as session:
        assert session.scalar(select(func.count()).select_from(ParticipationRecord)) == 2
    with pytest.raises(NoteNotFound):
        services.knowledge.get_note(gone.note_id, Viewer.administrator())
    hits = services.searcher.search("joint thermoformeuse", Viewer.administrator(), k=10)
    assert {hit.note_id for hit in hits} == {kept.note_id}


class FailingStore:
    """A real Chroma store that breaks at a chosen step, as a lost connection or full disk would."""

    def __init__(self, inner: VectorStore, fail_after_write: bool) -> None:
        self.inner = inner
        self.fail_after_write = fail_after_write

    def upsert(self, ids: Sequence[str], vectors: Vectors, metadatas: Sequence[Metadata]) -> None:
        if self.fail_after_write:
            self.inner.upsert(ids, vectors, metadatas)
        raise StoreUnavailable("the vector store went away")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.mark.parametrize("fail_after_write", [False, True])
def test_a_failed_write_leaves_no_orphan_rows_vectors_or_files(services: Services, fail_after_write: bool) -> None:
    services.ingestor.ingest_text(PRICE_EN, meta(kind="pair", community="commercial"))
    before = counts(services)
    real_store = services.knowledge.store
    services.knowledge.store = FailingStore(real_store, fail_after_write)  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable):
        services.ingestor.ingest_text(SEAL_FR, meta())
    services.knowledge.store = real_store
    assert counts(services) == before
    assert not list(services.retrieval.originals_dir.glob(".staged-*"))
    retried = services.ingestor.ingest_text(SEAL_FR, meta())
    assert retried.status == "created"


def test_a_failed_replacement_keeps_the_old_version_whole(services: Services) -> None:
    services.ingestor.ingest_text(SEAL_FR, meta(external_id="m-1"))
    before = counts(services)
    real_store = services.knowledge.store
    services.knowledge.store = FailingStore(real_store, fail_after_write=True)  # type: ignore[assignment]
    with pytest.raises(StoreUnavailable):
        services.ingestor.ingest_text(SEAL_FR + "\nKarim : et on vérifie.", meta(external_id="m-1"))
    services.knowledge.store = real_store
    assert counts(services) == before
    hits = services.searcher.search("vérifie", Viewer.administrator(), k=10, mode="lexical")
    assert all("et on vérifie" not in hit.text for hit in hits)


class WriterMeanwhile:
    """Runs another upload of the same note to completion, in its own thread, the first time it is called."""

    def __init__(self, ingestor: Ingestor) -> None:
        self.ingestor = ingestor
        self.results: list[str] = []

    def run_once(self) -> None:
        if self.results:
            return
        self.results.append("started")
        other = threading.Thread(target=lambda: self.results.append(self.ingestor.ingest_text(SEAL_FR, meta()).status))
        other.start()
        other.join()


def assert_stored_once(services: Services, chunk_count: int) -> None:
    assert counts(services)[:3] == (1, chunk_count, chunk_count)
    hits = services.searcher.search("joint thermoformeuse", Viewer.administrator(), k=10)
    assert hits and {hit.note_id for hit in hits} == {note_id_for_seal(services)}


def note_id_for_seal(services: Services) -> str:
    with services.knowledge.sessions() as session:
        return str(session.scalars(select(NoteRecord.id)).one())


def test_a_note_stored_by_another_writer_while_this_one_embeds_is_reported_unchanged(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    meanwhile = WriterMeanwhile(services.ingestor)
    embedder = services.knowledge.embedder
    real_embed = embedder.embed_documents

    def embed_documents(texts: Sequence[str]) -> Vectors:
        meanwhile.run_once()
        return real_embed(texts)

    monkeypatch.setattr(embedder, "embed_documents", embed_documents)
    result = services.ingestor.ingest_text(SEAL_FR, meta())
    assert meanwhile.results == ["started", "created"]
    assert result.status == "unchanged"
    assert_stored_once(services, result.chunk_count)


def test_a_note_inserted_by_another_writer_after_this_one_looked_is_reported_unchanged(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other writer commits between this one's locked read (no row yet) and its insert."""
    facilitator = services.ingestor_for(Viewer(label="fanny", role="facilitator"))
    meanwhile = WriterMeanwhile(facilitator)
    real_label = knowledge.uploader_label

    def uploader_label(viewer: Viewer) -> str | None:
        meanwhile.run_once()
        return real_label(viewer)

    monkeypatch.setattr(knowledge, "uploader_label", uploader_label)
    result = facilitator.ingest_text(SEAL_FR, meta())
    assert meanwhile.results == ["started", "created"]
    assert result.status == "unchanged"
    assert_stored_once(services, result.chunk_count)
    assert not list(services.retrieval.originals_dir.glob(".staged-*"))


def test_the_first_two_writers_of_a_new_database_both_bump_the_revision(services: Services) -> None:
    """Neither finds the revision row: the second one's insert waits for the first, fails, and reads it."""
    sessions = services.knowledge.sessions
    with sessions() as session:
        assert session.get(StateRecord, REVISION_KEY) is None
    second: list[int] = []

    def bump() -> None:
        with sessions() as session:
            second.append(bump_revision(session))
            session.commit()

    with sessions() as first:
        assert bump_revision(first) == 1
        other = threading.Thread(target=bump)
        other.start()
        other.join(timeout=1)
        assert other.is_alive()  # waiting for the first writer's row
        first.commit()
    other.join(timeout=30)
    assert second == [2]
    with sessions() as session:
        assert read_revision(session) == 2


def test_a_french_note_is_found_by_an_english_question_and_the_reverse(services: Services) -> None:
    seal = services.ingestor.ingest_text(SEAL_FR, meta())
    price = services.ingestor.ingest_text(PRICE_EN, meta(kind="pair", community="commercial"))
    admin = Viewer.administrator()
    english = services.searcher.search("how to replace a gasket without stopping production", admin, k=1, mode="dense")
    french = services.searcher.search("comment négocier une hausse de prix avec un client", admin, k=1, mode="dense")
    assert english[0].note_id == seal.note_id
    assert french[0].note_id == price.note_id
    assert english[0].speaker == "Karim Benali"


def test_mentoring_defaults_to_private_and_is_seen_only_by_its_participants(services: Services) -> None:
    mentoring = services.ingestor.ingest_text(
        "Karim : je doute de ma place dans l'équipe, je pense à partir.",
        meta(kind="mentoring", community="maintenance"),
    )
    services.ingestor.ingest_text(SEAL_FR, meta(visibility="community"))
    public = services.ingestor.ingest_text(PRICE_EN, meta(kind="pair", community="commercial", visibility="public"))

    def seen(viewer: Viewer) -> set[str]:
        hits = services.searcher.search("doute partir équipe joint prix", viewer, k=20)
        return {hit.note_id for hit in hits}

    outsider = Viewer(label="employee", person_name="Nadia Ferrand", communities=frozenset({"commercial"}))
    member = Viewer(label="member", person_name="Nadia Ferrand", communities=frozenset({"maintenance"}))
    participant = Viewer(label="mentee", person_name="Sophie Martin")
    assert mentoring.note_id not in seen(outsider)
    assert seen(outsider) == {public.note_id}
    assert mentoring.note_id not in seen(member)
    assert len(seen(member)) == 2
    assert mentoring.note_id in seen(participant)
    assert mentoring.note_id not in seen(Viewer(label="x", communities=frozenset({""})))
    with pytest.raises(NoteNotFound):
        services.knowledge.get_note(mentoring.note_id, outsider)
    listed = {note.id for note in services.knowledge.list_notes(outsider)}
    assert listed == {public.note_id}


def test_search_filters_by_kind_community_language_and_date(services: Services) -> None:
    seal = services.ingestor.ingest_text(SEAL_FR, meta())
    price = services.ingestor.ingest_text(PRICE_EN, meta(kind="pair", community="commercial"))
    from retrieval.search import SearchFilters

    admin = Viewer.administrator()
    query = "joint prix caméra client"
    assert {h.note_id for h in services.searcher.search(query, admin, filters=SearchFilters(kind="pair"))} == {
        price.note_id
    }
    assert {h.note_id for h in services.searcher.search(query, admin, filters=SearchFilters(language="fr"))} == {
        seal.note_id
    }
    assert {
        h.note_id for h in services.searcher.search(query, admin, filters=SearchFilters(community="maintenance"))
    } == {seal.note_id}
    late = SearchFilters(date_from=dt.date(2026, 4, 1))
    assert services.searcher.search(query, admin, filters=late) == []


def test_the_original_file_is_kept_under_the_note_id(services: Services) -> None:
    result = services.ingestor.ingest_bytes(SEAL_FR.encode(), meta(), filename="../../etc/passwd")
    path = services.knowledge.original_path(result.note_id, Viewer.administrator())
    assert path is not None and path.parent == services.retrieval.originals_dir
    assert path.read_bytes() == SEAL_FR.encode()
    assert services.knowledge.get_note(result.note_id, Viewer.administrator()).original_name == "passwd"
