"""The configured chat model (LangChain) and how its provider errors are classified, shared by capture and answers.

Both the best-practice extractor (``capture``) and the answer engine (``retrieval``) call an LLM; the builder and
the classification live here because ``capture`` imports ``retrieval`` and never the reverse.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

import httpx
from langchain_core.exceptions import (
    ContextOverflowError,
    ModelAPIError,
    ModelConnectionError,
    ModelError,
    ModelRateLimitError,
    ModelTimeoutError,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from pydantic import SecretStr, ValidationError

__all__ = ["ProviderFailure", "build_chat_model", "describe_invalid_output", "produced_text", "provider_failure_code"]


class ProviderFailure(StrEnum):
    """Stable codes of the ways a call to the LLM provider fails (the provider, not our code, is to blame)."""

    TIMEOUT = "llm_timeout"
    UNAVAILABLE = "llm_unavailable"
    REQUEST_REJECTED = "llm_request_rejected"
    CONTEXT_OVERFLOW = "llm_context_overflow"


def build_chat_model(
    provider: str,
    model: str,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    max_retries: int = 2,
) -> BaseChatModel:
    """A LangChain chat model for ``openai`` (any OpenAI-compatible endpoint) or ``ollama``, imported lazily."""
    if not model:
        raise ValueError("an LLM provider needs a model name (COMPAGNON_LLM_MODEL)")
    if provider == "openai":
        try:
            from langchain_openai import ChatOpenAI
        except ImportError as exc:
            raise ImportError("the LLM provider 'openai' needs the package langchain-openai") from exc
        # OpenAI-compatible servers (llama.cpp, vLLM) need no key, but the OpenAI client refuses to start without one.
        key = api_key or ("unused" if base_url else None)
        return ChatOpenAI(
            model=model,
            base_url=base_url,
            api_key=SecretStr(key) if key else None,
            timeout=timeout,
            max_retries=max_retries,
            temperature=0,
        )
    if provider == "ollama":
        try:
            from langchain_ollama import ChatOllama
        except ImportError as exc:
            raise ImportError("the LLM provider 'ollama' needs the package langchain-ollama") from exc
        client_kwargs: dict[str, Any] = {"timeout": timeout}
        if api_key:
            client_kwargs["headers"] = {"Authorization": f"Bearer {api_key}"}
        return ChatOllama(model=model, base_url=base_url, temperature=0, client_kwargs=client_kwargs)
    raise ValueError(f"unknown LLM provider {provider!r}: expected 'openai' or 'ollama'")


def provider_failure_code(error: Exception) -> ProviderFailure | None:
    """The failure code of an error raised while calling the model; None when the provider is not to blame."""
    # LangChain's own classification first (langchain-openai raises it), then what the Ollama client raises.
    if isinstance(error, ModelTimeoutError | httpx.TimeoutException | TimeoutError):
        return ProviderFailure.TIMEOUT
    if isinstance(
        error, ModelConnectionError | ModelAPIError | ModelRateLimitError | httpx.TransportError | ConnectionError
    ):
        return ProviderFailure.UNAVAILABLE
    if isinstance(error, ContextOverflowError):
        return ProviderFailure.CONTEXT_OVERFLOW
    if isinstance(error, ModelError):
        return ProviderFailure.REQUEST_REJECTED
    status = getattr(error, "status_code", None)  # ollama.ResponseError
    if isinstance(status, int) and status >= 400:
        return (
            ProviderFailure.UNAVAILABLE if status >= 500 or status in (408, 429) else ProviderFailure.REQUEST_REJECTED
        )
    return None


def describe_invalid_output(error: BaseException | None, raw: Any) -> str:
    """What was wrong with a structured answer, in words the model can act on in a repair request."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(root)'}: {item['msg']}"
            for item in error.errors(include_url=False)[:10]
        )
    if error is not None:
        return " ".join(str(error).split())[:1000] or type(error).__name__
    if isinstance(raw, AIMessage) and raw.invalid_tool_calls:
        return f"the tool arguments are not valid JSON: {raw.invalid_tool_calls[0].get('error') or ''}".strip()
    return "no call to the tool: answer only by calling the tool, with arguments that follow its schema"


def produced_text(raw: Any) -> str:
    """What the model answered, as text, to show it back in the repair request."""
    if isinstance(raw, AIMessage):
        if raw.tool_calls:
            return json.dumps(raw.tool_calls[0]["args"], ensure_ascii=False)[:4000]
        if raw.invalid_tool_calls:
            return str(raw.invalid_tool_calls[0].get("args") or "")[:4000]
        return raw.text[:4000]
    return ""
