"""Request ids, structured request logs, /readyz and /metrics on the real application."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from api.app import create_app
from api.observability import JsonFormatter
from api.services import Services
from api.settings import ApiSettings
from retrieval.access import Viewer
from tests.conftest import ServicesFactory

TOKEN = "observability-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRET_QUESTION = "quelle pression pour le joint torique secret"
NOTE = {
    "text": "# Changement de joint\n\nKarim : on serre la bride à 12 N·m, pas plus, sinon le joint flue.",
    "kind": "pair",
    "community": "maintenance",
    "date": "2026-05-04",
    "participants": [{"name": "Karim Benali", "role": "pair"}],
    "visibility": "public",
}


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    return make_services()


def client_for(services: Services, **settings: object) -> TestClient:
    return TestClient(create_app(ApiSettings(admin_token=TOKEN, **settings), services))  # type: ignore[arg-type]


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with client_for(services) as test_client:
        yield test_client


@pytest.fixture
def json_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Log records formatted as ``compagnon serve`` writes them, at the moment they are emitted."""
    caplog.handler.setFormatter(JsonFormatter())
    caplog.set_level(logging.INFO)
    return caplog


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(line) for line in caplog.text.splitlines() if line.strip()]


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [line for line in lines(caplog) if line["logger"] == "compagnon.access"]


def test_a_sane_request_id_comes_back_and_is_logged(client: TestClient, json_logs: pytest.LogCaptureFixture) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "probe-42.a:b_c"})
    assert response.headers["X-Request-ID"] == "probe-42.a:b_c"
    assert [line["request_id"] for line in access_lines(json_logs)] == ["probe-42.a:b_c"]


@pytest.mark.parametrize(
    "hostile", [None, "", "two words", "x" * 200, '"><script>', "-leading-dash", "\u00e9".encode()]
)
def test_a_missing_or_hostile_request_id_is_replaced(client: TestClient, hostile: str | bytes | None) -> None:
    headers = {} if hostile is None else {"X-Request-ID": hostile}
    response = client.get("/healthz", headers=headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])
    assert response.headers.get_list("X-Request-ID") == [response.headers["X-Request-ID"]]


def test_the_log_line_has_the_fields_and_never_the_query(
    client: TestClient, json_logs: pytest.LogCaptureFixture
) -> None:
    response = client.get("/api/search", params={"q": SECRET_QUESTION}, headers={**AUTH, "X-Request-ID": "search-1"})
    assert response.status_code == 200, response.text
    client.get("/api/notes/n-unknown-id", headers=AUTH)
    search, show = access_lines(json_logs)
    assert search["request_id"] == "search-1"
    assert search["level"] == "info"
    assert {"timestamp", "method", "route", "status", "duration_ms"} <= set(search)
    assert (search["method"], search["route"], search["status"], search["user"]) == (
        "GET",
        "/api/search",
        200,
        "bootstrap-admin",
    )
    assert isinstance(search["duration_ms"], float)
    # The route template names the route, not the id in the path.
    assert (show["route"], show["status"]) == ("/api/notes/{note_id}", 404)
    # The test client logs its own URLs; the server's lines never hold the query or the question.
    served = json.dumps([line for line in lines(json_logs) if not str(line["logger"]).startswith("httpx")])
    assert "secret" not in served
    assert "joint" not in served


def test_an_anonymous_request_is_logged_without_a_user(client: TestClient, json_logs: pytest.LogCaptureFixture) -> None:
    assert client.get("/api/notes").status_code == 401
    assert client.get("/no/such/page").status_code == 404
    refused, unknown = access_lines(json_logs)
    assert "user" not in refused
    assert unknown["route"] == "unmatched"


