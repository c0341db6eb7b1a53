"""Sniffing and parsing real files of every accepted format (tests/data, see its SOURCE.md)."""

from __future__ import annotations

import io
import socket
import zipfile
from pathlib import Path

import pytest

from capture.chunking import chunk_blocks
from capture.errors import CorruptDocument, DocumentTooLarge, EmptyDocument, UnsupportedFormat
from capture.parsing import parse_document, patch_unstructured_offline
from capture.sniffing import sniff

DATA = Path(__file__).parents[1] / "data"
FORMATS = {
    "note.txt": "txt",
    "note_latin1.txt": "txt",
    "note.md": "md",
    "note.html": "html",
    "note.docx": "docx",
    "note.pdf": "pdf",
    "note.odt": "odt",
    "note_docx_named.txt": "docx",
}


@pytest.mark.parametrize(("name", "expected"), sorted(FORMATS.items()))
def test_the_type_is_sniffed_from_the_content(name: str, expected: str) -> None:
    assert sniff((DATA / name).read_bytes()) == expected


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_keeps_accents_non_latin_text_and_speaker_turns(name: str) -> None:
    data = (DATA / name).read_bytes()
    blocks = parse_document(data, sniff(data))
    text = "\n".join(block.text for block in blocks)
    # Windows-1252 has no Polish, Japanese or Greek letters: that file carries the French accents only.
    fragments = (
        ("é", "è", "à", "ç", "œ")
        if name == "note_latin1.txt"
        else ("é", "è", "à", "ç", "œ", "Łódź", "東京", "Ελληνικά")
    )
    for fragment in fragments:
        assert fragment in text, f"{fragment!r} lost in {name}"
    note = chunk_blocks(blocks)
    speakers = {chunk.speaker for chunk in note.chunks if chunk.speaker}
    assert {"Karim", "Sophie"} <= speakers, f"speakers lost in {name}: {speakers}"
    assert any(block.kind == "heading" for block in blocks), f"no heading found in {name}"
    assert any(block.kind == "item" for block in blocks), f"no list item found in {name}"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("empty.txt", EmptyDocument),
        ("blank.txt", EmptyDocument),
        ("image.png", UnsupportedFormat),
        ("random.bin", UnsupportedFormat),
    ],
)
def test_unreadable_content_is_refused_when_sniffed(name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        sniff((DATA / name).read_bytes())


@pytest.mark.parametrize("name", ["corrupt.pdf", "corrupt.docx"])
def test_corrupt_files_are_refused_with_a_clear_error(name: str) -> None:
    data = (DATA / name).read_bytes()
    with pytest.raises(CorruptDocument):
        parse_document(data, sniff(data))


def test_a_decompression_bomb_is_refused_before_it_is_unpacked() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"<w:document/>")
        archive.writestr("word/media/bomb.bin", b"\0" * (50 * 1024 * 1024))
    with pytest.raises(DocumentTooLarge, match="ratio"):
        sniff(buffer.getvalue())


def test_unstructured_never_reaches_for_a_spacy_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """unstructured downloads a spaCy model on first use; our blank pipeline must stay in place across upgrades."""
    from unstructured.nlp import tokenize

    patch_unstructured_offline()
    nlp = tokenize._get_nlp()
    assert nlp.lang == "xx"
    assert nlp.pipe_names == ["sentencizer"]

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("unstructured tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    assert tokenize.sent_tokenize("Première phrase. Deuxième phrase !") == ["Première phrase.", "Deuxième phrase !"]
    data = (DATA / "note.html").read_bytes()
    assert parse_document(data, "html")
