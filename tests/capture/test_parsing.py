"""Sniffing and parsing real files of every accepted format (tests/data, see its SOURCE.md)."""

from __future__ import annotations

import io
import socket
import time
import zipfile
from pathlib import Path

import pytest

from capture.chunking import chunk_blocks
from capture.errors import CorruptDocument, DocumentTooLarge, EmptyDocument, UnsupportedFormat
from capture.parsing import normalise_line, parse_document, patch_unstructured_offline
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


def _odt_with(content_xml: bytes, padding: bytes = b"") -> bytes:
    """note.odt with its content.xml replaced, and optionally a padding entry."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(DATA / "note.odt") as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, content_xml if info.filename == "content.xml" else source.read(info))
        if padding:
            target.writestr("Pictures/padding.bin", padding)
    return buffer.getvalue()


def test_an_odt_bomb_is_refused_by_its_ratio_and_by_its_unpacked_size() -> None:
    bomb = _odt_with(zipfile.ZipFile(DATA / "note.odt").read("content.xml"), padding=b"\0" * (20 * 1024 * 1024))
    with pytest.raises(DocumentTooLarge, match="ratio"):
        sniff(bomb)
    with pytest.raises(DocumentTooLarge, match="unpacks to"):
        sniff(bomb, max_uncompressed=1024 * 1024, max_ratio=10_000)
    docx = (DATA / "note.docx").read_bytes()
    with pytest.raises(DocumentTooLarge, match="unpacks to"):
        parse_document(docx, "docx", max_uncompressed=1000)


def test_a_pdf_over_the_page_limit_is_refused() -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(6):
        writer.add_blank_page(width=200, height=200)
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(DocumentTooLarge, match="6 pages"):
        parse_document(buffer.getvalue(), sniff(buffer.getvalue()), max_pdf_pages=5)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"<office:document-content", "truncated XML"),
        (
            zipfile.ZipFile(DATA / "note.odt")
            .read("content.xml")
            .replace(b"<text:p", b'<text:p><text:s text:c="x"/', 1),
            "bad space count",
        ),
    ],
)
def test_a_damaged_odt_is_a_corrupt_document(content: bytes, why: str) -> None:
    with pytest.raises(CorruptDocument):
        parse_document(_odt_with(content), "odt")


def test_an_odt_entry_with_a_bad_checksum_is_a_corrupt_document() -> None:
    data = bytearray(_odt_with(zipfile.ZipFile(DATA / "note.odt").read("content.xml")))
    archive = zipfile.ZipFile(io.BytesIO(bytes(data)))
    info = archive.getinfo("content.xml")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    with pytest.raises(CorruptDocument):
        parse_document(bytes(data), "odt")


@pytest.mark.parametrize(
    "data",
    [
        b"<!---->" * 3000 + b"<div>",  # exponential with the old comment pattern
        b"[" * 65536,  # quadratic with the old Markdown link sign
        b"<p " * 20000,  # quadratic with the old tag pattern
    ],
)
def test_sniffing_hostile_text_takes_linear_time(data: bytes) -> None:
    started = time.monotonic()
    assert sniff(data) == "txt"
    assert time.monotonic() - started < 0.5


def test_a_long_line_of_brackets_is_parsed_in_linear_time() -> None:
    started = time.monotonic()
    blocks = parse_document(b"[a](" * 200_000, "md")
    assert time.monotonic() - started < 2.0
    assert blocks[0].text.startswith("[a](")


def test_an_archive_with_an_unknown_compression_method_is_a_corrupt_document() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("mimetype", b"application/vnd.oasis.opendocument.text")
    data = bytearray(buffer.getvalue())
    for header, method_offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = data.index(header) + method_offset
        data[start : start + 2] = (99).to_bytes(2, "little")  # zipfile raises NotImplementedError on reading it
    with pytest.raises(CorruptDocument):
        sniff(bytes(data))


def test_lone_surrogates_are_dropped_from_parsed_text() -> None:
    assert normalise_line("Karim\ud800 : on\udfff prépare") == "Karim : on prépare"
