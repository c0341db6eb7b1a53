"""Settings of the HTTP service and CLI, read from ``COMPAGNON_*`` environment variables."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDERS = {"changeme", "change-me", "secret", "token", "xxx"}


class ApiSettings(BaseSettings):
    """How the service listens, and who may write through it."""

    model_config = SettingsConfigDict(env_prefix="COMPAGNON_", extra="ignore")

    host: str = Field(default="127.0.0.1", description="Address the HTTP service listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the HTTP service listens on.")
    admin_token: SecretStr | None = Field(
        default=None,
        description="Bearer token that grants admin rights on the HTTP API (upload, delete, see every note). "
        "Unset: the API is read-only and shows public notes only.",
    )

    @field_validator("admin_token")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if secret.lower() in _PLACEHOLDERS or len(secret) < 16:
                raise ValueError("admin_token must be a real secret of at least 16 characters")
        return value
