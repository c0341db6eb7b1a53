"""The dashboard in a real browser: charts and tables from seeded data, the CSV export, the role check."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.web.conftest import LiveServer

pytestmark = pytest.mark.browser

PageAs = Callable[..., Any]
TIMEOUT_MS = 240_000
COMMUNITY = "logistique"
SECRET_MENTEE = "Zoé Secret"
GAP_QUESTION = "Où se trouve la clé du local vélos du site de Lyon ?"


def note(text: str, kind: str, date: str, visibility: str, *people: tuple[str, str]) -> dict[str, Any]:
    return {
        "text": text,
        "kind": kind,
        "community": COMMUNITY,
        "date": date,
        "visibility": visibility,
        "participants": [{"name": name, "role": role} for name, role in people],
    }


NOTES = (
    note(
        "# Cercle logistique — quais\n\nAline Morel : on affiche le planning des quais la veille.\n\n"
        "Bruno Petit : les transporteurs appellent avant de se présenter.\n",
        "circle",
        "2025-01-20",
        "community",
        ("Aline Morel", "facilitator"),
        ("Bruno Petit", "member"),
    ),
    note(
        "# Binôme logistique — inventaire\n\nBruno Petit : on compte les palettes par allée, pas par référence.\n\n"
        "Chloé Roy : on photographie chaque étiquette illisible.\n",
        "pair",
        "2025-02-14",
        "community",
        ("Bruno Petit", "pair"),
        ("Chloé Roy", "pair"),
    ),
    note(
        "# Cercle logistique — chariots\n\nAline Morel : on vérifie les fourches au début de chaque poste.\n\n"
        "Chloé Roy : la batterie se charge pendant la pause déjeuner.\n\n"
        "Damien Faure : on signale les chocs dans le cahier du chariot.\n",
        "circle",
        "2025-03-05",
        "community",
        ("Aline Morel", "facilitator"),
        ("Chloé Roy", "member"),
        ("Damien Faure", "member"),
    ),
    note(
        "# Mentorat logistique — confiance en soi\n\nAline Morel : tu peux refuser une heure supplémentaire.\n\n"
        "Zoé Secret : j'ai du mal à dire non à mon chef d'équipe.\n",
        "mentoring",
        "2025-03-10",
        "private",
        ("Aline Morel", "mentor"),
        (SECRET_MENTEE, "mentee"),
    ),
)
ACTIVITY_CSV = [
    ["period", "label", "sessions", "turns", "questions", "exchanges"],
    ["2025-01-01", "2025-01", "1", "2", "0", "2"],
    ["2025-02-01", "2025-02", "1", "2", "0", "2"],
    ["2025-03-01", "2025-03", "1", "3", "0", "3"],
]


@pytest.fixture(scope="module")
def seeded(live_server: LiveServer) -> LiveServer:
    """The notes above (uploaded by HR), and a question Julie asked and rated down."""
    with live_server.client("rh") as hr:
        for body in NOTES:
            hr.post("/api/notes", json=body).raise_for_status()
    with live_server.client("julie") as julie:
        asked = julie.post("/api/ask", json={"question": GAP_QUESTION})
        asked.raise_for_status()
        rated = julie.post(
            f"/api/questions/{asked.json()['question_id']}/feedback",
            json={"rating": -1, "comment": "Rien sur les vélos"},
        )
        rated.raise_for_status()
    return live_server


def _apply_filters(page: Any) -> None:
    page.locator("#dashboard-from").fill("2025-01-01")
    page.locator("#dashboard-to").fill("2025-03-31")
    page.locator("#dashboard-community").select_option(COMMUNITY)
    page.locator("#dashboard-bucket").select_option("month")
    page.locator("form.dashboard-filters button[type=submit]").click()


def test_hr_sees_charts_with_their_tables_and_downloads_the_csv(
    seeded: LiveServer, page_as: PageAs, screenshot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    page = page_as("rh", "fr")
    page.locator("nav a[data-page=dashboard]").click()
    page.wait_for_selector("main[data-page=dashboard] section#kpi-activity", timeout=TIMEOUT_MS)
    # The default period (the last year) holds the question Julie asked just now: a knowledge gap.
    gap = page.locator("#kpi-gaps .kpi-gap", has_text=GAP_QUESTION)
    expect(gap).to_have_count(1)
    expect(gap.locator(".kpi-examples li").first).to_contain_text(GAP_QUESTION)
    expect(page.locator("#kpi-feedback .kpi-comments")).to_contain_text("Rien sur les vélos")

    _apply_filters(page)
    expect(page.locator("#kpi-activity svg circle.point")).to_have_count(9, timeout=TIMEOUT_MS)
    activity = page.locator("#kpi-activity svg[role=img]")
    expect(activity).to_have_attribute(
        "aria-label",
        "Séances, prises de parole et questions par période. "
        + (
            "Séances: janv. 2025 1, févr. 2025 1, mars 2025 1; "
            "Prises de parole: janv. 2025 2, févr. 2025 2, mars 2025 3; "
            "Questions: janv. 2025 0, févr. 2025 0, mars 2025 0"
        ),
    )
    assert activity.locator("title").first.text_content() == "Séances, prises de parole et questions par période"
    sessions = page.locator("#kpi-activity .chart-line.series-0 circle.point")
    assert [sessions.nth(i).get_attribute("data-value") for i in range(3)] == ["1", "1", "1"]
    rows = page.locator("#kpi-activity table tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).locator("td").all_inner_texts() for i in range(3)] == [
        ["1", "2", "0", "2"],
        ["1", "2", "0", "2"],
        ["1", "3", "0", "3"],
    ]
    expect(page.locator("#kpi-activity table caption")).to_have_text("Séances et échanges par période")

    # One community, two series (participants, known people); the private mentee is known to nobody here.
    expect(page.locator("#kpi-participation svg rect.bar")).to_have_count(2)
    communities = page.locator("#kpi-participation table").first.locator("tbody tr")
    expect(communities).to_have_count(1)
    cells = [communities.locator("th").inner_text(), *communities.locator("td").all_inner_texts()]
    assert [cell.replace("\u202f", " ").replace("\xa0", " ") for cell in cells] == [COMMUNITY, "4", "4", "100 %"]
    expect(page.locator("#kpi-skills svg rect.bar")).to_have_count(8)
    expect(page.locator("#kpi-skills table a[href='#/people/Damien%20Faure']")).to_have_count(1)
    expect(page.locator("#kpi-feedback svg rect.bar")).to_have_count(6)
    expect(page.locator("#kpi-review svg rect.bar")).to_have_count(12)
    expect(page.locator("#kpi-review table tbody tr")).to_have_count(3)
    assert SECRET_MENTEE not in page.locator("main").inner_text()
    assert "confiance" not in page.locator("main").inner_text()

    link = page.locator("#kpi-activity a.csv-link")
    with page.expect_download() as download:
        link.click()
    saved = download.value.path()
    assert list(csv.reader(io.StringIO(Path(saved).read_text(encoding="utf-8")))) == ACTIVITY_CSV
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "dashboard")


def test_an_employee_is_not_allowed_and_gets_no_figures(seeded: LiveServer, page_as: PageAs) -> None:
    page = page_as("julie", "en")
    assert page.locator("nav a[data-page=dashboard]").count() == 0
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url) if "/api/kpis" in request.url else None)
    page.goto("/#/dashboard")
    page.wait_for_selector("main[data-page=dashboard] .not-allowed")
    assert page.locator("main h1").inner_text() == "Not allowed"
    assert page.locator(".kpi-section").count() == 0
    assert requested == []
