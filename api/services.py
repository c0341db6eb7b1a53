"""Wiring the components together: the one place settings become live objects."""

from __future__ import annotations

import os
from dataclasses import dataclass

from capture.ingestion import Ingestor
from capture.settings import CaptureSettings
from retrieval.catalog import ChunkCatalog
from retrieval.database import open_database
from retrieval.embedders import Embedder, build_embedder
from retrieval.knowledge import KnowledgeBase
from retrieval.search import HybridSearcher
from retrieval.settings import RetrievalSettings
from retrieval.vectors import ChromaVectorStore


@dataclass(frozen=True)
class Services:
    """The live components a request or a CLI command works with."""

    retrieval: RetrievalSettings
    capture: CaptureSettings
    knowledge: KnowledgeBase
    searcher: HybridSearcher
    ingestor: Ingestor


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


def build_services(
    retrieval: RetrievalSettings, capture: CaptureSettings, embedder: Embedder | None = None
) -> Services:
    """Open the stores and load the embedder named by the settings (unless one is handed over)."""
    offline_environment()
    retrieval.data_dir.mkdir(parents=True, exist_ok=True)
    sessions = open_database(retrieval.resolved_database_url)
    store = ChromaVectorStore(
        retrieval.chroma_collection,
        path=None if retrieval.chroma_url else retrieval.chroma_dir,
        url=retrieval.chroma_url,
        ef_search=retrieval.hnsw_ef_search,
        ef_construction=retrieval.hnsw_ef_construction,
        max_neighbors=retrieval.hnsw_max_neighbors,
    )
    if embedder is None:
        embedder = build_embedder(retrieval.embedder, threads=retrieval.embed_threads)
    knowledge = KnowledgeBase(sessions, store, embedder, ChunkCatalog(sessions), retrieval.originals_dir)
    searcher = HybridSearcher(knowledge, dense_weight=retrieval.dense_weight, lexical_weight=retrieval.lexical_weight)
    return Services(
        retrieval=retrieval,
        capture=capture,
        knowledge=knowledge,
        searcher=searcher,
        ingestor=Ingestor(knowledge, capture),
    )
