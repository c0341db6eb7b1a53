"""The shell and the chat in headless Chromium: sign-in, role-aware navigation, languages, streamed cited answers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from api.web import STATIC_DIR
from tests.web.conftest import CIRCLE, CIRCLE_TITLE, Corpus, LiveServer

pytestmark = pytest.mark.browser

KIT_QUESTION = "How do we prepare the seal kit before a format change?"
OFF_TOPIC = "What is the recipe of the Basque cake?"
ANSWER_TIMEOUT_MS = 180_000


def ask(page: Page, question: str) -> None:
    """Type a question in the chat and wait for the whole answer (the feedback form comes last)."""
    page.get_by_role("textbox", name=re.compile("question", re.I)).fill(question)
    page.locator("form.ask-form button[type=submit]").click()
    # The machine running the tests may be busy: an answer is waited for longer than Playwright's default.
    page.locator("article.answer form.feedback").wait_for(timeout=ANSWER_TIMEOUT_MS)


def test_a_wrong_password_is_refused_on_the_form(browser: Any, live_server: LiveServer) -> None:
    context = browser.new_context(locale="en-GB", base_url=live_server.url)
    page = context.new_page()
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_focused()
    page.get_by_label("Login").fill("julie")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong login or password.")
    assert page.url.endswith("#/login")
    context.close()


@pytest.mark.parametrize(
    ("login", "links"),
    [
        ("julie", ["Ask", "My page"]),
        ("karim", ["Ask", "Upload", "My page"]),
        ("rh", ["Ask", "Upload", "Review", "Dashboard"]),
        ("admin", ["Ask", "Upload", "Dashboard"]),
    ],
)
def test_the_header_shows_what_the_role_may_use(page_as: Callable[..., Page], login: str, links: list[str]) -> None:
    page = page_as(login, "en")
    expect(page.get_by_role("navigation", name="Main navigation").get_by_role("link")).to_have_text(links)


def test_a_page_the_role_may_not_use_says_so_and_signing_out_returns_to_the_form(
    page_as: Callable[..., Page],
) -> None:
    page = page_as("julie", "en")
    page.goto("/#/review")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_focused()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto("/#/chat")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_an_english_question_streams_a_cited_answer_from_a_french_note(
    page_as: Callable[..., Page],
    corpus: Corpus,
    live_server: LiveServer,
    screenshot: Callable[[Page, str], Any],
) -> None:
    page = page_as("julie", "en")
    ask(page, KIT_QUESTION)

    answer = page.locator("article.answer")
    expect(answer.locator(".lead")).to_have_text("From the notes you can read:")
    expect(page.locator(".chat-result")).to_have_attribute("aria-live", "polite")
    marker = answer.locator("button.cite").first
    expect(marker).to_be_enabled()
    marker.click()
    dialog = page.get_by_role("dialog")
    # The first source is the approved entry drawn from the circle, or the circle's passage itself.
    expect(dialog.get_by_role("heading", level=2)).to_have_text(
        re.compile(f"^({re.escape(CIRCLE_TITLE)}|{re.escape(corpus.practice_title)})$")
    )
    expect(dialog).to_contain_text("maintenance")
    expect(dialog).to_contain_text("Learning circle")
    highlighted = dialog.locator("mark").inner_text()
    assert highlighted and highlighted in CIRCLE
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(marker).to_be_focused()

    expert = answer.locator(".expert-card", has_text="Karim Benali")
    expect(expert).to_be_visible()
    expect(expert.locator("blockquote").first).not_to_be_empty()
    expect(expert.get_by_role("link", name="Karim Benali")).to_have_attribute("href", "#/people/Karim%20Benali")

    page.get_by_role("button", name="Helpful", exact=True).click()
    page.get_by_label("Comment (optional)").fill("Exactly what I needed")
    page.get_by_role("button", name="Send feedback").click()
    expect(answer.get_by_role("status")).to_have_text("Thank you for your feedback.")
    with live_server.client("rh") as hr:
        feedback = hr.get("/api/feedback").json()["feedback"]
    assert any(
        f["rating"] == 1 and f["comment"] == "Exactly what I needed" and f["question"] == KIT_QUESTION for f in feedback
    )

    history = page.locator(".history-list")
    expect(history.get_by_role("button", name=re.compile(re.escape(KIT_QUESTION)))).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "chat")


def test_the_history_reopens_an_answer_with_its_sources(page_as: Callable[..., Page], corpus: Corpus) -> None:
    page = page_as("julie", "en")
    ask(page, KIT_QUESTION)
    ask(page, OFF_TOPIC)
    page.locator(".history-list button", has_text=KIT_QUESTION).first.click()
    answer = page.locator("article.answer")
    expect(answer.get_by_role("heading", level=2)).to_have_text(KIT_QUESTION)
    expect(answer.locator("button.cite").first).to_be_enabled()


def test_an_unanswerable_question_gets_an_honest_abstention_and_people_to_ask(
    page_as: Callable[..., Page], corpus: Corpus
) -> None:
    page = page_as("julie", "en")
    ask(page, OFF_TOPIC)
    answer = page.locator("article.answer")
    expect(answer.locator(".abstain")).to_contain_text("I don't know")
    expect(answer.locator("button.cite")).to_have_count(0)
    expect(answer.locator(".abstain-people")).to_be_visible()
    people = answer.locator(".person-card")
    if people.count():
        expect(answer.locator(".abstain-people")).to_have_text("Ask these colleagues instead:")
    else:
        expect(answer.locator(".abstain-people")).to_contain_text("Nobody seems to have talked about it yet")


def _translations(page: str) -> dict[str, dict[str, str]]:
    common = json.loads((STATIC_DIR / "i18n" / "common.json").read_text(encoding="utf-8"))
    own = json.loads((STATIC_DIR / "i18n" / f"{page}.json").read_text(encoding="utf-8"))
    return {lang: {**common[lang], **own[lang]} for lang in ("fr", "en")}


def test_the_language_switch_changes_every_visible_string(page_as: Callable[..., Page], corpus: Corpus) -> None:
    page = page_as("julie", "fr")
    assert page.evaluate("document.documentElement.lang") == "fr"
    expect(page.get_by_role("heading", level=1)).to_have_text("Poser une question")
    ask(page, "Comment prépare-t-on le kit de joints ?")

    page.get_by_role("button", name="English").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Ask a question")
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.evaluate("localStorage.lang") == "en"
    words = _translations("chat")
    french_only = {text for key, text in words["fr"].items() if text != words["en"][key] and "{" not in text}
    visible = page.locator("body").inner_text()
    assert [text for text in french_only if text in visible] == []
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text("Ask a question")


def test_the_chat_fits_a_phone_screen(page_as: Callable[..., Page], corpus: Corpus) -> None:
    page = page_as("julie", "en")
    page.set_viewport_size({"width": 390, "height": 844})
    ask(page, KIT_QUESTION)
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], widths
    expect(page.locator("form.ask-form button[type=submit]")).to_be_in_viewport()


def test_the_chat_works_with_the_keyboard_alone(page_as: Callable[..., Page], corpus: Corpus) -> None:
    page = page_as("julie", "en")
    expect(page.get_by_role("heading", name="Ask a question")).to_be_focused()
    question = page.get_by_role("textbox", name="Your question")
    for _ in range(15):
        page.keyboard.press("Tab")
        if question.evaluate("element => element === document.activeElement"):
            break
    expect(question).to_be_focused()
    page.keyboard.type(KIT_QUESTION)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()
    page.keyboard.press("Enter")
    page.locator("article.answer form.feedback").wait_for(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("article.answer button.cite").first).to_be_enabled()
    for field in page.locator("main textarea, main input").all():
        assert field.evaluate("element => element.labels.length") > 0
