"""One error shape for the whole API: ``{"error_code", "detail"}`` with a status from ``ErrorCode``."""

from __future__ import annotations

from enum import Enum

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from capture.errors import CaptureError
from retrieval.errors import RetrievalError


class ErrorCode(Enum):
    """Stable error codes and the HTTP status each maps to."""

    UNSUPPORTED_FORMAT = ("unsupported_format", 415)
    EMPTY_DOCUMENT = ("empty_document", 422)
    CORRUPT_DOCUMENT = ("corrupt_document", 422)
    DOCUMENT_TOO_LARGE = ("document_too_large", 413)
    INVALID_METADATA = ("invalid_metadata", 422)
    INVALID_REQUEST = ("invalid_request", 422)
    INVALID_QUERY = ("invalid_query", 422)
    PARSE_FAILED = ("parse_failed", 422)
    PARSE_TIMEOUT = ("parse_timeout", 422)
    INVALID_FEEDBACK = ("invalid_feedback", 422)
    NOTE_NOT_FOUND = ("note_not_found", 404)
    UPLOAD_NOT_FOUND = ("upload_not_found", 404)
    PRACTICE_NOT_FOUND = ("practice_not_found", 404)
    PERSON_NOT_FOUND = ("person_not_found", 404)
    QUESTION_NOT_FOUND = ("question_not_found", 404)
    REVIEW_CONFLICT = ("review_conflict", 409)
    EXTERNAL_ID_TAKEN = ("external_id_taken", 409)
    ERASURE_FAILED = ("erasure_failed", 409)
    DATA_DIR_LOCKED = ("data_dir_locked", 409)
    TARGET_NOT_EMPTY = ("target_not_empty", 409)
    BACKUP_CORRUPT = ("backup_corrupt", 422)
    BACKUP_UNSUPPORTED = ("backup_unsupported", 422)
    NOT_FOUND = ("not_found", 404)
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405)
    UNAUTHORIZED = ("unauthorized", 401)
    FORBIDDEN = ("forbidden", 403)
    RATE_LIMITED = ("rate_limited", 429)
    EMBEDDER_UNAVAILABLE = ("embedder_unavailable", 503)
    STORE_UNAVAILABLE = ("store_unavailable", 503)
    BROKER_UNAVAILABLE = ("broker_unavailable", 503)
    PARSER_UNAVAILABLE = ("parser_unavailable", 503)
    PII_DETECTOR_UNAVAILABLE = ("pii_detector_unavailable", 503)
    INTERNAL = ("internal_error", 500)

    @property
    def code(self) -> str:
        """The stable string clients match on."""
        return self.value[0]

    @property
    def status(self) -> int:
        """The HTTP status."""
        return self.value[1]

    @classmethod
    def from_code(cls, code: str) -> ErrorCode:
        """The member for a domain error's code (internal error when unknown)."""
        for member in cls:
            if member.code == code:
                return member
        return cls.INTERNAL


class ApiError(Exception):
    """An error raised by the API layer itself (authentication, permissions)."""

    def __init__(self, error: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


def error_response(error: ErrorCode, detail: str) -> JSONResponse:
    """The JSON response for an error."""
    headers = {"WWW-Authenticate": "Bearer"} if error is ErrorCode.UNAUTHORIZED else None
    return JSONResponse({"error_code": error.code, "detail": detail}, status_code=error.status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors and HTTP errors to the one error shape."""

    async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, CaptureError | RetrievalError)
        return error_response(ErrorCode.from_code(exc.code), exc.detail)

    async def api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.error, exc.detail)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return error_response(ErrorCode.INVALID_REQUEST, problems)

    async def http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        # Any other client error of the framework (a body that is not UTF-8, a broken multipart form: 400) is the
        # request's fault, not the server's.
        fallback = ErrorCode.INVALID_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL
        error = {404: ErrorCode.NOT_FOUND, 405: ErrorCode.METHOD_NOT_ALLOWED}.get(exc.status_code, fallback)
        return error_response(error, str(exc.detail))

    app.add_exception_handler(CaptureError, domain_error)
    app.add_exception_handler(RetrievalError, domain_error)
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
