"""The programme's measures over HTTP and the CLI: roles, CSV tables and their escaping, filters, privacy."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli import main
from api.services import Services
from api.settings import ApiSettings
from retrieval.kpis import MEASURES
from tests.conftest import ServicesFactory, bearer
from tests.retrieval.test_kpis import PRIVATE_WORDS, load

TOKEN = "test-admin-token-0123456789"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
PERIOD = {"date_from": "2026-01-01", "date_to": "2026-03-31"}


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    return make_services()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(ApiSettings(admin_token=TOKEN), services)) as test_client:
        yield test_client


def table(response_text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response_text)))


def test_hr_reads_the_measures_and_their_csv_tables_without_anything_private(
    client: TestClient, services: Services
) -> None:
    load(services)
    hr = bearer(services, "rh", "hr")
    report = client.get("/api/kpis", params=PERIOD, headers=hr)
    assert report.status_code == 200
    body = report.json()
    assert [(r["label"], r["sessions"], r["questions"]) for r in body["activity"]["rows"]] == [
        ("2026-01", 1, 0),
        ("2026-02", 2, 3),
        ("2026-03", 0, 2),
    ]

    activity = client.get("/api/kpis/activity.csv", params=PERIOD, headers=hr)
    assert activity.status_code == 200
    assert activity.headers["content-type"] == "text/csv; charset=utf-8"
    assert activity.headers["content-disposition"] == 'attachment; filename="compagnon-activity.csv"'
    assert table(activity.text) == [
        ["period", "label", "sessions", "turns", "questions", "exchanges"],
        ["2026-01-01", "2026-01", "1", "2", "0", "2"],
        ["2026-02-01", "2026-02", "2", "5", "3", "8"],
        ["2026-03-01", "2026-03", "0", "0", "2", "2"],
    ]
    comments = table(client.get("/api/kpis/comments.csv", params=PERIOD, headers=hr).text)
    assert comments[0] == ["at", "rating", "comment", "question"]
    # A comment starting like a formula is kept as text: a spreadsheet would otherwise evaluate it.
    assert [row[1:3] for row in comments[1:]] == [
        ["-1", '\'=HYPERLINK("http://evil") ne répond pas'],
        ["1", "Très utile, merci"],
    ]
    feedback = table(client.get("/api/kpis/feedback.csv", params=PERIOD, headers=hr).text)
    assert feedback[1:] == [
        ["2026-01-01", "2026-01", "0", "0", ""],
        ["2026-02-01", "2026-02", "1", "0", "1.0"],
        ["2026-03-01", "2026-03", "1", "1", "0.5"],
    ]
    pairs = client.get(
        "/api/kpis/participation.csv", params={**PERIOD, "kind": "pair", "community": "qualite"}, headers=hr
    )
    assert table(pairs.text) == [
        ["community", "kind", "participants", "known", "rate"],
        ["qualite", "pair", "2", "2", "1.0"],
        ["qualite", "all", "2", "2", "1.0"],
    ]
    weeks = client.get(
        "/api/kpis/review.csv",
        params={"date_from": "2026-03-02", "date_to": "2026-03-08", "bucket": "week"},
        headers=hr,
    )
    assert table(weeks.text)[1:] == [["2026-03-02", "2026-W10", "0", "0", "1", "1"]]
    gaps = table(client.get("/api/kpis/gaps.csv", params=PERIOD, headers=hr).text)
    assert gaps[0] == ["topic", "tags", "count", "unanswered", "rated_down", "examples", "suggested"]
    assert gaps[1][:5] == [
        "Comment régler la pression du compresseur d'air de l'atelier ?",
        "",
        "2",
        "2",
        "0",
    ]

    exports = [client.get(f"/api/kpis/{measure}.csv", params=PERIOD, headers=hr).text for measure in MEASURES]
    for text in (report.text, *exports):
        for word in PRIVATE_WORDS:
            assert word not in text
    # An HR account that is Lina herself reads her mentoring note: the same export shows it to her.
    lina = bearer(services, "lina", "hr", "Lina Petit")
    assert (
        "Lina Petit,2026-03-01,2026-03,direction,community,1,true"
        in client.get("/api/kpis/skills.csv", params=PERIOD, headers=lina).text.splitlines()
    )


def test_employees_and_facilitators_are_refused_and_bad_filters_are_invalid_queries(
    client: TestClient, services: Services
) -> None:
    employee = bearer(services, "julie", "employee", "Julie Moreau")
    facilitator = bearer(services, "karim", "facilitator", "Karim Benali")
    for headers in (employee, facilitator):
        for path in ("/api/kpis", "/api/kpis/activity.csv"):
            refused = client.get(path, params=PERIOD, headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error_code"] == "forbidden"
    assert client.get("/api/kpis").json()["error_code"] == "unauthorized"
    hr = bearer(services, "rh", "hr")
    empty = client.get("/api/kpis", params={**PERIOD, "bucket": "week"}, headers=hr).json()
    assert len(empty["activity"]["rows"]) == 14
    assert empty["gaps"]["groups"] == []
    for params, detail in (
        ({"date_from": "01/02/2026"}, "date_from must be a date"),
        ({"date_from": "2026-04-01", "date_to": "2026-03-01"}, "after date_to"),
        ({"bucket": "day"}, "bucket must be one of week, month"),
        ({"kind": "webinar"}, "kind must be one of"),
    ):
        for path in ("/api/kpis", "/api/kpis/activity.csv"):
            refused = client.get(path, params=params, headers=hr)
            assert refused.status_code == 422
            assert refused.json()["error_code"] == "invalid_query"
            assert detail in refused.json()["detail"]
    unknown = client.get("/api/kpis/salaries.csv", headers=hr)
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "not_found")
    assert client.get("/api/kpis", params=PERIOD, headers=ADMIN).status_code == 200


def test_the_cli_prints_the_measures_as_the_account_may_read_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("COMPAGNON_DATA_DIR", str(data_dir))
    assert main(["users", "create", "julie", "--role", "employee"]) == 0
    capsys.readouterr()
    assert main(["kpis", "--json", "--from", "2026-01-01", "--to", "2026-02-28", "--bucket", "week"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["label"] for row in report["review"]["rows"]][:2] == ["2026-W01", "2026-W02"]
    assert main(["--as", "julie", "kpis", "--json"]) == 2
    assert json.loads(capsys.readouterr().out)["error_code"] == "forbidden"
    assert main(["kpis", "--csv", "activity", "--from", "2026-03-01", "--to", "2026-03-31"]) == 0
    assert table(capsys.readouterr().out) == [
        ["period", "label", "sessions", "turns", "questions", "exchanges"],
        ["2026-03-01", "2026-03", "0", "0", "0", "0"],
    ]
