"""Settings of the HTTP service and CLI, read from ``COMPAGNON_*`` environment variables."""

from __future__ import annotations

from typing import Literal

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
        description="Bearer token of the bootstrap admin on the HTTP API (manage accounts, upload, delete). "
        "Unset: only accounts sign in (create the first admin with `compagnon users create`).",
    )
    session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="Hours a browser session (the login cookie) stays valid."
    )
    https: bool = Field(
        default=False,
        description="The site is served over HTTPS (directly or behind a proxy): the session cookie gets the "
        "Secure flag.",
    )

    ask_rate_limit: int = Field(
        default=30, ge=1, description="Questions a client address may ask per minute (POST /api/ask...), per process."
    )
    login_rate_limit: int = Field(
        default=10, ge=1, description="Sign-in attempts a client address may make per minute, per process."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level `compagnon serve` logs (debug, info, warning or error)."
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="Log lines of `compagnon serve` on stderr: 'json' (one object per line, with the request id) "
        "or 'text'.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token GET /metrics requires (at least 16 characters). Unset: /metrics is open, like "
        "/healthz (it holds counts and timings, no content).",
    )

    @field_validator("admin_token", "metrics_token")
    @classmethod
    def _refuse_placeholder(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if secret.lower() in _PLACEHOLDERS or len(secret) < 16:
                raise ValueError("a token must be a real secret of at least 16 characters")
        return value
