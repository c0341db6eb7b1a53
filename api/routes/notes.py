"""Notes: upload (a file or pasted text), list, show, delete."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from api.deps import ServicesDep, UploaderDep, ViewerDep
from api.errors import ApiError, ErrorCode
from api.schemas import TextNoteIn, note_detail_json, note_summary_json, save_result_json
from capture.errors import DocumentTooLarge, InvalidMetadata
from capture.ingestion import NoteMetadata, parse_date, parse_participant
from capture.uploads import UploadNotFound, UploadView
from retrieval.notes import Participant

router = APIRouter(prefix="/api/notes", tags=["notes"])

_FORM_FIELDS = ("kind", "community", "date", "title", "visibility", "language", "id")


def _form_metadata(form: FormData) -> NoteMetadata:
    values = {key: form.get(key) for key in _FORM_FIELDS}
    for key, value in values.items():
        if value is not None and not isinstance(value, str):
            raise InvalidMetadata(f"'{key}' must be a plain form field")
    for key in ("kind", "community", "date"):
        if not values[key]:
            raise InvalidMetadata(f"'{key}' is required")
    participants: list[Participant] = []
    raw_participants = form.get("participants")
    if isinstance(raw_participants, str) and raw_participants.strip():
        try:
            participants.extend(Participant(str(p["name"]), str(p["role"])) for p in json.loads(raw_participants))
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidMetadata("participants must be a JSON list of {'name', 'role'} objects") from exc
    for spec in form.getlist("participant"):
        if isinstance(spec, str):
            participants.append(parse_participant(spec))
    return NoteMetadata(
        kind=str(values["kind"]),
        community=str(values["community"]),
        session_date=parse_date(str(values["date"])),
        title=values["title"] or None,  # type: ignore[arg-type]
        participants=tuple(participants),
        visibility=values["visibility"] or None,  # type: ignore[arg-type]
        language=values["language"] or None,  # type: ignore[arg-type]
        external_id=values["id"] or None,  # type: ignore[arg-type]
    )


@router.post(
    "",
    status_code=201,
    summary="Upload a note",
    responses={
        202: {
            "description": "With COMPAGNON_BROKER_URL: stored and queued for the workers; "
            "poll GET /api/notes/uploads/{id} (the Location header)"
        }
    },
    description="A multipart form with a `file` and the metadata fields (`kind`, `community`, `date`, "
    "`title`, `visibility`, `language`, `id`, `participants` as JSON or repeated `participant=Name:role`), "
    "or a JSON body with `text` and the same metadata. The type is sniffed from the content.",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": TextNoteIn.model_json_schema()},
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file", "kind", "community", "date"],
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            **{key: {"type": "string"} for key in _FORM_FIELDS},
                            "participants": {"type": "string"},
                            "participant": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                },
            },
            "required": True,
        }
    },
)
async def upload_note(request: Request, services: ServicesDep, viewer: UploaderDep, response: Response) -> Any:
    """Store a note; answers 201 when created, 200 when unchanged or replaced, 409 when it is not yours to replace.

    With a broker, the checked upload is stored for the workers and the answer is 202 with the upload to follow.
    """
    limit = services.capture.max_upload_bytes
    ingestor = services.ingestor_for(viewer)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.body()
        try:
            note = TextNoteIn.model_validate_json(body)
        except ValidationError as exc:
            raise InvalidMetadata(
                "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            ) from exc
        metadata = NoteMetadata(
            kind=note.kind,
            community=note.community,
            session_date=note.date,
            title=note.title,
            participants=tuple(Participant(p.name, p.role) for p in note.participants),
            visibility=note.visibility,
            language=note.language,
            external_id=note.id,
        )
        if services.tasks is not None:
            queued = await run_in_threadpool(services.tasks.submit_text, note.text, metadata, viewer)
            return _accepted(queued, response)
        result = await run_in_threadpool(ingestor.ingest_text, note.text, metadata)
    elif content_type.startswith("multipart/form-data"):
        async with request.form(max_files=1, max_fields=100, max_part_size=1024 * 1024) as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise InvalidMetadata("the form needs a 'file' field holding the document")
            metadata = _form_metadata(form)
            data = await upload.read(limit + 1)
            if len(data) > limit:
                raise DocumentTooLarge(f"the file is over the limit of {limit} bytes")
            if services.tasks is not None:
                queued = await run_in_threadpool(services.tasks.submit_bytes, data, metadata, upload.filename, viewer)
                return _accepted(queued, response)
            result = await run_in_threadpool(ingestor.ingest_bytes, data, metadata, upload.filename)
    else:
        raise ApiError(ErrorCode.INVALID_REQUEST, "send multipart/form-data with a file, or JSON with a text")
    if result.status != "created":
        response.status_code = 200
    return save_result_json(result)


def _accepted(upload: UploadView, response: Response) -> dict[str, object]:
    response.status_code = 202
    response.headers["Location"] = f"{router.prefix}/uploads/{upload.id}"
    return upload.as_json()


@router.get("/uploads/{upload_id}", summary="Follow an upload queued for the workers")
def show_upload(upload_id: str, services: ServicesDep, viewer: ViewerDep) -> dict[str, object]:
    """An upload answered 202 (with a broker): pending, running, then done with its note, or failed with a code."""
    if services.tasks is None:
        raise UploadNotFound(f"no upload {upload_id!r}: uploads are stored at once when no broker is configured")
    return services.tasks.uploads.view(upload_id, viewer).as_json()


@router.get("", summary="List the notes you may see")
def list_notes(
    services: ServicesDep,
    viewer: ViewerDep,
    kind: str | None = None,
    community: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """Notes visible to the caller, newest session first."""
    notes = services.knowledge.list_notes(viewer, kind=kind, community=community, limit=limit, offset=offset)
    return {"notes": [note_summary_json(note) for note in notes]}


@router.get("/{note_id}", summary="Show a note with its text and chunks")
def show_note(note_id: str, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """One note (by id or external id), if the caller may see it."""
    return note_detail_json(services.knowledge.get_note(note_id, viewer))


@router.delete("/{note_id}", status_code=204, summary="Delete a note everywhere")
def delete_note(note_id: str, services: ServicesDep, viewer: UploaderDep) -> Response:
    """Remove the note's records, vectors, index entries and original file (HR, admins, its facilitators)."""
    note = services.knowledge.get_note(note_id, viewer)
    if not viewer.may_delete_note([p.name for p in note.summary.participants]):
        raise ApiError(ErrorCode.FORBIDDEN, "a facilitator deletes only the notes of sessions they took part in")
    services.delete_note(note_id, viewer)
    return Response(status_code=204)
