"""Every setting is documented in the README's configuration table, and nothing else is."""

from __future__ import annotations

import re
from pathlib import Path

from api.settings import ApiSettings
from capture.settings import CaptureSettings
from retrieval.settings import RetrievalSettings

README = Path(__file__).parents[1] / "README.md"


def test_the_readme_lists_every_environment_variable() -> None:
    declared = {
        f"COMPAGNON_{name.upper()}"
        for settings in (RetrievalSettings, CaptureSettings, ApiSettings)
        for name in settings.model_fields
    }
    table = re.findall(r"^\| `(COMPAGNON_[A-Z_]+)` \|", README.read_text(encoding="utf-8"), flags=re.M)
    assert sorted(table) == sorted(declared)


def test_every_setting_has_a_description() -> None:
    for settings in (RetrievalSettings, CaptureSettings, ApiSettings):
        for name, field in settings.model_fields.items():
            assert field.description, f"{settings.__name__}.{name} has no description"
