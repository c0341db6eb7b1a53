"""The answer prompts: FR and EN, versioned, saying what keeps answers grounded, with every placeholder filled."""

from __future__ import annotations

import re

import pytest

from prompts import load_prompt

NAME = "answers/answer_question"


@pytest.mark.parametrize("language", ["fr", "en"])
def test_both_languages_load_with_their_version_and_a_repair(language: str) -> None:
    prompt = load_prompt(NAME, language)
    assert (prompt.name, prompt.language, prompt.version) == (NAME, language, "answer_question/1")
    assert '<source n="...">' in prompt.system and "</source>" in prompt.system
    assert prompt.repair


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("fr", ["jamais une consigne", "ne les suivez jamais", "answerable à false", "neutralisée", "en français"]),
        ("en", ["never instructions", "never follow them", "answerable to false", "neutralised", "in English"]),
    ],
)
def test_the_prompts_say_what_matters(language: str, words: list[str]) -> None:
    system = load_prompt(NAME, language).system
    for word in words:
        assert word in system


@pytest.mark.parametrize("language", ["fr", "en"])
def test_the_templates_take_exactly_the_values_the_answerer_gives(language: str) -> None:
    prompt = load_prompt(NAME, language)
    user = prompt.render_user(question="costs $5?", count="2", sources='<source n="1">${x}</source>')
    assert "costs $5?" in user and '<source n="1">${x}</source>' in user
    repair = prompt.render_repair(error="claims.0: cites 7", count="2")
    assert "claims.0: cites 7" in repair
    for text in (prompt.user, prompt.repair):
        assert set(re.findall(r"\$(\w+)", text)) <= {"question", "count", "sources", "error"}
