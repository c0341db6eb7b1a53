"""The web app's dictionaries: both languages complete, every key the pages use defined, every API error worded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from api.errors import ErrorCode
from api.web import STATIC_DIR

I18N = STATIC_DIR / "i18n"
LANGUAGES = ("fr", "en")
# A literal key in a call to the translator: t("chat.ask") or t('chat.ask', {...}).
T_CALL = re.compile(r"""\bt\(\s*(["'])([\w.-]+)\1""")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def dictionary(name: str) -> dict[str, dict[str, str]]:
    """A dictionary file as loaded by the shell."""
    loaded: dict[str, dict[str, str]] = json.loads((I18N / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


def dictionaries() -> list[Path]:
    """Every dictionary file."""
    return sorted(I18N.glob("*.json"))


def modules() -> list[Path]:
    """Every JavaScript module of the web app."""
    return sorted(STATIC_DIR.rglob("*.js"))


@pytest.mark.parametrize("path", dictionaries(), ids=lambda path: path.stem)
def test_both_languages_have_the_same_keys(path: Path) -> None:
    entries = dictionary(path.stem)
    assert set(entries) == set(LANGUAGES)
    assert set(entries["fr"]) == set(entries["en"]), set(entries["fr"]) ^ set(entries["en"])
    for key in entries["fr"]:
        assert entries["fr"][key].strip() and entries["en"][key].strip(), key
        assert set(PLACEHOLDER.findall(entries["fr"][key])) == set(PLACEHOLDER.findall(entries["en"][key])), key


@pytest.mark.parametrize("path", dictionaries(), ids=lambda path: path.stem)
def test_keys_are_prefixed_by_their_page(path: Path) -> None:
    if path.stem == "common":
        return
    for key in dictionary(path.stem)["en"]:
        assert key.startswith(f"{path.stem}."), key


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(STATIC_DIR)))
def test_every_literal_key_a_module_uses_is_defined(path: Path) -> None:
    available = set(dictionary("common")["en"])
    if path.parent.name == "pages" and (I18N / f"{path.stem}.json").exists():
        available |= set(dictionary(path.stem)["en"])
    used = {match.group(2) for match in T_CALL.finditer(path.read_text(encoding="utf-8"))}
    assert used - available == set()


def test_every_api_error_code_is_worded() -> None:
    common = dictionary("common")["en"]
    assert {f"error.{error.code}" for error in ErrorCode} - set(common) == set()


def test_every_page_has_a_dictionary() -> None:
    pages = {path.stem for path in (STATIC_DIR / "pages").glob("*.js")}
    assert pages
    assert pages - {path.stem for path in dictionaries()} == set()


@pytest.mark.parametrize("path", modules(), ids=lambda path: str(path.relative_to(STATIC_DIR)))
def test_no_module_writes_markup(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", source)
