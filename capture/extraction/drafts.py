"""What an extractor produces, and the checks every draft goes through before it is stored.

Evidence is checked, not trusted: every quote must occur in the note's normalised text (compared with
whitespace and case folded), its offsets are recomputed from where it really is, a claim whose evidence
cannot be found is dropped and the draft says so, and contributors must be participants of the note.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from retrieval.notes import ChunkView, Participant

CLAIMS = ("practice", "step", "context", "why", "pitfall")


@dataclass(frozen=True)
class NoteSource:
    """The note an extractor reads: its text is data, never instructions."""

    note_id: str
    external_id: str | None
    title: str
    kind: str
    community: str
    language: str
    text: str
    chunks: tuple[ChunkView, ...]
    participants: tuple[Participant, ...]


@dataclass(frozen=True)
class Evidence:
    """A span of the note supporting one claim of a draft: ``quote == note_text[start:end]``."""

    claim: str
    quote: str
    start: int = -1
    end: int = -1
    note_id: str = ""


@dataclass(frozen=True)
class PracticeDraft:
    """A best-practice entry as drafted, before review."""

    title: str
    practice: str
    steps: tuple[str, ...] = ()
    context: str = ""
    rationale: str = ""
    pitfalls: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    contributors: tuple[Participant, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    language: str = "fr"
    extracted_by: str = ""
    prompt_version: str | None = None
    flags: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class ExtractionResult:
    """The drafts of one note, and the failures recorded on the way (never dropped silently)."""

    drafts: tuple[PracticeDraft, ...]
    failures: tuple[str, ...] = ()


class PracticeExtractor(Protocol):
    """Drafts best-practice entries from a note."""

    name: str

    def extract(self, note: NoteSource) -> ExtractionResult:
        """Draft the entries of one note (evidence unverified: ``verify_draft`` checks it)."""
        ...


def _fold_with_map(text: str) -> tuple[str, list[int]]:
    """Case-folded text with runs of whitespace collapsed, and the offset in ``text`` of each folded char."""
    folded: list[str] = []
    positions: list[int] = []
    previous_space = False
    for index, char in enumerate(text):
        if char.isspace():
            if previous_space:
                continue
            previous_space = True
            folded.append(" ")
            positions.append(index)
            continue
        previous_space = False
        for piece in unicodedata.normalize("NFC", char).casefold():
            folded.append(piece)
            positions.append(index)
    return "".join(folded), positions


def locate_quote(text: str, quote: str, start_hint: int = 0) -> tuple[int, int] | None:
    """Where a quote occurs in the text (whitespace and case folded); the occurrence nearest the hint wins."""
    needle, _ = _fold_with_map(re.sub(r"\s+", " ", quote.strip()))
    if not needle.strip():
        return None
    haystack, positions = _fold_with_map(text)
    found: list[int] = []
    at = haystack.find(needle)
    while at != -1:
        found.append(at)
        at = haystack.find(needle, at + 1)
    if not found:
        return None
    best = min(found, key=lambda candidate: abs(positions[candidate] - start_hint))
    start = positions[best]
    end = positions[best + len(needle) - 1] + 1
    return start, end


def verify_draft(draft: PracticeDraft, note: NoteSource) -> PracticeDraft | None:
    """Keep only evidence found in the note (offsets recomputed) and contributors who took part.

    A draft with no verified evidence for its practice is refused (None). Dropped claims are flagged.
    """
    flags = list(draft.flags)
    verified: list[Evidence] = []
    for evidence in draft.evidence:
        span = locate_quote(note.text, evidence.quote, max(evidence.start, 0))
        if span is None or evidence.claim not in CLAIMS:
            flags.append(f"dropped_unverified_evidence:{evidence.claim}")
            continue
        start, end = span
        verified.append(
            Evidence(claim=evidence.claim, quote=note.text[start:end], start=start, end=end, note_id=note.note_id)
        )
    unique = list({(e.claim, e.start, e.end): e for e in verified}.values())
    if not any(e.claim in ("practice", "step") for e in unique):
        return None
    participants = {p.name.casefold(): p for p in note.participants}
    contributors: list[Participant] = []
    for contributor in draft.contributors:
        known = participants.get(contributor.name.casefold())
        if known is None:
            flags.append(f"dropped_unknown_contributor:{contributor.name}")
        elif known not in contributors:
            contributors.append(known)
    claims = {e.claim for e in unique}
    for claim, value in (("context", draft.context), ("why", draft.rationale)):
        if value and claim not in claims:
            flags.append(f"unsupported_claim:{claim}")
    return replace(
        draft,
        evidence=tuple(sorted(unique, key=lambda e: e.start)),
        contributors=tuple(contributors),
        flags=tuple(dict.fromkeys(flags)),
    )


def speakers_of(evidence: Sequence[Evidence], note: NoteSource) -> list[str]:
    """Who spoke the chunks the evidence falls in."""
    names: list[str] = []
    for item in evidence:
        for chunk in note.chunks:
            if chunk.speaker and chunk.start <= item.start < chunk.end and chunk.speaker not in names:
                names.append(chunk.speaker)
    return names
