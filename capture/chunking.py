"""Cutting a note along its structure: the normalised text, and chunks with speakers and exact offsets.

Speaker turns (``Karim : ...``, ``Karim: ...``, ``- Karim — ...``) and list items stay whole where they fit;
headings become the section of the chunks under them; consecutive short paragraphs or items of one
section are packed together. Every chunk satisfies ``text == note_text[start:end]``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from capture.parsing import Block
from retrieval.notes import ChunkDraft, Participant

_NAME = r"[A-ZÀ-ÖØ-Þ][\w'’.-]*(?:\s+[A-ZÀ-ÖØ-Þ][\w'’.-]*){0,3}"
_TURN = re.compile(
    rf"^(?P<name>{_NAME})\s*(?:\((?P<note>[^)]{{1,40}})\)\s*)?(?::|：|\s[—–-]\s)\s*(?P<rest>\S.*)$", re.S
)
_SENTENCE_END = re.compile(r"(?<=[.!?…;])\s+(?=\S)")

# Labels that look like a speaker ("Astuce : ...") but are not a person.
_LABELS = frozenset(
    """action actions attention bilan but cause comment conclusion constat contexte date decision decisions
    definition delai demande duree etape etapes exemple hypothese idee important information lieu livrable
    note notes nb objectif objectifs ordre participants piege ps point points pourquoi probleme prochaine
    question questions reponse remarque resultat resume retour risque solution sujet theme tip tips todo
    lesson lessons learned warning next summary agenda decision outcome goal goals problem answer issue
    step steps context why how what result results owner owners deadline astuce rappel vigilance animation
    binome pair passation total contact lieu presents absents""".split()
)


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True)
class _Piece:
    kind: str
    text: str
    section: str | None
    speaker: str | None


class SpeakerResolver:
    """Recognises who speaks at the start of a block, and maps first names to the note's participants."""

    def __init__(self, participants: Sequence[Participant]) -> None:
        self._full: dict[str, str] = {}
        first_names: dict[str, list[str]] = {}
        for participant in participants:
            folded = _fold(participant.name)
            self._full[folded] = participant.name
            for token in folded.split():
                first_names.setdefault(token, []).append(participant.name)
        self._by_token = {token: names[0] for token, names in first_names.items() if len(set(names)) == 1}
        self._known = bool(participants)

    def resolve(self, name: str) -> str | None:
        """The speaker behind a name as written, or None when it is a label, not a person."""
        folded = _fold(name).strip(" .")
        if folded in self._full:
            return self._full[folded]
        tokens = folded.split()
        if not tokens or tokens[0] in _LABELS:
            return None
        if self._known:
            if len(tokens) == 1 and tokens[0] in self._by_token:
                return self._by_token[tokens[0]]
            candidates = {self._by_token.get(token) for token in tokens} - {None}
            return candidates.pop() if len(candidates) == 1 else None
        return name.strip(" .")


def _split_turn(text: str, resolver: SpeakerResolver) -> str | None:
    match = _TURN.match(text)
    if not match:
        return None
    return resolver.resolve(match.group("name"))


def _split_long(text: str, max_chars: int) -> list[str]:
    """Split a text at sentence ends (or spaces, for run-on text) into pieces of at most max_chars."""
    if len(text) <= max_chars:
        return [text]
    sentences = _SENTENCE_END.split(text)
    pieces: list[str] = []
    current = ""
    for sentence in sentences:
        rest = sentence
        while len(rest) > max_chars:
            cut = rest.rfind(" ", 0, max_chars)
            cut = cut if cut > max_chars // 2 else max_chars
            if current:
                pieces.append(current)
                current = ""
            pieces.append(rest[:cut].rstrip())
            rest = rest[cut:].lstrip()
        candidate = f"{current} {rest}" if current else rest
        if len(candidate) <= max_chars:
            current = candidate
        else:
            pieces.append(current)
            current = rest
    if current:
        pieces.append(current)
    return [piece for piece in pieces if piece]


@dataclass(frozen=True)
class ChunkedNote:
    """A note's normalised text and its chunks."""

    text: str
    chunks: tuple[ChunkDraft, ...]


def chunk_blocks(
    blocks: Sequence[Block],
    participants: Sequence[Participant] = (),
    max_chars: int = 1200,
    pack_chars: int = 400,
) -> ChunkedNote:
    """Build the note's normalised text from its blocks, and cut it into chunks along its structure."""
    resolver = SpeakerResolver(participants)
    parts: list[str] = []
    spans: list[tuple[int, int, Block, str | None]] = []
    position = 0
    previous: Block | None = None
    section: str | None = None
    for block in blocks:
        if previous is not None:
            separator = "\n" if block.kind == "item" and previous.kind == "item" else "\n\n"
            parts.append(separator)
            position += len(separator)
        marker = "- " if block.kind == "item" else ""
        parts.append(marker + block.text)
        start = position + len(marker)
        position += len(marker) + len(block.text)
        if block.kind == "heading":
            section = block.text[:300]
        spans.append((start, position, block, section))
        previous = block
    text = "".join(parts)

    chunks: list[ChunkDraft] = []
    pending: list[tuple[int, int]] = []
    pending_kind = "paragraph"
    pending_section: str | None = None

    def flush() -> None:
        nonlocal pending
        if pending:
            start, end = pending[0][0], pending[-1][1]
            chunks.append(ChunkDraft(text[start:end], start, end, pending_kind, None, pending_section))
            pending = []

    headings_only = all(block.kind == "heading" for block in blocks)
    for start, end, block, block_section in spans:
        if block.kind == "heading" and not headings_only:
            flush()
            continue
        speaker = _split_turn(block.text, resolver)
        if speaker is not None:
            flush()
            _emit(chunks, text, start, end, "turn", speaker, block_section, max_chars)
            continue
        kind = "list" if block.kind == "item" else "paragraph"
        joined = end - pending[0][0] if pending else end - start
        if pending and (kind != pending_kind or block_section != pending_section or joined > pack_chars):
            flush()
        if end - start > pack_chars:
            _emit(chunks, text, start, end, kind, None, block_section, max_chars)
            continue
        pending_kind, pending_section = kind, block_section
        pending.append((start, end))
    flush()
    return ChunkedNote(text=text, chunks=tuple(chunks))


def _emit(
    chunks: list[ChunkDraft],
    text: str,
    start: int,
    end: int,
    kind: str,
    speaker: str | None,
    section: str | None,
    max_chars: int,
) -> None:
    cursor = start
    for piece in _split_long(text[start:end], max_chars):
        piece_start = text.index(piece, cursor)
        piece_end = piece_start + len(piece)
        chunks.append(ChunkDraft(piece, piece_start, piece_end, kind, speaker, section))
        cursor = piece_end
