"""The review page in a real browser: the queue in the API's order, evidence highlighted, the keyboard actions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import LiveServer

pytestmark = pytest.mark.browser

PageAs = Callable[..., Any]
TIMEOUT_MS = 240_000
COMMUNITY = "emballage"
PII_EMAIL = "marc.dupont@exemple.fr"


def note(text: str, kind: str, date: str, *people: tuple[str, str]) -> dict[str, Any]:
    return {
        "text": text,
        "kind": kind,
        "community": COMMUNITY,
        "date": date,
        "visibility": "public",
        "participants": [{"name": name, "role": role} for name, role in people],
    }


NOTES = (
    note(
        "# Cercle emballage — joints\n\n## Ce qui a marché\n"
        "Karim : astuce, on prépare le kit de joints complet la veille du changement de format, "
        "sinon on perd vingt minutes.\n\n"
        "Sophie : à retenir, toujours faire un test de pelage sur trois barquettes après le remontage du joint.\n",
        "circle",
        "2026-01-12",
        ("Karim Benali", "facilitator"),
        ("Sophie Martin", "member"),
    ),
    note(
        "# Binôme emballage — changement de format\n\n"
        "Lucas : astuce, on prépare tout le kit de joints la veille du changement de format.\n",
        "pair",
        "2026-02-03",
        ("Lucas Girard", "pair"),
        ("Karim Benali", "pair"),
    ),
    note(
        "# Cercle emballage — pannes\n\n## Ce qui a marché\n"
        f"Nadia : astuce, pour une panne de la scelleuse, écrire tout de suite à {PII_EMAIL} avec une photo.\n",
        "circle",
        "2026-02-20",
        ("Nadia Ferrand", "facilitator"),
        ("Sophie Martin", "member"),
    ),
)
QUESTIONS = (
    "Comment préparer le kit de joints avant un changement de format ?",
    "Que faut-il préparer la veille d'un changement de format ?",
)


def _wait_for_extraction(hr: httpx.Client, note_ids: list[str]) -> None:
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        jobs = [job for note_id in note_ids for job in hr.get("/api/jobs", params={"note_id": note_id}).json()["jobs"]]
        if len(jobs) >= len(note_ids) and all(job["status"] not in ("pending", "running") for job in jobs):
            assert all(job["status"] == "done" for job in jobs), jobs
            return
        time.sleep(0.5)
    raise AssertionError("extraction did not finish")


@pytest.fixture(scope="module")
def seeded(live_server: LiveServer) -> LiveServer:
    """Three notes of one community (a duplicate pair across two, personal data in the third), and questions."""
    with live_server.client("rh") as hr:
        # The first upload starts the parsing processes and loads the models: slow on a busy machine.
        hr.timeout = httpx.Timeout(TIMEOUT_MS / 1000)
        note_ids = []
        for body in NOTES:
            created = hr.post("/api/notes", json=body)
            created.raise_for_status()
            note_ids.append(created.json()["note_id"])
        _wait_for_extraction(hr, note_ids)
    with live_server.client("julie") as julie:
        julie.timeout = httpx.Timeout(TIMEOUT_MS / 1000)
        for question in QUESTIONS:
            julie.post("/api/ask", json={"question": question}).raise_for_status()
    return live_server


def _queue(server: LiveServer, **params: str) -> list[dict[str, Any]]:
    with server.client("rh") as hr:
        response = hr.get("/api/review/queue", params={"community": COMMUNITY, **params})
        response.raise_for_status()
        items: list[dict[str, Any]] = response.json()["items"]
        return items


def _item(server: LiveServer, practice_id: str) -> dict[str, Any]:
    with server.client("rh") as hr:
        response = hr.get(f"/api/review/items/{practice_id}")
        response.raise_for_status()
        detail: dict[str, Any] = response.json()
        return detail


def _open(page: Any, practice_id: str) -> None:
    from playwright.sync_api import expect

    button = page.locator(f".queue-item[data-id='{practice_id}']")
    button.click()
    expect(button).to_have_attribute("aria-current", "true")
    expect(page.locator(".review-item")).to_have_count(1)
    page.wait_for_function(
        "id => document.querySelector('.queue-item[aria-current=true]')?.dataset.id === id"
        " && !document.querySelector('.review-detail[aria-busy]')",
        arg=practice_id,
    )


def _queue_ids(page: Any) -> list[str]:
    return [str(i) for i in page.locator(".queue-item").evaluate_all("items => items.map(i => i.dataset.id)")]


def test_hr_reviews_the_queue_with_the_keyboard(
    seeded: LiveServer, page_as: PageAs, screenshot: Callable[[Any, str], Path]
) -> None:
    from playwright.sync_api import expect

    items = _queue(seeded)
    assert len(items) >= 4
    scores = [item["priority"]["score"] for item in items]
    assert scores == sorted(scores, reverse=True)
    details = {item["id"]: _item(seeded, item["id"]) for item in items}
    ids = {item["id"] for item in items}
    kit = next(item for item in items if any(d["id"] in ids for d in details[item["id"]]["duplicates"]))
    # The live server is shared by the browser tests: other tests' notes may hold more duplicates of the kit.
    duplicates = details[kit["id"]]["duplicates"]
    [duplicate] = [d for d in duplicates if d["id"] in ids]
    flagged = next(item for item in items if any(finding["text"] == PII_EMAIL for finding in item["pii"]))
    assert flagged["id"] not in (kit["id"], duplicate["id"])

    page = page_as("rh", "fr")
    page.locator("nav a[data-page=review]").click()
    page.wait_for_selector("main[data-page=review] .queue-item", timeout=TIMEOUT_MS)
    page.locator("#review-community").select_option(COMMUNITY)
    expect(page.locator(".queue-item")).to_have_count(len(items), timeout=TIMEOUT_MS)
    assert _queue_ids(page) == [item["id"] for item in items]
    first = page.locator(".queue-item").first
    expect(first).to_have_attribute("aria-current", "true")
    expect(first.locator(".queue-why .badge").first).to_be_visible()

    # The entry with a duplicate, side by side with its note: each quoted span is marked in the note's text.
    _open(page, kit["id"])
    # (A span inside another, such as a "why" within the practice's sentence, is not marked twice.)
    marked = []
    for source in details[kit["id"]]["sources"]:
        cursor = 0
        for span in sorted(source["spans"], key=lambda span: (span["start"], span["end"])):
            assert source["text"][span["start"] : span["end"]] == span["quote"]
            if span["end"] > max(span["start"], cursor):
                marked.append(source["text"][max(span["start"], cursor) : span["end"]])
                cursor = span["end"]
    practice_quote = next(e["quote"] for e in kit["evidence"] if e["claim"] == "practice")
    assert practice_quote in marked
    marks = page.locator(".note-excerpt mark")
    expect(marks).to_have_count(len(marked))
    assert marks.all_text_contents() == marked
    expect(page.locator(".duplicate")).to_have_count(len(duplicates))
    expect(page.locator(".review-actions [aria-keyshortcuts=a]")).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "review")

    # e: edit the title, saved through the API and shown in the queue.
    page.locator("#review-item-title").focus()
    page.keyboard.press("e")
    title = page.locator("#edit-title")
    expect(title).to_be_focused()
    title.fill("Kit de joints prêt la veille du changement")
    page.keyboard.press("a")  # typed into the field, not a shortcut
    expect(title).to_have_value("Kit de joints prêt la veille du changementa")
    title.fill("Kit de joints prêt la veille du changement")
    page.locator(".edit-form button[type=submit]").click()
    expect(page.locator("#review-item-title")).to_have_text("Kit de joints prêt la veille du changement")
    expect(page.locator(f".queue-item[data-id='{kit['id']}'] .queue-title")).to_have_text(
        "Kit de joints prêt la veille du changement"
    )

    # m: merge the duplicate into the open entry; it leaves the queue.
    page.keyboard.press("m")
    expect(page.locator("#merge-dialog")).to_be_visible()
    for other in duplicates:
        choice = page.locator(f"#merge-dialog input[value='{other['id']}']")
        if other["id"] != duplicate["id"] and choice.count():
            choice.uncheck()
    page.locator("#merge-dialog button[type=submit]").click()
    expect(page.locator(f".queue-item[data-id='{duplicate['id']}']")).to_have_count(0)
    expect(page.locator(f".duplicate[data-id='{duplicate['id']}']")).to_have_count(0)

    # a: approve it (confirming past the personal data the detector flags, if any); the next entry opens instead.
    _open(page, kit["id"])
    page.keyboard.press("a")
    if any(not finding["participant"] for finding in _item(seeded, kit["id"])["practice"]["pii"]):
        expect(page.locator("#pii-dialog")).to_be_visible()
        page.locator("#pii-dialog button[type=submit]").click()
    expect(page.locator(f".queue-item[data-id='{kit['id']}']")).to_have_count(0)
    expect(page.locator(".queue-item[aria-current=true]")).to_have_count(1)

    # The entry with personal data shows it before any approval; r rejects it with a required reason.
    _open(page, flagged["id"])
    expect(page.locator(".pii-card")).to_contain_text(PII_EMAIL)
    page.keyboard.press("r")
    dialog = page.locator("#reject-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#reject-reason")).to_be_focused()
    dialog.locator("button[type=submit]").click()
    expect(page.locator("#reject-error")).to_have_text("Indiquez un motif de rejet.")
    page.locator("#reject-reason").fill("Contient l'adresse électronique d'un collègue")
    dialog.locator("button[type=submit]").click()
    expect(dialog).to_be_hidden()
    expect(page.locator(f".queue-item[data-id='{flagged['id']}']")).to_have_count(0)

    # ?: the shortcut help.
    page.locator("#review-queue-title").click()
    page.keyboard.press("?")
    expect(page.locator("#help-dialog")).to_be_visible()
    expect(page.locator("#help-dialog kbd")).to_have_count(7)
    page.keyboard.press("Escape")

    # The approved entry's history, from the approved filter: drafted, edited, merged, approved.
    page.locator("#review-status").select_option("approved")
    expect(page.locator(f".queue-item[data-id='{kit['id']}']")).to_have_count(1, timeout=TIMEOUT_MS)
    _open(page, kit["id"])
    page.locator(".history summary").click()
    history = page.locator(".history-list li strong")
    expect(history).to_have_text(["Rédigée", "Modifiée", "Fusion", "Validée"])
    stored = _item(seeded, kit["id"])
    assert stored["practice"]["status"] == "approved"
    assert stored["practice"]["title"] == "Kit de joints prêt la veille du changement"
    assert [event["action"] for event in stored["history"]] == ["drafted", "edited", "merged", "approved"]
    assert _item(seeded, duplicate["id"])["practice"]["merged_into"] == kit["id"]
    rejected = _item(seeded, flagged["id"])["practice"]
    assert (rejected["status"], rejected["rejection_reason"]) == (
        "rejected",
        "Contient l'adresse électronique d'un collègue",
    )


def test_an_employee_is_not_allowed_to_review(seeded: LiveServer, page_as: PageAs) -> None:
    page = page_as("julie", "en")
    assert page.locator("nav a[data-page=review]").count() == 0
    page.goto("/#/review")
    page.wait_for_selector("main[data-page=review] .not-allowed")
    assert page.locator("main h1").inner_text() == "Not allowed"
    assert page.locator(".queue-item").count() == 0
    with seeded.client("julie") as julie:
        refused = julie.get("/api/review/queue")
    assert (refused.status_code, refused.json()["error_code"]) == (403, "forbidden")
