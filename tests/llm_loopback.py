"""Test doubles for the LLM paths: a scripted chat model (parsing and error paths) and a loopback HTTP server.

The loopback server plays an OpenAI-compatible or Ollama endpoint on 127.0.0.1, so the real LangChain clients
are exercised end to end; the scripted model only stands in where a reply must be malformed on purpose.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

Reply = dict[str, Any] | str | Exception


class ToolCallingChatModel(BaseChatModel):
    """A test chat model that takes tools the way the OpenAI-compatible clients do (as OpenAI tool schemas)."""

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(tool) for tool in tools], tool_choice=tool_choice, **kwargs)


class ScriptedChatModel(ToolCallingChatModel):
    """Plays back replies (tool arguments, plain text or an error) and records what it was sent."""

    replies: list[Any]
    received: list[list[BaseMessage]] = Field(default_factory=list)
    options: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.received.append(list(messages))
        self.options.append(kwargs)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, str):
            message = AIMessage(content=reply)
        else:
            name = kwargs["tools"][0]["function"]["name"]
            message = AIMessage(content="", tool_calls=[{"name": name, "args": reply, "id": "call-1"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


@dataclass
class Received:
    """One request the loopback server got (header names in lower case)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]


HANG = (0, "", b"")


@dataclass
class LoopbackLLM:
    """A tiny HTTP server on 127.0.0.1 that plays back (status, content type, body) replies; HANG never answers."""

    replies: list[tuple[int, str, bytes]]
    received: list[Received] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    port: int = 0


def _handler(state: LoopbackLLM) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            headers = {key.lower(): value for key, value in self.headers.items()}
            state.received.append(Received(self.path, headers, json.loads(self.rfile.read(length) or b"{}")))
            reply = state.replies.pop(0) if state.replies else (500, "text/plain", b"no scripted reply left")
            if reply == HANG:
                state.release.wait(10)
                return
            status, content_type, payload = reply
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test asserts on what was received."""

    return Handler


@contextmanager
def serve_loopback() -> Iterator[LoopbackLLM]:
    """Run a loopback LLM server for the duration of the block."""
    state = LoopbackLLM(replies=[])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="loopback-llm", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def openai_tool_call(tool: str, arguments: str) -> tuple[int, str, bytes]:
    """An OpenAI chat-completion reply calling ``tool`` with these (JSON-encoded) arguments."""
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "test",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": tool, "arguments": arguments}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }
    return 200, "application/json", json.dumps(body).encode()


def ollama_tool_call(tool: str, arguments: dict[str, Any]) -> tuple[int, str, bytes]:
    """An Ollama streamed chat reply calling ``tool`` with these arguments."""
    head = {"model": "test", "created_at": "2026-01-01T00:00:00Z"}
    call = {"function": {"name": tool, "arguments": arguments}}
    lines = [
        {**head, "message": {"role": "assistant", "content": "", "tool_calls": [call]}, "done": False},
        {**head, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop", "eval_count": 9},
    ]
    return 200, "application/x-ndjson", "".join(json.dumps(line) + "\n" for line in lines).encode()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
