"""Settings of the capture pipeline, read from ``COMPAGNON_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
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
