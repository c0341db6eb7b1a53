"""Errors raised by the knowledge base; they know nothing of HTTP.

Exception tree::

    RetrievalError
    ├── NoteNotFound            the note id is unknown (or not visible to the viewer)
    ├── ExternalIdTaken         an upload would replace a note its uploader may not replace
    ├── EmbedderUnavailable     the configured embedding model cannot be loaded offline
    ├── StoreUnavailable        the records database or the vector store cannot be reached
    ├── InvalidQuery            a search was asked with unusable parameters
    ├── PersonNotFound          no colleague of that name is known
    ├── QuestionNotFound        the question id is unknown
    ├── InvalidFeedback         a rating other than +1/-1, or a comment too long
    └── Forbidden               the viewer may not do this (e.g. read every question asked)
"""

from __future__ import annotations


class RetrievalError(Exception):
    """Base class of the knowledge base's errors."""

    code = "retrieval_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NoteNotFound(RetrievalError):
    """The note does not exist, or the viewer may not see it."""

    code = "note_not_found"


class ExternalIdTaken(RetrievalError):
    """An upload maps to a stored note (same external id, or same text) that its uploader may not replace."""

    code = "external_id_taken"


class EmbedderUnavailable(RetrievalError):
    """The configured embedding model cannot be loaded (offline, missing package, bad path)."""

    code = "embedder_unavailable"


class StoreUnavailable(RetrievalError):
    """A store (SQL or vectors) failed while reading or writing."""

    code = "store_unavailable"


class InvalidQuery(RetrievalError):
    """A search was asked with unusable parameters."""

    code = "invalid_query"


class PersonNotFound(RetrievalError):
    """No colleague of that name is known."""

    code = "person_not_found"


class QuestionNotFound(RetrievalError):
    """The question id is unknown."""

    code = "question_not_found"


class InvalidFeedback(RetrievalError):
    """Feedback on an answer with a rating other than +1 or -1, or an overlong comment."""

    code = "invalid_feedback"


class Forbidden(RetrievalError):
    """The viewer may not do this (reading every question asked and its feedback is for HR)."""

    code = "forbidden"