def wait_for_jobs(services: Services, state: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if sum(job.status == state for job in services.jobs.list_jobs(Viewer.administrator())) == count:
            return
        time.sleep(0.2)
    raise AssertionError(f"no {count} job(s) {state} after 60 s")


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text exposition."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        metric, _, label_text = series.partition("{")
        found = ",".join(sorted(label_text.rstrip("}").split(","))) if label_text else ""
        if metric == name and found == wanted:
            return float(value)
    raise AssertionError(f"no sample {name}{{{wanted}}}")


def test_metrics_after_requests_and_an_ingestion(client: TestClient, services: Services) -> None:
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert sample(before.text, "compagnon_jobs", state="done") == 0
    for _ in range(3):
        client.get("/healthz")
    created = client.post("/api/notes", json=NOTE, headers=AUTH)
    assert created.status_code == 201, created.text
    assert client.post("/api/notes", json=NOTE, headers=AUTH).status_code == 200
    assert client.post("/api/notes", json={**NOTE, "kind": "nonsense"}, headers=AUTH).status_code == 422
    wait_for_jobs(services, "done", 1)
    body = client.get("/metrics").text
    histogram = "compagnon_http_request_duration_seconds"
    assert sample(body, f"{histogram}_count", method="GET", route="/healthz", status="200") == 3
    assert sample(body, f"{histogram}_bucket", method="GET", route="/healthz", status="200", le="+Inf") == 3
    assert sample(body, f"{histogram}_count", method="POST", route="/api/notes", status="201") == 1
    assert sample(body, "compagnon_ingestions_total", outcome="created") == 1
    assert sample(body, "compagnon_ingestions_total", outcome="existing") == 1
    assert sample(body, "compagnon_ingestions_total", outcome="refused") == 1
    assert sample(body, "compagnon_jobs", state="done") == 1
    assert sample(body, "compagnon_jobs", state="pending") == 0
    assert "compagnon_extraction_failures_total" in body
    assert "joint" not in body
    assert "Karim" not in body


def test_metrics_behind_a_token(services: Services) -> None:
    secret = "metrics-scraper-token-0123456789"
    with client_for(services, metrics_token=secret) as client:
        assert client.get("/metrics").json()["error_code"] == "unauthorized"
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_ready_when_the_database_and_the_vectors_answer(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "vector_store": "ok"}}


def test_unready_when_the_database_is_down(
    client: TestClient, services: Services, json_logs: pytest.LogCaptureFixture
) -> None:
    sessions = services.knowledge.sessions
    live = sessions.kw["bind"]
    # Nothing listens on port 1 of the loopback: every connection is refused at once.
    dead = create_engine("postgresql+psycopg://root:hunter2@127.0.0.1:1/compagnon")
    sessions.configure(bind=dead)
    try:
        response = client.get("/readyz", headers={"X-Request-ID": "probe-db-down"})
        metrics = client.get("/metrics")
    finally:
        sessions.configure(bind=live)
        dead.dispose()
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unready"
    assert body["checks"]["vector_store"] == "ok"
    assert body["checks"]["database"].startswith("error: ")
    assert "hunter2" not in response.text
    assert "127.0.0.1" not in response.text
    # The failing check's own log line carries the request id; a scrape still answers, without the job gauge.
    warning = next(line for line in lines(json_logs) if line["logger"] == "api.routes.health")
    assert warning["request_id"] == "probe-db-down"
    assert "hunter2" not in json_logs.text
    assert metrics.status_code == 200
    assert "compagnon_jobs{" not in metrics.text


def test_the_queue_is_checked_when_a_broker_is_configured(services: Services) -> None:
    reachable = dataclasses.replace(
        services, capture=services.capture.model_copy(update={"broker_url": "redis://127.0.0.1:6379/0"})
    )
    with client_for(reachable) as client:
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["queue"] == "ok"
    unreachable = dataclasses.replace(
        services, capture=services.capture.model_copy(update={"broker_url": "amqp://guest:guest@127.0.0.1:1/"})
    )
    with client_for(unreachable) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "vector_store": "ok", "queue": "error: ConnectionError"}
    assert "guest" not in response.text
