"""HTTP hardening: strict security headers on every response, and rate limits on the costly or guessable endpoints.

The Content-Security-Policy lets pages load scripts, styles, images and connections from this origin only, so
text smuggled into a note (an image or a link to an attacker's host, the EchoLeak class of leak) cannot make a
browser send anything elsewhere. The rate limiter is a sliding window per client address and endpoint family,
kept in this process: with several workers, each enforces its own window.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorCode, error_response

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The interactive API docs load Swagger UI from its CDN and run an inline script; nothing else gets that.
DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")
HEADERS: Mapping[str, str] = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


class SecurityHeaders:
    """Adds the security headers (and the CSP) to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers as the response starts."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        policy = DOCS_CONTENT_SECURITY_POLICY if path.startswith(DOCS_PATHS) else CONTENT_SECURITY_POLICY

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (*HEADERS.items(), ("content-security-policy", policy)):
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class SlidingWindow:
    """At most ``limit`` events per key in any ``window`` seconds."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Count one event; returns 0 when allowed, else the seconds to wait."""
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.window - now
            events.append(now)
            if len(self._events) > 10_000:
                self._forget_idle(now)
            return 0.0

    def _forget_idle(self, now: float) -> None:
        for key in [key for key, events in self._events.items() if not events or events[-1] <= now - self.window]:
            del self._events[key]


class RateLimits:
    """Refuses (429 ``rate_limited``) requests over the limit of their endpoint family, per client address."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, SlidingWindow]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count POST requests to a limited path prefix."""
        if scope["type"] == "http" and scope.get("method") == "POST":
            path = str(scope.get("path", ""))
            for prefix, window in self.limits.items():
                if path.startswith(prefix):
                    client = scope.get("client")
                    wait = window.acquire(f"{client[0] if client else '-'} {prefix}")
                    if wait > 0:
                        response = error_response(ErrorCode.RATE_LIMITED, f"too many requests: retry in {wait:.0f} s")
                        response.headers["Retry-After"] = str(math.ceil(wait))
                        await response(scope, receive, send)
                        return
                    break
        await self.app(scope, receive, send)
