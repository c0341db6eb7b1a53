"""Detecting a note's language: French, English, or mixed."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

LANGUAGES = ("fr", "en")
MIXED = "mixed"


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


def detect_language(text: str) -> str:
    """``fr`` or ``en`` for one passage (French when nothing tells them apart)."""
    if not any(ch.isalpha() for ch in text):
        return "fr"
    language, _ = _identifier().classify(text)
    return str(language)


def detect_note_language(passages: Sequence[str], mixed_share: float = 0.25) -> str:
    """A note's language from its passages, weighted by length: ``mixed`` when the minority has a real share."""
    weights = dict.fromkeys(LANGUAGES, 0)
    for passage in passages:
        if len(passage) >= 20:
            weights[detect_language(passage)] += len(passage)
    total = sum(weights.values())
    if total == 0:
        return detect_language(" ".join(passages))
    majority = max(weights, key=lambda lang: weights[lang])
    if min(weights.values()) / total >= mixed_share:
        return MIXED
    return majority
