"""Parsing uploads in sandboxed worker processes, so that a hostile file cannot take the service down.

Workers are forked from multiprocessing's fork server (a fresh single-threaded process, never the threaded
service itself) in which unstructured, spaCy and pypdf are imported once: importing them takes seconds, forking
a warm worker a fraction of one. For each document a worker caps its own address space (RLIMIT_AS, over its idle
footprint) and CPU time (RLIMIT_CPU); the service kills it past the wall-clock deadline. A worker that dies is
replaced on the next upload, and the document it was parsing is refused with a stable code.

A worker answers in JSON, never in pickle: a parser exploited by a document must not be able to run code in the
service through what it sends back.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import resource
import signal
import socket
import threading
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from capture.errors import (
    CaptureError,
    CorruptDocument,
    DocumentTooLarge,
    EmptyDocument,
    ParseFailed,
    ParserUnavailable,
    ParseTimeout,
    UnsupportedFormat,
)
from capture.parsing import (
    BLOCK_KINDS,
    Block,
    parse_document,
    patch_unstructured_offline,
    quiet_unstructured_environment,
)
from capture.settings import CaptureSettings
from capture.sniffing import SOURCE_TYPES, sniff

# Imported once in the fork server, so that each worker forked from it starts warm. presidio_analyzer is a spaCy
# plugin that pulls in transformers and torch: spacy.blank() imports every plugin, 5 s of the worker's start.
_PRELOAD = (
    "capture.sandbox",
    "pypdf",
    "spacy",
    "presidio_analyzer",
    "unstructured.nlp.tokenize",
    "unstructured.partition.html",
    "unstructured.partition.docx",
)
_WARM_UP = b"<html><body><h1>Warm-up</h1><p>One sentence. Another one.</p><ul><li>An item</li></ul></body></html>"
_START_SECONDS = 120.0  # a cold fork server imports the parsers (about 5 s on 2 cores) before forking
_STOP_SECONDS = 5.0
_MIN_REPLY_BYTES = 64 * 1024 * 1024
_DOCUMENT_ERRORS: dict[str, type[CaptureError]] = {
    error.code: error for error in (UnsupportedFormat, EmptyDocument, CorruptDocument, DocumentTooLarge)
}
_OUT_OF_MEMORY = "out_of_memory"
_PARSER_BUG = "parser_bug"


@dataclass(frozen=True)
class ParseLimits:
    """What parsing one document may cost a worker, and the format guards it applies."""

    memory_bytes: int = 1024 * 1024 * 1024
    cpu_seconds: int = 30
    wall_seconds: float = 60.0
    max_pdf_pages: int = 500
    max_uncompressed_bytes: int = 200 * 1024 * 1024
    max_compression_ratio: int = 100

    @classmethod
    def from_settings(cls, settings: CaptureSettings) -> ParseLimits:
        """The limits named by the capture settings."""
        return cls(
            memory_bytes=settings.parse_memory_bytes,
            cpu_seconds=settings.parse_cpu_seconds,
            wall_seconds=settings.parse_wall_seconds,
            max_pdf_pages=settings.max_pdf_pages,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
        )


@dataclass(frozen=True)
class ParsedDocument:
    """A document's sniffed type and its blocks."""

    source_type: str
    blocks: tuple[Block, ...]


def _forbid_network() -> None:
    """A parser never needs the network: refuse it (remote images, external entities, model downloads)."""

    def refuse(*_args: object, **_kwargs: object) -> Any:
        raise PermissionError("the parsing sandbox has no network")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.create_connection = refuse
    socket.getaddrinfo = refuse


def _address_space() -> int:
    """The worker's current address space, in bytes (Linux's /proc)."""
    return int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()


