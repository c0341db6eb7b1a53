"""A person's page in headless Chromium: what they know, sessions, entries, the opt-out; only what the viewer may see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import CIRCLE_TITLE, MENTORING_TITLE, Corpus, LiveServer

pytestmark = pytest.mark.browser


def test_a_colleague_page_shows_topics_sessions_and_entries_but_no_private_mentoring(
    page_as: Callable[..., Page], corpus: Corpus, screenshot: Callable[[Page, str], Any]
) -> None:
    page = page_as("julie", "en")
    page.goto("/#/people/Karim%20Benali")

    expect(page.get_by_role("heading", level=1)).to_have_text("Karim Benali")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    topics = page.get_by_role("region", name="Topics they know")
    expect(topics.locator(".chip", has_text="maintenance")).to_be_visible()
    topics.locator("summary", has_text="maintenance").click()
    expect(topics).to_contain_text(CIRCLE_TITLE)
    entries = page.get_by_role("region", name="Best practices credited")
    expect(entries.get_by_role("heading", name=corpus.practice_title)).to_be_visible()
    expect(entries.locator(".badge")).to_have_text(["Approved"])
    sessions = page.get_by_role("region", name="Sessions joined")
    expect(sessions.get_by_role("row")).to_have_count(2)
    expect(sessions.get_by_role("row").nth(1)).to_contain_text("Learning circle")
    expect(sessions.get_by_role("row").nth(1)).to_contain_text("Facilitator")
    expect(page.get_by_role("checkbox")).to_have_count(0)
    expect(page.get_by_role("region", name="Suggestions")).to_contain_text("may be suggested")
    body = page.locator("body").inner_text()
    assert MENTORING_TITLE not in body and "qualite" not in body and "Mentee" not in body
    screenshot(page, "people")


def test_a_person_opts_out_of_suggestions_from_their_own_page(
    page_as: Callable[..., Page], corpus: Corpus, live_server: LiveServer
) -> None:
    page = page_as("julie", "en")
    page.get_by_role("link", name="My page").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Julie Moreau")
    expect(page.get_by_role("link", name="My page")).to_have_attribute("aria-current", "page")
    toggle = page.get_by_role("checkbox", name="Suggest me as an expert or a peer")
    expect(toggle).to_be_checked()

    toggle.uncheck()

    expect(page.get_by_role("region", name="Suggestions").get_by_role("status")).to_have_text(
        "Julie Moreau does not wish to be suggested as an expert or a peer."
    )
    with live_server.client("julie") as julie:
        assert julie.get("/api/people/Julie Moreau").json()["opted_out"] is True
    toggle.check()
    expect(page.get_by_role("region", name="Suggestions").get_by_role("status")).to_have_text(
        "Julie Moreau may be suggested as an expert or a peer."
    )
    with live_server.client("julie") as julie:
        assert julie.get("/api/people/Julie Moreau").json()["opted_out"] is False


def test_someone_the_viewer_sees_nothing_of_is_unknown(page_as: Callable[..., Page], corpus: Corpus) -> None:
    page = page_as("julie", "fr")
    page.goto("/#/people/L%C3%A9a%20Girard")
    expect(page.get_by_role("heading", level=1)).to_have_text("Personne inconnue")
    assert MENTORING_TITLE not in page.locator("body").inner_text()
