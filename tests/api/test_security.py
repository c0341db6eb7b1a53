"""HTTP hardening: a strict Content-Security-Policy and security headers on every response; rate limits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.accounts import Accounts
from api.app import create_app
from api.security import SlidingWindow
from api.services import Services
from api.settings import ApiSettings
from tests.conftest import ServicesFactory


@pytest.fixture
def client(make_services: ServicesFactory) -> Iterator[TestClient]:
    services: Services = make_services()
    accounts = Accounts(services.knowledge.sessions)
    accounts.create_user("lea", "employee")
    with TestClient(create_app(ApiSettings(ask_rate_limit=2), services)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {accounts.issue_token('lea').token}"
        yield test_client


def test_every_response_carries_a_strict_policy(client: TestClient) -> None:
    search = client.get("/api/search", params={"q": "joint"})
    anonymous = client.get("/api/search", params={"q": "joint"}, headers={"Authorization": ""})
    for response in (client.get("/healthz"), search, anonymous, client.get("/nowhere")):
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "img-src 'self' data:;" in policy
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "cdn.jsdelivr.net" in client.get("/docs").headers["content-security-policy"]


def test_asking_too_often_is_refused_with_a_stable_code(client: TestClient) -> None:
    for _ in range(2):
        assert client.post("/api/ask", json={"question": "Comment changer un joint ?"}).status_code == 200
    refused = client.post("/api/ask/stream", json={"question": "Comment changer un joint ?"})
    assert refused.status_code == 429
    assert refused.json()["error_code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1
    assert client.get("/api/search", params={"q": "joint"}).status_code == 200


def test_the_window_slides() -> None:
    now = [0.0]
    window = SlidingWindow(limit=2, window=60.0, clock=lambda: now[0])
    assert window.acquire("a") == 0.0 and window.acquire("a") == 0.0
    assert window.acquire("a") == pytest.approx(60.0)
    assert window.acquire("b") == 0.0
    now[0] = 30.0
    assert window.acquire("a") == pytest.approx(30.0)
    now[0] = 60.5
    assert window.acquire("a") == 0.0