def _lower_soft_limit(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    resource.setrlimit(which, (value if hard == resource.RLIM_INFINITY else min(value, hard), hard))


def _limit_one_document(limits: ParseLimits) -> None:
    """Cap what the next document may cost; RLIMIT_CPU counts the worker's whole life, so it moves each time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _lower_soft_limit(resource.RLIMIT_CPU, math.ceil(usage.ru_utime + usage.ru_stime) + limits.cpu_seconds)
    _lower_soft_limit(resource.RLIMIT_AS, _address_space() + limits.memory_bytes)


def _lift_limits() -> None:
    for which in (resource.RLIMIT_CPU, resource.RLIMIT_AS):
        _, hard = resource.getrlimit(which)
        resource.setrlimit(which, (hard, hard))


def _parse_in_worker(data: bytes, source_type: str | None, limits: ParseLimits) -> dict[str, Any]:
    try:
        sniffed = source_type or sniff(data, limits.max_uncompressed_bytes, limits.max_compression_ratio)
        blocks = parse_document(
            data, sniffed, limits.max_pdf_pages, limits.max_uncompressed_bytes, limits.max_compression_ratio
        )
    except CaptureError as exc:
        return {"error": exc.code, "detail": exc.detail}
    return {"source_type": sniffed, "blocks": [[block.kind, block.text] for block in blocks]}


def _serve(connection: Connection, limits: ParseLimits, idle_seconds: float) -> None:
    """A worker's life: warm up, then parse one document at a time until told to stop or left idle too long."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a worker stopped by SIGXCPU must not write a core file
    patch_unstructured_offline()
    parse_document(_WARM_UP, "html")  # unstructured and spaCy finish loading on their first document
    _forbid_network()
    connection.send_bytes(b'{"ready": true}')
    while True:
        if not connection.poll(idle_seconds):
            return  # exit code 0: the service sees a retired worker and forks a fresh one when needed
        try:
            job = connection.recv()
        except EOFError:
            return  # the service went away
        if job is None:
            return
        data, source_type = job
        retire = False
        _limit_one_document(limits)
        try:
            answer = json.dumps(_parse_in_worker(data, source_type, limits), ensure_ascii=False).encode()
        except MemoryError:
            answer, retire = json.dumps({"error": _OUT_OF_MEMORY}).encode(), True
        except Exception as exc:  # a parser's bug on a hostile file refuses that file, it does not end the worker
            answer = json.dumps({"error": _PARSER_BUG, "detail": type(exc).__name__}).encode()
        del data, job
        _lift_limits()
        connection.send_bytes(answer)
        if retire:
            return  # after a MemoryError the heap may be in any state: the service starts a fresh worker


class _Worker:
    """One sandboxed parsing process and the service's end of its pipe."""

    def __init__(self, context: ForkServerContext, limits: ParseLimits, idle_seconds: float) -> None:
        self.connection, self._child_end = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(self._child_end, limits, idle_seconds), name="compagnon-parser", daemon=True
        )
        self.documents = 0
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Start the process and wait until it is warm."""
        self.process.start()
        self._child_end.close()
        try:
            if not self.connection.poll(_START_SECONDS):
                raise ParserUnavailable(f"no parsing process was ready within {_START_SECONDS:.0f} s")
            self.connection.recv_bytes(64)
        except (EOFError, OSError) as exc:
            raise ParserUnavailable(f"the parsing process did not start (exit code {self.exit_code()})") from exc

    def exit_code(self) -> int | None:
        """The process's exit code once it has ended (negative: the signal that ended it)."""
        with self._lock:
            if self._stopped:
                return None
            self.process.join(_STOP_SECONDS)
            return self.process.exitcode

    def alive(self) -> bool:
        """Whether the process still runs."""
        with self._lock:
            return not self._stopped and self.process.is_alive()

    def stop(self, graceful: bool) -> None:
        """End the process (asked to leave, or killed) and release its pipe; idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._child_end.close()
            if self.process.pid is None:  # never started
                self.connection.close()
                return
            if graceful and self.process.is_alive():
                with contextlib.suppress(OSError):  # it may have died on its own meanwhile
                    self.connection.send(None)
                self.process.join(_STOP_SECONDS)
            if self.process.is_alive():
                self.process.kill()
            self.process.join()
            self.connection.close()
            self.process.close()


def _stop_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.stop(graceful=True)
    workers.clear()


def _fork_server() -> ForkServerContext:
    """The fork-server context, with the parsers preloaded when this process starts its fork server."""
    quiet_unstructured_environment()  # the fork server inherits the environment, then imports unstructured
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_PRELOAD))  # no effect once the server runs: it is then already warm
    return context


class ParseSandbox:
    """A small pool of sandboxed parsing processes, started on first use and replaced when one dies."""

    def __init__(
        self, limits: ParseLimits, workers: int = 2, documents_per_worker: int = 200, idle_seconds: float = 30.0
    ) -> None:
        self.limits = limits
        self.size = workers
        # A long-lived parser fragments its heap, and an idle one holds memory (a sandbox never closed too):
        # a fresh worker forked from the warm server costs a fraction of a second.
        self.documents_per_worker = documents_per_worker
        self.idle_seconds = idle_seconds
        self._condition = threading.Condition()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._starting = 0
        self._closed = False
        self._finalizer = weakref.finalize(self, _stop_all, self._workers)

    @classmethod
    def from_settings(cls, settings: CaptureSettings) -> ParseSandbox:
        """The sandbox named by the capture settings (no process is started yet)."""
        return cls(ParseLimits.from_settings(settings), workers=settings.parse_workers)

    def worker_pids(self) -> list[int]:
        """Process ids of the live workers (for operators and tests)."""
        with self._condition:
            workers = list(self._workers)
        return [pid for worker in workers if worker.alive() and (pid := worker.process.pid) is not None]

    def parse(self, data: bytes, source_type: str | None = None) -> ParsedDocument:
        """Sniff (unless the type is given) and parse a document in a worker, within the limits."""
        while True:
            worker = self._acquire()
            healthy = False
            try:
                reply = self._exchange(worker, data, source_type)
                healthy = reply.get("error") != _OUT_OF_MEMORY
            except _Retired:
                continue  # it left idle just as the document was sent: the document goes to a fresh worker
            finally:
                if healthy:
                    self._release(worker)
                else:
                    self._discard(worker)
            return _read_reply(reply)

    def close(self) -> None:
        """Stop every worker; parsing afterwards is refused."""
        with self._condition:
            self._closed = True
            self._idle.clear()
            self._condition.notify_all()
        self._finalizer()

    def _acquire(self) -> _Worker:
        with self._condition:
            while True:
                if self._closed:
                    raise ParserUnavailable("the parsing sandbox is closed")
                if self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    self._workers.discard(worker)  # killed while idle (by an operator, the OOM killer)
                    worker.stop(graceful=False)
                    continue
                if len(self._workers) + self._starting < self.size:
                    self._starting += 1
                    break
                self._condition.wait()
        worker = _Worker(_fork_server(), self.limits, self.idle_seconds)
        try:
            worker.start()
        except BaseException:
            worker.stop(graceful=False)
            with self._condition:
                self._starting -= 1
                self._condition.notify()
            raise
        with self._condition:
            self._starting -= 1
            self._workers.add(worker)
        return worker

    def _release(self, worker: _Worker) -> None:
        worker.documents += 1
        with self._condition:
            keep = not self._closed and worker.documents < self.documents_per_worker
            if keep:
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
            self._condition.notify()
        if not keep:
            worker.stop(graceful=True)

    def _discard(self, worker: _Worker) -> None:
        worker.stop(graceful=False)
        with self._condition:
            self._workers.discard(worker)
            self._condition.notify()

    def _exchange(self, worker: _Worker, data: bytes, source_type: str | None) -> dict[str, Any]:
        """Send a document, wait for the answer within the wall-clock limit; a lost worker becomes a domain error."""
        wall = self.limits.wall_seconds
        try:
            worker.connection.send((data, source_type))
            if not worker.connection.poll(wall):
                raise ParseTimeout(f"parsing took over {wall:g} s and was stopped")
            raw = worker.connection.recv_bytes(max(self.limits.max_uncompressed_bytes, _MIN_REPLY_BYTES))
        except (EOFError, ConnectionError) as exc:  # the worker is gone: EOF, a broken pipe, a reset socket
            exit_code = worker.exit_code()
            if exit_code == 0:
                raise _Retired from exc
            raise _lost(exit_code, self.limits) from exc
        except OSError as exc:  # recv_bytes refuses an answer over its length limit
            raise DocumentTooLarge("the document's text is over the size the service accepts") from exc
        try:
            reply = json.loads(raw)
        except ValueError as exc:
            raise ParseFailed("the parsing process sent an unreadable answer") from exc
        if not isinstance(reply, dict):
            raise ParseFailed("the parsing process sent an unreadable answer")
        return reply


class _Retired(Exception):
    """The worker had left, idle, before it read the document (it never ends with 0 otherwise)."""


def _lost(exit_code: int | None, limits: ParseLimits) -> CaptureError:
    """The error for a document whose worker died while parsing it."""
    if exit_code == -signal.SIGXCPU:
        return ParseTimeout(f"parsing used over {limits.cpu_seconds} s of CPU and was stopped")
    if exit_code == -signal.SIGKILL:
        return ParseFailed("the parsing process was killed (out of memory, or by an operator)")
    if exit_code is not None and exit_code < 0:
        return ParseFailed(f"the parsing process crashed ({signal.Signals(-exit_code).name})")
    return ParseFailed(f"the parsing process ended unexpectedly (exit code {exit_code})")


def _read_reply(reply: dict[str, Any]) -> ParsedDocument:
    """A worker's JSON answer, checked field by field (it comes from a process that read a hostile file)."""
    error = reply.get("error")
    if error is not None:
        detail = str(reply.get("detail", ""))
        if error == _OUT_OF_MEMORY:
            raise ParseFailed("parsing the document needed more memory than the limit allows")
        if error == _PARSER_BUG:
            raise ParseFailed(f"the parser failed on this document ({detail})")
        raise _DOCUMENT_ERRORS.get(str(error), ParseFailed)(detail)
    source_type = reply.get("source_type")
    blocks = reply.get("blocks")
    if source_type not in SOURCE_TYPES or not isinstance(blocks, list):
        raise ParseFailed("the parsing process sent an unreadable answer")
    parsed: list[Block] = []
    for item in blocks:
        if not (isinstance(item, list) and len(item) == 2 and item[0] in BLOCK_KINDS and isinstance(item[1], str)):
            raise ParseFailed("the parsing process sent an unreadable answer")
        parsed.append(Block(item[0], item[1]))
    return ParsedDocument(str(source_type), tuple(parsed))
