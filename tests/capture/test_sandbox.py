"""The parsing sandbox: real worker processes, real limits, real hostile files (tests/data/hostile, see its README)."""

from __future__ import annotations

import io
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from capture.errors import (
    CorruptDocument,
    DocumentTooLarge,
    EmptyDocument,
    ParseFailed,
    ParserUnavailable,
    ParseTimeout,
    UnsupportedFormat,
)
from capture.parsing import parse_document
from capture.sandbox import ParsedDocument, ParseLimits, ParseSandbox
from capture.sniffing import sniff

DATA = Path(__file__).parents[1] / "data"
HOSTILE = DATA / "hostile"
DOCUMENTS = ("note.txt", "note_latin1.txt", "note.md", "note.html", "note.docx", "note.pdf", "note.odt")


def paragraph_flood(paragraphs: int = 40_000) -> bytes:
    """An HTML page of many short paragraphs: legitimate markup that costs unstructured seconds of CPU."""
    body = "".join(f"<p>Paragraphe {i}. Une phrase de plus.</p>" for i in range(paragraphs))
    return f"<html><body>{body}</body></html>".encode()


def line_flood(lines: int = 600_000) -> bytes:
    """A plain-text note of many short speaker turns: parsing it needs well over 32 MiB."""
    return b"\n".join(b"Karim : ligne %d" % i for i in range(lines))


