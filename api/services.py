"""Wiring the components together: the one place settings become live objects."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from capture.erasure import ErasureReport, PersonEraser
from capture.extraction.drafts import PracticeExtractor
from capture.ingestion import Ingestor
from capture.jobs import ExtractionJobs
from capture.language import detect_language
from capture.privacy import PresidioPiiDetector
from capture.queue import TaskQueue
from capture.review import PracticeBook
from capture.settings import CaptureSettings
from capture.uploads import Uploads
from retrieval.access import Viewer
from retrieval.answers import Answerer, ExtractiveAnswerer
from retrieval.asking import AskedAnswer, Asker
from retrieval.audit import AuditLog
from retrieval.catalog import ChunkCatalog
from retrieval.database import open_database
from retrieval.embedders import Embedder, UniversalSentenceEncoderEmbedder, build_embedder
from retrieval.expert_finder import ExpertFinder, Suggestions
from retrieval.knowledge import KnowledgeBase
from retrieval.kpis import ProgrammeMeasures
from retrieval.lock import DataDirLock, lock_data_dir
from retrieval.notes import SaveResult
from retrieval.practice_index import PracticeIndex
from retrieval.reconcile import Reconciler, ReconcileReport
from retrieval.search import HybridSearcher
from retrieval.settings import RetrievalSettings
from retrieval.vectors import ChromaVectorStore

logger = logging.getLogger(__name__)


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
    audit: AuditLog
    eraser: PersonEraser
    asker: Asker
    finder: ExpertFinder
    data_lock: DataDirLock | None = None
    startup_repair: ReconcileReport | None = None
    # The workers' task queue, when COMPAGNON_BROKER_URL is set (else uploads and jobs run in this process).
    tasks: TaskQueue | None = None

    def reconciler(self) -> Reconciler:
        """The reconciler of the stores; exclusive when this process holds the data directory's lock."""
        return Reconciler(self.knowledge, self.jobs.enqueue, exclusive=self.data_lock is not None)

    @property
    def kpis(self) -> ProgrammeMeasures:
        """The programme's measures, over the records and the expert finder (gaps grouped as peer questions are)."""
        return ProgrammeMeasures(
            self.knowledge.sessions, self.finder, self.finder.question_embedder, self.retrieval.peer_question_threshold
        )

    def ingestor_for(self, viewer: Viewer) -> Ingestor:
        """An ingestor storing notes as uploaded by the viewer, who replaces a stored note only if theirs to replace."""
        return Ingestor(
            self.knowledge.uploads_by(viewer),
            self.capture,
            on_saved=self.ingestor.on_saved,
            sandbox=self.ingestor.sandbox,
        )

    def delete_note(self, note_id: str, viewer: Viewer) -> None:
        """Delete a note everywhere; the entries citing it lose that evidence first (and fall due)."""
        note = self.knowledge.get_note(note_id, viewer, audited=False)
        self.practices.settle_sources(note.summary.id, None)
        self.knowledge.delete_note(note.summary.id, viewer)

    def answer(self, question: str, viewer: Viewer) -> AskedAnswer:
        """Answer in the question's language from what the viewer may see (or abstain); the question is recorded."""
        return self.asker.ask(question, viewer, detect_language(question))

    def suggest_after(self, question: str, asked: AskedAnswer, viewer: Viewer) -> Suggestions:
        """The experts and peers for a question just answered; then the question counts for later askers' peers."""
        suggestions = self.finder.suggest(
            question, viewer, asked.answer.language, k=3, exclude_question_id=asked.question_id
        )
        self.finder.remember_question(asked.question_id)
        return suggestions

    def suggest(self, question: str, viewer: Viewer, k: int = 5) -> Suggestions:
        """The colleagues who know, with their evidence, and the peers facing the same question."""
        return self.finder.suggest(question, viewer, detect_language(question), k=k)

    def erase_person(self, name: str, viewer: Viewer) -> ErasureReport:
        """The right to erasure: remove or pseudonymise a person everywhere, and leave nothing of them on disk."""
        return self.eraser.erase(name, viewer)

    def close(self) -> None:
        """Stop background work and release connections."""
        self.jobs.stop()
        if self.tasks is not None:
            self.tasks.close()
        self.ingestor.close()
        self.knowledge.close()
        if self.data_lock is not None:
            self.data_lock.release()


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
    from capture.extraction.llm import LLMExtractor
    from retrieval.llm import build_chat_model

    chat_model = build_chat_model(
        capture.llm_provider,
        model=capture.llm_model,
        base_url=capture.llm_base_url,
        api_key=capture.llm_api_key.get_secret_value() if capture.llm_api_key else None,
        timeout=capture.llm_timeout,
    )
    return LLMExtractor(chat_model, model_name=capture.llm_model)


