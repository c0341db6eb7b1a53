"""Request ids, one structured log line per request, and the Prometheus metrics of the service.

What is logged and measured names routes, statuses, durations, accounts and counts, never a query
string, a question, an answer or any text of a note.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import time
import traceback
import uuid
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retrieval.records import JobRecord

REQUEST_ID_HEADER = "X-Request-ID"
JOB_STATES = ("pending", "running", "done", "failed", "cancelled")
# A client's request id is kept only if it is a plain token: no spaces, quotes or control characters to inject.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_UNMATCHED = "unmatched"
# The upload route, and what its status says of the ingestion.
_UPLOAD = ("POST", "/api/notes")
_UPLOAD_OUTCOMES = {201: "created", 200: "existing", 202: "queued"}

access_logger = logging.getLogger("compagnon.access")
logger = logging.getLogger(__name__)


@dataclass
class RequestContext:
    """What the logs know of the request being served."""

    request_id: str
    user: str | None = None


_current: ContextVar[RequestContext | None] = ContextVar("compagnon_request", default=None)


def current_request_id() -> str | None:
    """The id of the request this code runs for, if any."""
    context = _current.get()
    return context.request_id if context is not None else None


def note_user(login: str) -> None:
    """Record who the current request acts as, for its log line."""
    context = _current.get()
    if context is not None:
        context.user = login


def request_id_from(header: str | None) -> str:
    """The client's request id if it is a sane token, else a new one."""
    if header is not None and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


# ----- logs -----------------------------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, request id and the record's ``fields``."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "timestamp": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id()
        if request_id is not None:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A human-readable line that still carries the request id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as text, with its request id (``-`` outside a request)."""
        record.request_id = getattr(record, "request_id", None) or current_request_id() or "-"
        message = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            message += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return message


def configure_logging(level: str, log_format: str) -> None:
    """Send every logger to stderr in the chosen format; uvicorn's own access log gives way to ours."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.getLogger("uvicorn.access").disabled = True


# ----- metrics --------------------------------------------------------------------------------------


class JobStates(Collector):
    """Extraction jobs by state, counted in SQL at scrape time (so every process sees the same numbers)."""

    def __init__(self, sessions: sessionmaker) -> None:  # type: ignore[type-arg]
        self.sessions = sessions

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("compagnon_jobs", "Extraction jobs by state.", labels=["state"])

    def describe(self) -> Iterator[Metric]:
        """The metric's name, without querying SQL (registration must not need the database)."""
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        """One gauge sample per job state; nothing when the database does not answer (/readyz says why)."""
        try:
            with self.sessions() as session:
                rows = session.execute(select(JobRecord.status, func.count()).group_by(JobRecord.status)).tuples()
                counts = {str(state): int(count) for state, count in rows}
        except SQLAlchemyError as exc:
            logger.warning("cannot count the jobs for /metrics: %s", type(exc).__name__)
            return
        gauge = self._family()
        for state in sorted({*JOB_STATES, *counts}):
            gauge.add_metric([state], counts.get(state, 0))
        yield gauge


class AppMetrics:
    """The metrics of one application: request latency, and the job states of its records database."""

    def __init__(self, sessions: sessionmaker) -> None:  # type: ignore[type-arg]
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "compagnon_http_request_duration_seconds",
            "Time to serve an HTTP request, by method, route template and status.",
            ["method", "route", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ingestions = Counter(
            "compagnon_ingestions",
            "Note uploads over HTTP by outcome: created (201), existing (200: replaced or unchanged), "
            "queued (202, for the workers), refused (4xx) or failed (5xx).",
            ["outcome"],
            registry=self.registry,
        )
        self.registry.register(JobStates(sessions))


# ----- middleware -----------------------------------------------------------------------------------


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request (``/api/notes/{note_id}``), never the raw path."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else _UNMATCHED


def upload_outcome(status: int) -> str:
    """What an upload's response status says of the ingestion."""
    if status >= 500:
        return "failed"
    if status >= 400:
        return "refused"
    return _UPLOAD_OUTCOMES.get(status, "other")


class RequestObservability:
    """Gives each request an id (echoed in ``X-Request-ID``), times it, and logs one line when it ends."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request inside its context."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = dict(scope["headers"]).get(REQUEST_ID_HEADER.lower().encode("latin-1"))
        context = RequestContext(request_id_from(header.decode("latin-1") if header is not None else None))
        token = _current.set(context)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", context.request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = str(scope["method"])
            self.metrics.latency.labels(method, route, str(status)).observe(elapsed)
            if (method, route) == _UPLOAD:
                self.metrics.ingestions.labels(upload_outcome(status)).inc()
            fields: dict[str, Any] = {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            if context.user is not None:
                fields["user"] = context.user
            level = logging.ERROR if status >= 500 else logging.INFO
            access_logger.log(level, "%s %s %d", method, route, status, extra={"fields": fields})
            _current.reset(token)
