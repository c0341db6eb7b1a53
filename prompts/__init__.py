"""Versioned prompt templates (French and English), shipped as files in the package, and their loader.

A prompt lives in ``prompts/<folder>/<name>.<language>.md`` and is loaded as ``load_prompt("<folder>/<name>",
"<language>")``. The file opens with a header of ``key: value`` lines closed by a line ``---``; the header
must hold ``version: <name>/<number>``, which is recorded on everything the prompt produces, so bump it
whenever the wording changes. The body is cut into sections by lines ``[system]``, ``[user]`` and,
optionally, ``[repair]``. Section texts are ``string.Template`` templates: ``$name`` or ``${name}`` is a
placeholder and ``$$`` a literal dollar sign.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from string import Template

__all__ = ["Prompt", "PromptError", "load_prompt", "parse_prompt"]

_NAME = re.compile(r"[a-z0-9_]+(?:/[a-z0-9_]+)*")
_LANGUAGE = re.compile(r"[a-z]{2}")
_SECTION = re.compile(r"^\[(system|user|repair)\][ \t]*$", re.MULTILINE)
_HEADER_LINE = re.compile(r"([a-z_]+):\s*(.*)")


class PromptError(LookupError):
    """A prompt is missing or its file is malformed."""


@dataclass(frozen=True)
class Prompt:
    """One prompt in one language: its version, system text and user template (plus an optional repair one)."""

    name: str
    language: str
    version: str
    system: str
    user: str
    repair: str = ""

    def render_user(self, **values: str) -> str:
        """The user message with its placeholders filled (a missing value raises ``KeyError``)."""
        return Template(self.user).substitute(values)

    def render_repair(self, **values: str) -> str:
        """The repair message with its placeholders filled (a missing value raises ``KeyError``)."""
        return Template(self.repair).substitute(values)


def parse_prompt(name: str, language: str, text: str) -> Prompt:
    """A prompt from the text of its file (see the module docstring for the format)."""
    header, separator, body = text.partition("\n---\n")
    if not separator:
        raise PromptError(f"prompt {name!r} ({language}): no header closed by a line '---'")
    fields: dict[str, str] = {}
    for line in header.strip().splitlines():
        match = _HEADER_LINE.fullmatch(line.strip())
        if match is None:
            raise PromptError(f"prompt {name!r} ({language}): header line {line!r} is not 'key: value'")
        fields[match[1]] = match[2].strip()
    version = fields.get("version", "")
    stem = name.rsplit("/", 1)[-1]
    if not re.fullmatch(rf"{re.escape(stem)}/\d+", version):
        raise PromptError(f"prompt {name!r} ({language}): version must read '{stem}/<number>', got {version!r}")
    pieces = _SECTION.split(body)
    sections = {pieces[i]: pieces[i + 1].strip() for i in range(1, len(pieces) - 1, 2)}
    missing = [section for section in ("system", "user") if not sections.get(section)]
    if missing:
        raise PromptError(f"prompt {name!r} ({language}): missing section(s) {', '.join(missing)}")
    return Prompt(
        name=name,
        language=language,
        version=version,
        system=sections["system"],
        user=sections["user"],
        repair=sections.get("repair", ""),
    )


def load_prompt(name: str, language: str) -> Prompt:
    """Read the prompt ``name`` (e.g. ``extraction/draft_practices``) in ``language`` (``fr``, ``en``)."""
    if not _NAME.fullmatch(name) or not _LANGUAGE.fullmatch(language):
        raise PromptError(f"not a prompt name and language: {name!r}, {language!r}")
    folder, _, stem = name.rpartition("/")
    directory = resources.files(__name__)
    for part in filter(None, folder.split("/")):
        directory = directory.joinpath(part)
    path = directory.joinpath(f"{stem}.{language}.md")
    if not path.is_file():
        available = (
            sorted(
                entry.name.removeprefix(f"{stem}.").removesuffix(".md")
                for entry in directory.iterdir()
                if entry.name.startswith(f"{stem}.") and entry.name.endswith(".md")
            )
            if directory.is_dir()
            else []
        )
        raise PromptError(
            f"no prompt {name!r} in language {language!r}"
            + (f" (available: {', '.join(available)})" if available else " (no such prompt in any language)")
        )
    return parse_prompt(name, language, path.read_text(encoding="utf-8"))
