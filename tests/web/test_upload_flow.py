"""The upload page in a real browser, and the whole flow: upload -> drafts -> HR approves -> an employee asks."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from api.web import STATIC_DIR
from capture.ingestion import DEFAULT_VISIBILITY
from retrieval.access import VISIBILITIES
from retrieval.notes import NOTE_KINDS, ROLES
from tests.web.conftest import LiveServer

DATA = Path(__file__).parent.parent / "data"
UPLOAD_JS = STATIC_DIR / "pages" / "upload.js"
# A public field-pair note seeded through the API, so that the upload form has names and a community to suggest.
PAIR_NOTE = {
    "text": "# Binôme terrain\n\nSophie : on graisse le joint de la TF-5 avant le remontage.\n",
    "kind": "pair",
    "community": "maintenance",
    "date": "2026-02-10",
    "visibility": "public",
    "participants": [{"name": "Karim Benali", "role": "pair"}, {"name": "Sophie Martin", "role": "pair"}],
}
# What a shared upload's drafts may be corrected to (the test picks the draft quoting the peel test).
CORRECTED_TITLE = "Test de pelage sur trois barquettes après chaque remontage"
TIMEOUT_MS = 240_000

PageAs = Callable[..., Any]


def _js_constant(name: str) -> Any:
    """A constant exported by upload.js, read as JSON (arrays and flat objects of strings)."""
    source = UPLOAD_JS.read_text(encoding="utf-8")
    match = re.search(rf"export const {name} = (.+?);\n", source, re.S)
    assert match, name
    literal = re.sub(r"(\w+):", r'"\1":', match.group(1))
    return json.loads(literal)


def test_the_upload_form_offers_the_vocabularies_of_the_service() -> None:
    assert _js_constant("KINDS") == list(NOTE_KINDS)
    assert _js_constant("ROLES") == list(ROLES)
    assert _js_constant("VISIBILITIES") == list(VISIBILITIES)
    assert _js_constant("DEFAULT_VISIBILITY") == DEFAULT_VISIBILITY


def _responses(page: Any) -> list[Any]:
    """Every API response the page receives from now on."""
    seen: list[Any] = []
    page.on("response", lambda response: seen.append(response) if "/api/" in response.url else None)
    return seen


def _status(page: Any, path: str) -> int:
    """The status of a GET the page itself makes (its session cookie, its origin)."""
    status: int = page.evaluate("path => fetch(path, {credentials: 'same-origin'}).then(r => r.status)", path)
    return status


def _drop_files(page: Any, selector: str, files: list[Path]) -> None:
    """Drop files on an element as a user's drag and drop does: a DataTransfer holding them, in a drop event."""
    payload = [{"name": path.name, "bytes": list(path.read_bytes())} for path in files]
    transfer = page.evaluate_handle(
        """files => {
            const transfer = new DataTransfer();
            for (const file of files) {
                transfer.items.add(new File([new Uint8Array(file.bytes)], file.name));
            }
            return transfer;
        }""",
        payload,
    )
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


def _open_upload(page_as: PageAs, login: str, lang: str = "fr") -> Any:
    page = page_as(login, lang)
    page.goto("/#/upload")
    page.wait_for_selector("main[data-page=upload] #upload-form")
    return page


def _fill_session(page: Any, community: str = "maintenance", day: str = "2026-03-12") -> None:
    page.locator("#upload-community").fill(community)
    page.locator("#upload-date").fill(day)


@pytest.fixture(scope="module")
def seeded(live_server: LiveServer) -> LiveServer:
    """The live server with one public note Karim took part in (its names and community feed the suggestions)."""
    with live_server.client("karim") as karim:
        response = karim.post("/api/notes", json=PAIR_NOTE)
        assert response.status_code in (200, 201), response.text
    return live_server


