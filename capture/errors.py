"""Errors raised while capturing notes; they know nothing of HTTP.

Exception tree::

    CaptureError
    ├── UnsupportedFormat     the content is not a format we read (sniffed, not guessed from the name)
    ├── EmptyDocument         no text in it
    ├── CorruptDocument       a known format that cannot be read (truncated, encrypted, a decompression bomb)
    ├── DocumentTooLarge      over the configured size or page limits
    ├── InvalidMetadata       the note's metadata (kind, date, roles, visibility, ...) are not acceptable
    ├── ParseTimeout          parsing overran its CPU or wall-clock limit (the parsing process was killed)
    ├── ParseFailed           the parsing process died or ran out of memory on this document
    └── ParserUnavailable     no parsing process could be started (the service's fault, not the document's)
"""

from __future__ import annotations


class CaptureError(Exception):
    """Base class of capture errors; ``code`` is stable and shown to API clients."""

    code = "capture_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnsupportedFormat(CaptureError):
    """The content's type is not one we read."""

    code = "unsupported_format"


class EmptyDocument(CaptureError):
    """The document has no text."""

    code = "empty_document"


class CorruptDocument(CaptureError):
    """A known format that cannot be read."""

    code = "corrupt_document"


class DocumentTooLarge(CaptureError):
    """Over the size, page or uncompressed-size limits."""

    code = "document_too_large"


class InvalidMetadata(CaptureError):
    """The note's metadata are not acceptable."""

    code = "invalid_metadata"


class ParseTimeout(CaptureError):
    """Parsing the document overran its CPU or wall-clock limit."""

    code = "parse_timeout"


class ParseFailed(CaptureError):
    """The parsing process died, crashed or ran out of memory on the document."""

    code = "parse_failed"


class ParserUnavailable(CaptureError):
    """No parsing process could be started or reached."""

    code = "parser_unavailable"
