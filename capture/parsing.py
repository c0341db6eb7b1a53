"""Parsing documents into structural blocks (headings, list items, paragraphs).

HTML and .docx go through unstructured, PDF through pypdf, .odt through its XML, and plain text or
Markdown through a line parser that keeps speaker turns on their own lines.
"""

from __future__ import annotations

import io
import os
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from capture.errors import CaptureError, CorruptDocument, DocumentTooLarge, EmptyDocument, UnsupportedFormat
from capture.sniffing import ARCHIVE_ERRORS, check_archive, decode_text

BLOCK_KINDS = ("heading", "item", "paragraph")


@dataclass(frozen=True)
class Block:
    """A structural unit of a note: a heading, a list item or a paragraph (whitespace already normalised)."""

    kind: str
    text: str


_SPACES = re.compile(r"[ \t\u00a0\u202f\u2007\u2009\u200a\u3000]+")
# Lone surrogates too: a PDF's font map can produce them, and no encoder (JSON, SQL, the embedder) takes them.
_INVISIBLE = re.compile(r"[\u00ad\u200b\u200c\u200d\u2060\ufeff\ud800-\udfff]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalise_line(text: str) -> str:
    """NFC, no invisible or control characters, one plain space between words."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text)
    text = _CONTROLS.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


_ATX = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_UNDERLINE = re.compile(r"^(=+|-+)\s*$")
_BULLET = re.compile(r"^\s*(?:[-*+•·▪◦‣]|\d{1,3}[.)])\s+(.*)$")
# Neither part may run past the next bracket: "[[[[..." on one long line would be quadratic.
_MD_LINK = re.compile(r"!?\[([^\[\]]*)\]\([^()]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(?=\S)(.+?)(?<=\S)\1")
_SPEAKER_START = re.compile(
    r"^[A-ZÀ-ÖØ-Þ][\w'’.-]*(?:\s+[A-ZÀ-ÖØ-Þ][\w'’.-]*){0,3}\s*(?:\([^)]{1,40}\)\s*)?(?::|：|\s[—–-]\s)"
)


def _strip_markdown(text: str) -> str:
    text = _MD_LINK.sub(r"\1", text)
    return _MD_EMPHASIS.sub(r"\2", text)


def parse_lines(text: str, markdown: bool) -> list[Block]:
    """Blocks of plain text or Markdown: a new block at a blank line, a heading, a bullet or a speaker turn.

    Other lines continue the current block (hard-wrapped text and PDF lines are joined with a space).
    """
    blocks: list[Block] = []
    current: list[str] = []
    current_kind = "paragraph"

    def flush() -> None:
        nonlocal current
        joined = normalise_line(" ".join(current))
        if joined:
            blocks.append(Block(current_kind, joined))
        current = []

    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    in_fence = False
    for index, raw in enumerate(lines):
        line = raw.rstrip()
        if markdown and line.lstrip().startswith("```"):
            in_fence = not in_fence
            continue
        stripped = normalise_line(line)
        if markdown and not in_fence:
            stripped = _strip_markdown(stripped)
        if not stripped:
            flush()
            continue
        next_line = lines[index + 1].strip() if index + 1 < len(lines) else ""
        atx = _ATX.match(stripped) if markdown else None
        if atx:
            flush()
            blocks.append(Block("heading", atx.group(2)))
            continue
        if _UNDERLINE.match(stripped) and not current:
            continue
        if _UNDERLINE.match(next_line) and len(next_line) >= 3 and not current:
            blocks.append(Block("heading", stripped))
            continue
        bullet = _BULLET.match(stripped)
        if bullet:
            flush()
            current_kind = "item"
            current = [bullet.group(1)]
            continue
        if _SPEAKER_START.match(stripped):
            flush()
            current_kind = "paragraph"
            current = [stripped]
            continue
        if not current:
            current_kind = "paragraph"
        current.append(stripped)
    flush()
    return blocks


def _lines_of_paragraphs(texts: Iterable[tuple[str, str]]) -> list[Block]:
    """Blocks from (kind, text) pairs whose text may hold several lines (each line parsed as above)."""
    blocks: list[Block] = []
    for kind, text in texts:
        if kind == "paragraph":
            blocks.extend(parse_lines(text, markdown=False))
        else:
            cleaned = normalise_line(text.replace("\n", " "))
            if cleaned:
                blocks.append(Block(kind, cleaned))
    return blocks


@lru_cache(maxsize=1)
def _offline_sentence_splitter() -> Any:
    import spacy

    nlp = spacy.blank("xx")
    nlp.add_pipe("sentencizer")
    return nlp


def quiet_unstructured_environment() -> None:
    """Set the variables that stop unstructured's blocking analytics request and notice when it is imported."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "1")
    os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")


def patch_unstructured_offline() -> None:
    """Make unstructured use a blank multilingual spaCy pipeline instead of downloading a model at run time."""
    quiet_unstructured_environment()
    from unstructured.nlp import tokenize

    tokenize._get_nlp = _offline_sentence_splitter


def _unstructured_blocks(elements: Iterable[Any]) -> list[Block]:
    pairs: list[tuple[str, str]] = []
    for element in elements:
        category = getattr(element, "category", "")
        text = str(getattr(element, "text", ""))
        if category == "Title":
            pairs.append(("heading", text))
        elif category == "ListItem":
            pairs.append(("item", text))
        elif category in ("PageBreak", "Image", "Header", "Footer", "PageNumber"):
            continue
        else:
            pairs.append(("paragraph", text))
    return _lines_of_paragraphs(pairs)


def _parse_html(data: bytes) -> list[Block]:
    patch_unstructured_offline()
    from unstructured.partition.html import partition_html

    try:
        # languages=[""]: no langdetect (2 s to load its profiles); capture/language.py detects the language.
        elements = partition_html(text=decode_text(data), languages=[""])
    except MemoryError:
        raise  # over the sandbox's memory limit: not a malformed document
    except Exception as exc:  # the partitioner raises many types on malformed markup
        raise CorruptDocument(f"the HTML cannot be read: {exc}") from exc
    return _unstructured_blocks(elements)


def _parse_docx(data: bytes, max_uncompressed: int, max_ratio: int) -> list[Block]:
    check_archive(data, max_uncompressed, max_ratio).close()
    patch_unstructured_offline()
    from unstructured.partition.docx import partition_docx

    try:
        elements = partition_docx(file=io.BytesIO(data), languages=[""])
    except MemoryError:
        raise
    except Exception as exc:  # python-docx raises KeyError, ValueError, lxml errors on damaged files
        raise CorruptDocument(f"the .docx cannot be read: {exc}") from exc
    return _unstructured_blocks(elements)


def _pdf_page_parts(page: Any) -> list[tuple[str, float]]:
    """A page's text runs with their rendered font size (PDFs carry no structure, only typography)."""
    runs: list[tuple[str, float]] = []

    def visit(text: str, cm: Sequence[float], tm: Sequence[float], _font: Any, size: float) -> None:
        if text:
            runs.append((text, abs(size * tm[3] * cm[3]) or size))

    page.extract_text(visitor_text=visit)
    return runs


def _pdf_blocks(pages: Sequence[list[tuple[str, float]]]) -> list[Block]:
    """Blocks of a PDF: runs set clearly larger than the body text are headings."""
    weights: dict[float, int] = {}
    for runs in pages:
        for text, size in runs:
            weights[round(size, 1)] = weights.get(round(size, 1), 0) + len(text.strip())
    body = max(weights, key=lambda size: weights[size]) if weights else 0.0
    pairs: list[tuple[str, str]] = []
    for runs in pages:
        for text, size in runs:
            kind = "heading" if text.strip() and round(size, 1) >= body * 1.15 else "paragraph"
            if pairs and pairs[-1][0] == kind:
                pairs[-1] = (kind, pairs[-1][1] + text)
            else:
                pairs.append((kind, text))
        pairs.append(("paragraph", "\n\n"))
    return _lines_of_paragraphs(pairs)


def _parse_pdf(data: bytes, max_pages: int) -> list[Block]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorruptDocument("the PDF is password-protected")
        if len(reader.pages) > max_pages:
            raise DocumentTooLarge(f"the PDF has {len(reader.pages)} pages, over the limit of {max_pages}")
        pages = [_pdf_page_parts(page) for page in reader.pages]
    except (CaptureError, MemoryError):
        raise
    except Exception as exc:  # pypdf raises PyPdfError but also NotImplementedError, IndexError... on damaged files
        raise CorruptDocument(f"the PDF cannot be read: {exc}") from exc
    return _pdf_blocks(pages)


_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"


def _odf_text(element: ET.Element) -> str:
    parts: list[str] = [element.text or ""]
    for child in element:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "s":
            parts.append(" " * int(child.get(f"{{{_ODF_TEXT}}}c", "1")))
        elif tag == "tab":
            parts.append("\t")
        elif tag == "line-break":
            parts.append("\n")
        elif tag not in ("note", "annotation"):
            parts.append(_odf_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _odf_blocks(element: ET.Element, in_list: bool) -> Iterator[tuple[str, str]]:
    for child in element:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag == "h":
            yield "heading", _odf_text(child)
        elif tag == "p":
            yield ("item" if in_list else "paragraph"), _odf_text(child)
        elif tag in ("list", "list-item", "section", "table", "table-row", "table-cell", "list-header"):
            yield from _odf_blocks(child, in_list or tag in ("list", "list-item"))


def _parse_odt(data: bytes, max_uncompressed: int, max_ratio: int) -> list[Block]:
    with check_archive(data, max_uncompressed, max_ratio) as archive:
        try:
            content = archive.read("content.xml")
            root = ET.fromstring(content)  # expat resolves no external entity and caps entity expansion
        except (KeyError, ET.ParseError, *ARCHIVE_ERRORS) as exc:
            raise CorruptDocument(f"the .odt cannot be read: {exc}") from exc
    body = root.find(".//{urn:oasis:names:tc:opendocument:xmlns:office:1.0}text")
    if body is None:
        raise CorruptDocument("the .odt has no text body")
    try:
        return _lines_of_paragraphs(_odf_blocks(body, in_list=False))
    except (ValueError, RecursionError) as exc:  # a non-numeric space count; spans nested thousands deep
        raise CorruptDocument(f"the .odt cannot be read: {exc}") from exc


def parse_document(
    data: bytes,
    source_type: str,
    max_pdf_pages: int = 500,
    max_uncompressed: int = 200 * 1024 * 1024,
    max_ratio: int = 100,
) -> list[Block]:
    """Parse a document of a sniffed type into blocks; a document with no text is refused."""
    if source_type in ("txt", "md"):
        blocks = parse_lines(decode_text(data), markdown=source_type == "md")
    elif source_type == "html":
        blocks = _parse_html(data)
    elif source_type == "docx":
        blocks = _parse_docx(data, max_uncompressed, max_ratio)
    elif source_type == "pdf":
        blocks = _parse_pdf(data, max_pdf_pages)
    elif source_type == "odt":
        blocks = _parse_odt(data, max_uncompressed, max_ratio)
    else:
        raise UnsupportedFormat(f"no parser for {source_type!r}")
    if not any(block.text for block in blocks):
        raise EmptyDocument("no text could be found in the document")
    return blocks