@pytest.mark.browser
def test_a_facilitator_uploads_corrects_a_draft_hr_approves_it_and_an_employee_gets_the_cited_answer(
    seeded: LiveServer, page_as: PageAs, screenshot: Callable[[Any, str], Path]
) -> None:
    page = _open_upload(page_as, "karim")
    # The facilitator is the first participant; the kind decides the visibility until the user picks one.
    assert page.locator("#upload-participant-1-name").input_value() == "Karim Benali"
    assert page.locator("#upload-participant-1-role").input_value() == "facilitator"
    assert page.locator("#upload-visibility").input_value() == "community"
    page.locator("#upload-kind").select_option("mentoring")
    assert page.locator("#upload-visibility").input_value() == "private"
    assert page.locator("#upload-participant-1-role").input_value() == "mentor"
    page.locator("#upload-kind").select_option("circle")
    page.locator("#upload-visibility").select_option("public")
    page.locator("#upload-kind").select_option("pair")
    assert page.locator("#upload-visibility").input_value() == "public"
    page.locator("#upload-kind").select_option("circle")

    page.locator("#upload-files").set_input_files(str(DATA / "note.md"))
    page.get_by_text("note.md").wait_for()
    _fill_session(page)
    page.locator("#upload-add-participant").click()
    name = page.locator("#upload-participant-2-name")
    name.press_sequentially("Soph")
    page.locator('#upload-people-list option[value="Sophie Martin"]').wait_for(state="attached")
    assert page.locator('#upload-community-list option[value="maintenance"]').count() == 1
    name.fill("Sophie Martin")
    assert page.locator("#upload-participant-2-role").input_value() == "member"

    page.locator("#upload-submit").click()
    item = page.locator(".upload-item").first
    item.locator("progress").wait_for(state="attached", timeout=TIMEOUT_MS)
    item.locator(".upload-draft").first.wait_for(timeout=TIMEOUT_MS)
    assert item.get_attribute("data-state") == "done"
    assert item.locator('.upload-steps li[data-state="done"]').count() == 4
    drafts = item.locator(".upload-draft")
    assert drafts.count() >= 2
    for index in range(drafts.count()):
        assert drafts.nth(index).locator(".upload-quote").count() >= 1
        assert "null" not in drafts.nth(index).inner_text().split()
    item.evaluate("element => element.scrollIntoView({block: 'start'})")
    screenshot(page, "upload")

    # Karim corrects the wording of the draft quoting the peel test.
    draft = drafts.filter(has=page.locator(".upload-quote", has_text="pelage")).first
    practice_id = draft.get_attribute("data-practice-id")
    assert practice_id
    draft.get_by_role("button", name="Corriger").click()
    draft.get_by_label("Titre du brouillon").fill(CORRECTED_TITLE)
    draft.get_by_role("button", name="Enregistrer").click()
    draft.get_by_text("Correction enregistrée").wait_for()
    assert draft.locator(".upload-draft-title").inner_text() == CORRECTED_TITLE
    with seeded.client("rh") as rh:
        history = rh.get(f"/api/practices/{practice_id}/history").json()["history"]
    assert (history[-1]["action"], history[-1]["actor"]) == ("edited", "karim")
    assert history[-1]["after"]["title"] == CORRECTED_TITLE

    # HR approves the corrected draft on the review page, where it shows under its corrected title.
    assert (STATIC_DIR / "pages" / "review.js").exists(), "the review page is not there yet"
    review = page_as("rh")
    review.goto("/#/review")
    entry = review.get_by_text(CORRECTED_TITLE).first
    entry.wait_for(timeout=TIMEOUT_MS)
    entry.click()
    review.get_by_role("button", name=re.compile("^Valider")).first.click()
    review.wait_for_function(
        """id => fetch('/api/practices/' + id, {credentials: 'same-origin'})
            .then(response => response.json()).then(entry => entry.status === 'approved')""",
        arg=practice_id,
        timeout=60_000,
    )

    # Julie asks in English; the answer cites a source she opens, and names Karim as a colleague who knows.
    chat = page_as("julie", "en")
    question = chat.locator("#chat-question")
    question.fill("How do we change the seal without stopping the line?")
    question.press("Enter")
    citation = chat.get_by_role("button", name=re.compile(r"^Open source 1\b")).first
    citation.wait_for(timeout=TIMEOUT_MS)
    citation.click()
    passage = chat.locator("dialog.source-dialog mark")
    passage.wait_for()
    assert passage.inner_text().strip()
    chat.locator("dialog.source-dialog").get_by_role("button", name="Close").click()
    chat.locator(".expert-card").filter(has_text="Karim Benali").first.wait_for(timeout=TIMEOUT_MS)


@pytest.mark.browser
def test_an_employee_may_not_open_the_review_queue_or_the_upload_page(seeded: LiveServer, page_as: PageAs) -> None:
    page = page_as("julie")
    seen = _responses(page)
    for route in ("#/review", "#/upload"):
        page.goto(f"/{route}")
        page.get_by_role("heading", name="Accès non autorisé").wait_for()
    nav = page.get_by_role("navigation")
    assert nav.get_by_role("link", name="Déposer").count() == 0
    assert nav.get_by_role("link", name="Revue").count() == 0
    assert page.locator("#upload-form").count() == 0
    # The API refuses anyway, and no draft reached the page.
    assert _status(page, "/api/review/queue") == 403
    assert _status(page, "/api/people") == 403
    for response in seen:
        body = response.body() if response.ok else b""
        assert b'"draft"' not in body, response.url


@pytest.mark.browser
def test_unreadable_files_are_refused_in_plain_words(seeded: LiveServer, page_as: PageAs) -> None:
    page = _open_upload(page_as, "karim", "en")
    _drop_files(page, "#upload-drop", [DATA / "image.png", DATA / "corrupt.docx"])
    page.get_by_text("corrupt.docx").wait_for()
    page.locator("#upload-submit").click()
    # A form without its community is not sent; the message says what is missing.
    page.get_by_text("Give the session's community").wait_for()
    assert page.locator(".upload-item").count() == 0
    _fill_session(page)
    page.locator("#upload-submit").click()

    errors = page.locator(".upload-item .upload-error")
    errors.nth(1).wait_for(timeout=TIMEOUT_MS)
    texts = [errors.nth(i).locator("p.error").inner_text() for i in range(2)]
    assert texts[0].startswith('"image.png" is not in a format Compagnon reads')
    assert texts[1].startswith('"corrupt.docx" is damaged or protected')
    for text in texts:
        assert "{" not in text and "Traceback" not in text and "error_code" not in text
    assert page.locator('.upload-item[data-state="failed"]').count() == 2
    page.get_by_text("Upload finished. Notes stored: 0; failed: 2.").wait_for(state="attached")
