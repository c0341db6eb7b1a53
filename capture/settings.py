"""Settings of the capture pipeline, read from ``COMPAGNON_*`` environment variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CaptureSettings(BaseSettings):
    """Limits applied to uploads, and how notes are cut into chunks."""

    model_config = SettingsConfigDict(env_prefix="COMPAGNON_", extra="ignore")

    max_upload_bytes: int = Field(
        default=20 * 1024 * 1024, ge=1, description="Largest accepted upload, in bytes (default 20 MB)."
    )
    max_pdf_pages: int = Field(default=500, ge=1, description="Most pages read from a PDF.")
    max_uncompressed_bytes: int = Field(
        default=200 * 1024 * 1024,
        ge=1,
        description="Largest total uncompressed size of a .docx/.odt archive (decompression-bomb guard).",
    )
    max_compression_ratio: int = Field(
        default=100, ge=1, description="Largest uncompressed/compressed ratio of a .docx/.odt archive."
    )
    chunk_max_chars: int = Field(
        default=1200, ge=200, description="Longest chunk, in characters; longer turns are split at sentences."
    )
    llm_provider: Literal["none", "openai", "ollama"] = Field(
        default="none",
        description="Who drafts best practices: 'none' (the offline extractor), 'openai' (any OpenAI-compatible "
        "endpoint: OpenAI, Azure, Mistral, vLLM, llama.cpp server) or 'ollama'.",
    )
    llm_model: str = Field(default="", description="Model name sent to the LLM endpoint.")
    llm_base_url: str | None = Field(
        default=None, description="Base URL of the LLM endpoint (e.g. http://127.0.0.1:8080/v1 for llama.cpp)."
    )
    llm_api_key: SecretStr | None = Field(default=None, description="API key of the LLM endpoint, if it needs one.")
    llm_timeout: float = Field(default=120.0, gt=0, description="Seconds before an LLM call is abandoned.")
    duplicate_threshold: float = Field(
        default=0.53,
        ge=0.0,
        le=1.0,
        description="Cosine (multilingual USE) from which two drafts of different notes state the same practice "
        "(calibrated on capture/extraction/duplicate_pairs.jsonl).",
    )
    review_after_days: int = Field(
        default=365, ge=1, description="Days after approval before an entry falls due for review."
    )
    parse_workers: int = Field(
        default=2, ge=1, description="Sandboxed processes that parse uploads (started on the first upload)."
    )
    parse_memory_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=64 * 1024 * 1024,
        description="Memory a parsing process may add while it parses one document (address space over its "
        "idle footprint, RLIMIT_AS); over it the upload is refused.",
    )
    parse_cpu_seconds: int = Field(
        default=30, ge=1, description="CPU seconds a parsing process may spend on one document (RLIMIT_CPU)."
    )
    parse_wall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Seconds before the parsing of one document is abandoned and its process killed.",
    )
    pii_detection: bool = Field(
        default=True,
        description="Flag personal data (third-party names, emails, phones, IBANs, NIRs) in best-practice drafts "
        "for the reviewer (Presidio with the packaged spaCy model fr_core_news_sm).",
    )
    pii_redaction: bool = Field(
        default=False,
        description="On approval, replace the flagged personal data of an entry by placeholders such as [PERSONNE] "
        "or [EMAIL] (recorded in its history).",
    )
    broker_url: str | None = Field(
        default=None,
        description="Task queue of the workers (Dramatiq), e.g. redis://127.0.0.1:6379/0 or "
        "amqp://guest:guest@127.0.0.1:5672/: uploads answer 202 and are ingested, like extraction jobs, by "
        "`compagnon worker` processes. Unset: both run inside the API process.",
    )
    broker_queue: str = Field(
        default="compagnon",
        pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,60}$",
        description="Prefix of the task queues' names (one deployment's API processes and workers share it).",
    )
    job_lease_seconds: int = Field(
        default=900,
        ge=30,
        description="Seconds a worker holds an upload or extraction job it claimed; after that (the worker died), "
        "another worker may take it over.",
    )
