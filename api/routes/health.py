"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from api.deps import ServicesDep, get_settings
from api.errors import ApiError, ErrorCode
from api.services import Services

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)
# A check that takes longer than this counts as failed: a hung dependency must not hang the probe.
CHECK_TIMEOUT_SECONDS = 5.0


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    """Always ``ok`` while the process serves requests."""
    return {"status": "ok"}


def readiness_checks(services: Services) -> dict[str, Callable[[], None]]:
    """The dependencies a request needs, each with a probe that raises when it is unreachable."""

    def database() -> None:
        with services.knowledge.sessions() as session:
            session.execute(text("SELECT 1"))

    def vector_store() -> None:
        services.knowledge.store.count()

    checks = {"database": database, "vector_store": vector_store}
    broker_url = services.capture.broker_url
    if broker_url:
        from capture.queue import broker_reachable

        def queue() -> None:
            if not broker_reachable(broker_url):
                raise ConnectionError("the broker does not answer")

        checks["queue"] = queue
    return checks


async def _probe(name: str, check: Callable[[], None]) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(check), timeout=CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        logger.warning("readiness check %s timed out", name)
        return "timeout"
    except Exception as exc:  # any failure of a dependency means not ready; its type is enough to act on
        logger.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get(
    "/readyz",
    summary="The database, the vector store and (when configured) the task queue answer",
    responses={503: {"description": "A dependency does not answer; `checks` names it"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """200 ``ready`` when every dependency answers, else 503 with each check's outcome (no address, no secret)."""
    checks = readiness_checks(services)
    outcomes = await asyncio.gather(*(_probe(name, check) for name, check in checks.items()))
    results = dict(zip(checks, outcomes, strict=True))
    ready = all(outcome == "ok" for outcome in outcomes)
    body = {"status": "ready" if ready else "unready", "checks": results}
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics: request latency, jobs by state, ingestions, extraction failures",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
def metrics(request: Request, authorization: Annotated[str | None, Header()] = None) -> Response:
    """Counts and timings in the Prometheus text format; no text of any note, question or answer."""
    token = get_settings(request).metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}".encode()
        if authorization is None or not hmac.compare_digest(authorization.encode(), expected):
            raise ApiError(ErrorCode.UNAUTHORIZED, "GET /metrics needs the bearer token COMPAGNON_METRICS_TOKEN")
    body = generate_latest(request.app.state.metrics.registry) + generate_latest(REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
