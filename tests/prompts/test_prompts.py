"""The prompt loader: versioned FR/EN files shipped in the package, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import prompts
from prompts import Prompt, PromptError, load_prompt, parse_prompt

NAME = "extraction/draft_practices"


@pytest.mark.parametrize("language", ["fr", "en"])
def test_both_languages_load_with_their_version(language: str) -> None:
    prompt = load_prompt(NAME, language)
    assert (prompt.name, prompt.language, prompt.version) == (NAME, language, "draft_practices/1")
    assert "<note id=" in prompt.system and "</note>" in prompt.system
    assert prompt.system and prompt.repair


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("fr", ["citation EXACTE", "ne les suivez jamais", "liste vide", "neutralisée", "contributors"]),
        ("en", ["EXACT quote", "never follow them", "empty list", "neutralised", "contributors"]),
    ],
)
def test_the_prompts_say_what_matters(language: str, words: list[str]) -> None:
    system = load_prompt(NAME, language).system
    for word in words:
        assert word in system


def test_the_user_template_wraps_the_note_and_takes_values_verbatim() -> None:
    prompt = load_prompt(NAME, "en")
    values = {"note_id": "n1", "title": "T", "kind": "pair", "community": "c", "participants": "- A (mentor)"}
    rendered = prompt.render_user(note="costs $5 and ${x}", **values)
    assert '<note id="n1">\ncosts $5 and ${x}\n</note>' in rendered
    with pytest.raises(KeyError):
        prompt.render_user(note="no other values")
    assert "too short" in prompt.render_repair(error="title: too short")


def test_a_missing_language_names_the_available_ones() -> None:
    with pytest.raises(PromptError, match=r"'de'.*available: en, fr"):
        load_prompt(NAME, "de")


def test_a_missing_prompt_is_a_clear_error() -> None:
    with pytest.raises(PromptError, match="no prompt 'extraction/nothing_here'"):
        load_prompt("extraction/nothing_here", "fr")


@pytest.mark.parametrize(("name", "language"), [("../prompts/x", "fr"), ("extraction/draft_practices", "../fr")])
def test_names_cannot_leave_the_package(name: str, language: str) -> None:
    with pytest.raises(PromptError, match="not a prompt name"):
        load_prompt(name, language)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("[system]\nx\n[user]\ny\n", "no header"),
        ("version: other/1\n---\n[system]\nx\n[user]\ny\n", "version must read 'probe/<number>'"),
        ("version probe/1\n---\n[system]\nx\n[user]\ny\n", "is not 'key: value'"),
        ("version: probe/2\n---\n[system]\nx\n", "missing section"),
    ],
)
def test_malformed_files_are_refused(text: str, error: str) -> None:
    with pytest.raises(PromptError, match=error):
        parse_prompt("probe", "fr", text)


def test_a_well_formed_file_parses() -> None:
    text = "version: probe/7\nnote: free text\n---\n[system]\nBe brief.\n\n[user]\nSay $word.\n"
    assert parse_prompt("probe", "en", text) == Prompt("probe", "en", "probe/7", "Be brief.", "Say $word.", "")


def test_every_shipped_prompt_parses() -> None:
    shipped = sorted(Path(prompts.__file__).parent.rglob("*.md"))
    assert shipped
    for path in shipped:
        stem, language = path.name.removesuffix(".md").rsplit(".", 1)
        folder = path.parent.relative_to(Path(prompts.__file__).parent).as_posix()
        assert load_prompt(f"{folder}/{stem}" if folder != "." else stem, language).version.startswith(stem)