def build_answerer(capture: CaptureSettings, retrieval: RetrievalSettings, group_embedder: Embedder) -> Answerer:
    """The LLM answerer when a provider is configured (the extractive one is its fallback), else the extractive one."""
    # USE, not the search model: its cosines are comparable across texts, so an abstention threshold holds.
    extractive = ExtractiveAnswerer(group_embedder, threshold=retrieval.answer_threshold)
    if capture.llm_provider == "none":
        return extractive
    from retrieval.answers import LLMAnswerer
    from retrieval.llm import build_chat_model

    chat_model = build_chat_model(
        capture.llm_provider,
        model=capture.llm_model,
        base_url=capture.llm_base_url,
        api_key=capture.llm_api_key.get_secret_value() if capture.llm_api_key else None,
        timeout=capture.llm_timeout,
    )
    return LLMAnswerer(chat_model, model_name=capture.llm_model, fallback=extractive)


def _open_services(
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
    # An erasure rebuilds every collection in place: each is opened once and shared by all its users.
    collections = {suffix: store(suffix) for suffix in ("", "_practices", "_groups", "_questions")}
    audit_log = AuditLog(sessions)
    knowledge = KnowledgeBase(
        sessions, collections[""], embedder, ChunkCatalog(sessions), retrieval.originals_dir, audit_log=audit_log
    )
    practice_index = PracticeIndex(sessions, collections["_practices"], embedder)
    practices = PracticeBook(
        sessions,
        group_embedder=group_embedder,
        group_store=collections["_groups"],
        group_threshold=capture.duplicate_threshold,
        review_after_days=capture.review_after_days,
        on_published=practice_index.update,
        pii_detector=PresidioPiiDetector() if capture.pii_detection else None,
        pii_redaction=capture.pii_redaction,
    )
    jobs = ExtractionJobs(sessions, knowledge, practices, build_extractor(capture, group_embedder))

    def after_save(result: SaveResult) -> None:
        if result.status == "replaced":
            note = knowledge.get_note(result.note_id, Viewer.administrator(), audited=False)
            practices.settle_sources(result.note_id, note.text)
        jobs.enqueue(result.note_id)

    searcher = HybridSearcher(knowledge, dense_weight=retrieval.dense_weight, lexical_weight=retrieval.lexical_weight)
    return Services(
        retrieval=retrieval,
        capture=capture,
        knowledge=knowledge,
        searcher=searcher,
        ingestor=Ingestor(knowledge, capture, on_saved=after_save),
        practices=practices,
        practice_index=practice_index,
        jobs=jobs,
        audit=audit_log,
        eraser=PersonEraser(
            knowledge,
            practices,
            list(collections.values()),
            question_store=collections["_questions"],
            chunk_max_chars=capture.chunk_max_chars,
        ),
        asker=Asker(
            sessions,
            searcher,
            practice_index,
            build_answerer(capture, retrieval, group_embedder),
            k_practices=retrieval.answer_practices,
            k_chunks=retrieval.answer_chunks,
        ),
        finder=ExpertFinder(
            sessions,
            searcher,
            practice_index,
            question_store=collections["_questions"],
            question_embedder=group_embedder,
            question_threshold=retrieval.peer_question_threshold,
            question_window_days=retrieval.peer_question_days,
        ),
    )


def build_services(
    retrieval: RetrievalSettings,
    capture: CaptureSettings,
    embedder: Embedder | None = None,
    group_embedder: Embedder | None = None,
    *,
    reconcile: bool = True,
) -> Services:
    """Open the stores for writing and load the models, then repair what a crash may have left.

    With an embedded Chroma the data directory's lock is taken first (``DataDirLocked`` when another
    process holds it) and the first opening in the process checks the stores and repairs them, unless
    ``reconcile`` is false (``doctor`` looks at them as they are). With a Chroma server several processes
    may write, so none repairs on its own: ``compagnon doctor --repair`` does.
    """
    data_lock = None if retrieval.chroma_url else lock_data_dir(retrieval.data_dir)
    try:
        services = _open_services(retrieval, capture, embedder, group_embedder)
    except BaseException:
        if data_lock is not None:
            data_lock.release()
        raise
    services.data_lock = data_lock
    if capture.broker_url:
        try:
            uploads = Uploads(services.knowledge.sessions, capture, services.ingestor_for, services.jobs)
            services.tasks = TaskQueue(capture, uploads, services.jobs)
        except BaseException:
            services.close()
            raise
        services.jobs.on_queued = services.tasks.send_extraction
    if reconcile and data_lock is not None and data_lock.first:
        reconciler = services.reconciler()
        try:
            found = reconciler.check(lexical=False)  # a process's lexical index is built from SQL: it agrees
            if not found.consistent:
                reconciler.repair(found)
        except BaseException:
            services.close()
            raise
        if not found.consistent:
            repaired = {kind: count for kind, count in found.disagreements().items() if count}
            logger.warning("start-up repair of %s: %s", retrieval.data_dir, repaired)
        services.startup_repair = found
    return services
