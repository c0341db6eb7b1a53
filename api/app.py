"""The composition root: ``create_app(settings, services)`` builds the FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorCode, error_response, install_error_handlers
from api.observability import AppMetrics, RequestObservability
from api.routes import ask, auth, health, kpis, notes, people, practices, review, search
from api.security import RateLimits, SecurityHeaders, SlidingWindow
from api.services import Services
from api.settings import ApiSettings
from api.web import mount_static
from api.web import router as web_router


class BodySizeLimit:
    """Refuses a request body larger than the limit while it streams in (413), whatever Content-Length says."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count body bytes as they arrive."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _BodyTooLarge:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(ErrorCode.DOCUMENT_TOO_LARGE, f"the request body is over {self.limit} bytes")
        await response(scope, receive, send)


class _BodyTooLarge(Exception):
    """Raised from inside ``receive`` to stop reading an oversized body."""


def create_app(settings: ApiSettings, services: Services) -> FastAPI:
    """The HTTP application over already-built services."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # With a broker, extraction jobs go to the workers (``compagnon worker``), not to a thread here.
        if services.tasks is None:
            services.jobs.start()
        yield
        services.jobs.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="Compagnon",
        summary="Peer-learning notes turned into searchable best practices, and the colleague who knows.",
        version="0.1.0",
    )
    app.state.settings = settings
    app.state.services = services
    app.state.metrics = AppMetrics(services.knowledge.sessions)
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(notes.router)
    app.include_router(search.router)
    app.include_router(practices.router)
    app.include_router(review.router)
    app.include_router(ask.router)
    app.include_router(auth.router)
    app.include_router(people.router)
    app.include_router(kpis.router)
    app.include_router(web_router)
    mount_static(app)

    # Multipart framing adds a little to the file itself.
    app.add_middleware(BodySizeLimit, limit=services.capture.max_upload_bytes + 256 * 1024)
    app.add_middleware(
        RateLimits,
        limits={
            "/api/ask": SlidingWindow(settings.ask_rate_limit, 60.0),
            "/api/auth/login": SlidingWindow(settings.login_rate_limit, 60.0),
        },
    )
    app.add_middleware(SecurityHeaders)
    # Outermost: every response gets its request id, and every request is timed and logged.
    app.add_middleware(RequestObservability, metrics=app.state.metrics)
    return app
