"""Wiring the components together: the one place settings become live objects."""

from __future__ import annotations

import os
from dataclasses import dataclass

from capture.extraction.drafts import PracticeExtractor
from capture.ingestion import Ingestor
from capture.jobs import ExtractionJobs
from capture.review import PracticeBook
from capture.settings import CaptureSettings
from retrieval.access import Viewer
from retrieval.catalog import ChunkCatalog
from retrieval.database import open_database
from retrieval.embedders import Embedder, UniversalSentenceEncoderEmbedder, build_embedder
from retrieval.knowledge import KnowledgeBase
from retrieval.notes import SaveResult
from retrieval.practice_index import PracticeIndex
from retrieval.search import HybridSearcher
from retrieval.settings import RetrievalSettings
from retrieval.vectors import ChromaVectorStore


@dataclass
class Services:
    """The live components a request or a CLI command works with."""

    retrieval: RetrievalSettings
    capture: CaptureSettings
    knowledge: KnowledgeBase
    searcher: HybridSearcher
    ingestor: Ingestor
    practices: PracticeBook
    practice_index: PracticeIndex
    jobs: ExtractionJobs

    def delete_note(self, note_id: str, viewer: Viewer) -> None:
        """Delete a note everywhere; the entries citing it lose that evidence first (and fall due)."""
        note = self.knowledge.get_note(note_id, viewer)
        self.practices.settle_sources(note.summary.id, None)
        self.knowledge.delete_note(note.summary.id, viewer)

    def close(self) -> None:
        """Stop background work and release connections."""
        self.jobs.stop()
        self.knowledge.close()


def offline_environment() -> None:
    """Forbid hub downloads and analytics calls of the libraries we load."""
    for name, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("DO_NOT_TRACK", "1"),
        ("SCARF_NO_ANALYTICS", "1"),
        ("ANONYMIZED_TELEMETRY", "False"),
        ("UNSTRUCTURED_DISABLE_NOTICE", "1"),
    ):
        os.environ.setdefault(name, value)


def build_extractor(capture: CaptureSettings, group_embedder: Embedder) -> PracticeExtractor:
    """The LLM extractor when a provider is configured, else the offline one."""
    if capture.llm_provider == "none":
        from capture.extraction.offline import CueExtractor

        return CueExtractor(embedder=group_embedder)
    from capture.extraction.llm import LLMExtractor, build_chat_model

    chat_model = build_chat_model(
        capture.llm_provider,
        model=capture.llm_model,
        base_url=capture.llm_base_url,
        api_key=capture.llm_api_key.get_secret_value() if capture.llm_api_key else None,
        timeout=capture.llm_timeout,
    )
    return LLMExtractor(chat_model, model_name=capture.llm_model)


def build_services(
    retrieval: RetrievalSettings,
    capture: CaptureSettings,
    embedder: Embedder | None = None,
    group_embedder: Embedder | None = None,
) -> Services:
    """Open the stores and load the models named by the settings (unless they are handed over)."""
    offline_environment()
    retrieval.data_dir.mkdir(parents=True, exist_ok=True)
    sessions = open_database(retrieval.resolved_database_url)

    def store(suffix: str) -> ChromaVectorStore:
        return ChromaVectorStore(
            retrieval.chroma_collection + suffix,
            path=None if retrieval.chroma_url else retrieval.chroma_dir,
            url=retrieval.chroma_url,
            ef_search=retrieval.hnsw_ef_search,
            ef_construction=retrieval.hnsw_ef_construction,
            max_neighbors=retrieval.hnsw_max_neighbors,
        )

    if embedder is None:
        embedder = build_embedder(retrieval.embedder, threads=retrieval.embed_threads)
    if group_embedder is None:
        # Its cosines separate related from unrelated texts, so a duplicate threshold means something.
        group_embedder = UniversalSentenceEncoderEmbedder(threads=retrieval.embed_threads)
    knowledge = KnowledgeBase(sessions, store(""), embedder, ChunkCatalog(sessions), retrieval.originals_dir)
    practice_index = PracticeIndex(sessions, store("_practices"), embedder)
    practices = PracticeBook(
        sessions,
        group_embedder=group_embedder,
        group_store=store("_groups"),
        group_threshold=capture.duplicate_threshold,
        review_after_days=capture.review_after_days,
        on_published=practice_index.update,
    )
    jobs = ExtractionJobs(sessions, knowledge, practices, build_extractor(capture, group_embedder))

    def after_save(result: SaveResult) -> None:
        if result.status == "replaced":
            practices.settle_sources(result.note_id, knowledge.get_note(result.note_id, Viewer.administrator()).text)
        jobs.enqueue(result.note_id)

    return Services(
        retrieval=retrieval,
        capture=capture,
        knowledge=knowledge,
        searcher=HybridSearcher(
            knowledge, dense_weight=retrieval.dense_weight, lexical_weight=retrieval.lexical_weight
        ),
        ingestor=Ingestor(knowledge, capture, on_saved=after_save),
        practices=practices,
        practice_index=practice_index,
        jobs=jobs,
    )
