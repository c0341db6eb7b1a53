"""Deciding a document's type from its bytes, never from its name."""

from __future__ import annotations

import io
import re
import zipfile
import zlib

from capture.errors import CorruptDocument, DocumentTooLarge, EmptyDocument, UnsupportedFormat

SOURCE_TYPES = ("txt", "md", "html", "docx", "pdf", "odt")

_BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0": "a legacy Office file (.doc/.xls/.ppt): save it as .docx or PDF",
    b"\x7fELF": "an executable",
    b"\x1f\x8b": "a gzip archive",
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"{\\rtf": "an RTF document: save it as .docx or PDF",
}
# The patterns run on hostile bytes, so none may backtrack badly: a comment's body cannot hold "-->" (with
# ".*?" a run of "<!---->" could be split in 2**n ways), and a tag or link cannot run past the next bracket.
_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--(?:[^-]|-(?!->))*-->\s*)*<(?:!doctype\s+html|html|head|body)\b", re.I
)
_HTML_TAG = re.compile(r"<(p|div|h[1-6]|ul|ol|li|br|table|span|strong|em)\b[^<>]*>", re.I)
_MD_SIGNS = re.compile(r"^#{1,6}\s+\S|^```|\*\*\S[^*]*\*\*|\[[^\[\]\n]+\]\([^()\n]+\)", re.M)
_ODT_MIMETYPE = b"application/vnd.oasis.opendocument.text"


def decode_text(data: bytes) -> str:
    """Decode text bytes: a BOM first, then UTF-8, then Windows-1252 (what old editors write)."""
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError as exc:
                raise CorruptDocument(f"the text claims {encoding} but is not: {exc.reason}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if b"\x00" in sample:
        return True
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    return controls > len(sample) * 0.05


# What zipfile raises on a damaged archive: bad headers or CRC, truncated or invalid deflate data, an unknown
# compression method or zip version.
ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError)


def check_archive(data: bytes, max_uncompressed: int, max_ratio: int) -> zipfile.ZipFile:
    """Open a zip archive after checking it is no decompression bomb."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except ARCHIVE_ERRORS as exc:
        raise CorruptDocument(f"the archive is damaged: {exc}") from exc
    uncompressed = sum(info.file_size for info in infos)
    if uncompressed > max_uncompressed:
        raise DocumentTooLarge(f"the archive unpacks to {uncompressed} bytes, over the limit of {max_uncompressed}")
    if uncompressed > 1_000_000 and uncompressed > max_ratio * max(len(data), 1):
        raise DocumentTooLarge(f"the archive's compression ratio is over {max_ratio}: refused as a decompression bomb")
    return archive


def sniff(data: bytes, max_uncompressed: int = 200 * 1024 * 1024, max_ratio: int = 100) -> str:
    """The source type of a document (one of ``SOURCE_TYPES``), from its content."""
    if not data.strip():
        raise EmptyDocument("the document is empty")
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        with check_archive(data, max_uncompressed, max_ratio) as archive:
            names = set(archive.namelist())
            if "word/document.xml" in names:
                return "docx"
            try:
                mimetype = archive.read("mimetype").strip() if "mimetype" in names else b""
            except ARCHIVE_ERRORS as exc:
                raise CorruptDocument(f"the archive is damaged: {exc}") from exc
        if mimetype == _ODT_MIMETYPE:
            return "odt"
        if mimetype:
            raise UnsupportedFormat(f"an OpenDocument file of type {mimetype.decode(errors='replace')}")
        raise UnsupportedFormat("a zip archive that is neither .docx nor .odt")
    for signature, what in _BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise UnsupportedFormat(f"the file is {what}")
    if not data.startswith((b"\xff\xfe", b"\xfe\xff")) and _looks_binary(data):
        raise UnsupportedFormat("the file is binary data, not a document we read")
    if _HTML_START.match(data[:4096]):
        return "html"
    text = decode_text(data[:65536])
    if len(_HTML_TAG.findall(text)) >= 3:
        return "html"
    if _MD_SIGNS.search(text):
        return "md"
    return "txt"