def pid_is_gone(pid: int) -> bool:
    """Whether no process (not even a zombie) has this id any more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ParseSandbox]:
    """One sandbox with the default limits, shared by the tests that do not kill its workers."""
    shared = ParseSandbox(ParseLimits(), workers=2)
    yield shared
    shared.close()


SandboxFactory = Callable[..., ParseSandbox]


@pytest.fixture
def make_sandbox() -> Iterator[SandboxFactory]:
    """Sandboxes with their own limits (one worker unless told), closed after the test."""
    opened: list[ParseSandbox] = []

    def factory(limits: ParseLimits, workers: int = 1, documents_per_worker: int = 200) -> ParseSandbox:
        opened.append(ParseSandbox(limits, workers=workers, documents_per_worker=documents_per_worker))
        return opened[-1]

    yield factory
    for each in opened:
        each.close()


@pytest.mark.parametrize("name", DOCUMENTS)
def test_every_format_parses_in_the_sandbox_as_it_does_in_process(sandbox: ParseSandbox, name: str) -> None:
    data = (DATA / name).read_bytes()
    assert sandbox.parse(data) == ParsedDocument(sniff(data), tuple(parse_document(data, sniff(data))))


def test_a_given_type_is_not_sniffed_again(sandbox: ParseSandbox) -> None:
    parsed = sandbox.parse("# Titre\n\nKarim : on prépare le kit.".encode(), "md")
    assert parsed.source_type == "md"
    assert [block.kind for block in parsed.blocks] == ["heading", "paragraph"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("empty.txt", EmptyDocument),
        ("image.png", UnsupportedFormat),
        ("random.bin", UnsupportedFormat),
        ("corrupt.pdf", CorruptDocument),
        ("corrupt.docx", CorruptDocument),
        ("hostile/nested_spans.odt", CorruptDocument),
    ],
)
def test_a_document_error_keeps_its_code_across_the_process_boundary(
    sandbox: ParseSandbox, name: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        sandbox.parse((DATA / name).read_bytes())


def test_a_decompression_bomb_is_refused_in_the_sandbox(sandbox: ParseSandbox) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
        archive.writestr("word/media/bomb.bin", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(DocumentTooLarge, match="ratio"):
        sandbox.parse(buffer.getvalue())


def test_the_comment_bomb_that_hung_the_sniffer_is_read_at_once(sandbox: ParseSandbox) -> None:
    """``(<!--.*?-->\\s*)*`` could split 2000 empty comments in 2**1999 ways; the pattern now cannot backtrack."""
    data = (HOSTILE / "comment_bomb.html").read_bytes()
    started = time.monotonic()
    assert sniff(data) == "txt"
    assert time.monotonic() - started < 1.0
    assert sandbox.parse(data).source_type == "txt"


def test_no_process_before_the_first_document_and_none_after_close(make_sandbox: SandboxFactory) -> None:
    parsing = make_sandbox(ParseLimits())
    assert parsing.worker_pids() == []
    parsing.parse(b"Karim : bonjour.")
    (pid,) = parsing.worker_pids()
    parsing.close()
    assert parsing.worker_pids() == []
    assert pid_is_gone(pid)
    assert pid not in {child.pid for child in multiprocessing.active_children()}
    with pytest.raises(ParserUnavailable):
        parsing.parse(b"Karim : encore.")


def test_a_document_over_the_cpu_limit_is_stopped_and_the_next_one_parses(make_sandbox: SandboxFactory) -> None:
    parsing = make_sandbox(ParseLimits(cpu_seconds=1, wall_seconds=120))
    parsing.parse(b"Karim : bonjour.")
    (pid,) = parsing.worker_pids()
    with pytest.raises(ParseTimeout, match="CPU"):
        parsing.parse(paragraph_flood())
    assert pid_is_gone(pid)
    assert parsing.parse((DATA / "note.html").read_bytes()).source_type == "html"
    assert parsing.worker_pids() != [pid]


def test_a_document_over_the_wall_clock_limit_is_stopped_and_the_next_one_parses(
    make_sandbox: SandboxFactory,
) -> None:
    parsing = make_sandbox(ParseLimits(cpu_seconds=300, wall_seconds=1.0))
    parsing.parse(b"Karim : bonjour.")
    (pid,) = parsing.worker_pids()
    started = time.monotonic()
    with pytest.raises(ParseTimeout, match=r"over 1 s"):
        parsing.parse(paragraph_flood())
    assert time.monotonic() - started < 10
    assert pid_is_gone(pid)
    assert parsing.parse((DATA / "note.docx").read_bytes()).source_type == "docx"


def test_a_document_over_the_memory_limit_is_refused_and_the_next_one_parses(
    make_sandbox: SandboxFactory,
) -> None:
    parsing = make_sandbox(ParseLimits(memory_bytes=32 * 1024 * 1024))
    assert parsing.parse(line_flood(1_000)).source_type == "txt"
    with pytest.raises(ParseFailed, match="memory"):
        parsing.parse(line_flood())
    assert parsing.parse((DATA / "note.pdf").read_bytes()).source_type == "pdf"


def test_a_worker_killed_while_parsing_refuses_that_document_only(make_sandbox: SandboxFactory) -> None:
    parsing = make_sandbox(ParseLimits())
    parsing.parse(b"Karim : bonjour.")
    (pid,) = parsing.worker_pids()
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()
    with pytest.raises(ParseFailed, match="killed"):
        parsing.parse(paragraph_flood())
    assert parsing.parse((DATA / "note.odt").read_bytes()).source_type == "odt"


def test_a_worker_killed_while_idle_is_replaced(make_sandbox: SandboxFactory) -> None:
    parsing = make_sandbox(ParseLimits())
    parsing.parse(b"Karim : bonjour.")
    (pid,) = parsing.worker_pids()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while parsing.worker_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert parsing.parse((DATA / "note.md").read_bytes()).source_type == "md"
    (replacement,) = parsing.worker_pids()
    assert replacement != pid


def test_a_worker_is_recycled_after_its_quota_of_documents(make_sandbox: SandboxFactory) -> None:
    parsing = make_sandbox(ParseLimits(), documents_per_worker=2)
    parsing.parse(b"Karim : un.")
    (first,) = parsing.worker_pids()
    parsing.parse(b"Karim : deux.")
    assert parsing.worker_pids() == []
    assert pid_is_gone(first)
    parsing.parse(b"Karim : trois.")
    assert parsing.worker_pids() != [first]


def test_concurrent_uploads_share_the_pool(make_sandbox: SandboxFactory) -> None:
    parsing = make_sandbox(ParseLimits(), workers=2)
    data = (DATA / "note.docx").read_bytes()
    expected = parsing.parse(data)
    results: list[ParsedDocument] = []
    pids: set[int] = set()

    def upload() -> None:
        results.append(parsing.parse(data))
        pids.update(parsing.worker_pids())

    threads = [threading.Thread(target=upload) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 6
    assert 1 <= len(pids) <= 2


def test_a_worker_has_no_network() -> None:
    """A parser that fetched a remote image or an external entity would reach no one (loopback included)."""
    script = (
        "from capture.sandbox import _forbid_network\n"
        "_forbid_network()\n"
        "import socket, urllib.error, urllib.request\n"
        "try:\n"
        "    urllib.request.urlopen('http://127.0.0.1:9/', timeout=1)\n"
        "except urllib.error.URLError as exc:\n"
        "    print('refused:', exc.reason)\n"
        "try:\n"
        "    socket.socket().connect(('127.0.0.1', 9))\n"
        "except PermissionError as exc:\n"
        "    print('refused:', exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.count("refused: the parsing sandbox has no network") == 2


def test_an_idle_worker_leaves_and_the_next_document_still_parses() -> None:
    """Idle workers do not pile up, even in a sandbox nobody closed; a document sent as one leaves is re-sent."""
    parsing = ParseSandbox(ParseLimits(), workers=1, idle_seconds=0.3)
    try:
        parsing.parse(b"Karim : un.")
        (pid,) = parsing.worker_pids()
        deadline = time.monotonic() + 10
        while not pid_is_gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_is_gone(pid)
        for _ in range(10):  # each sent about when the worker's idle time runs out (most of them race its exit)
            assert parsing.parse(b"Karim : deux.").source_type == "txt"
            time.sleep(0.3)
    finally:
        parsing.close()
