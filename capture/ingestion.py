"""Ingestion: from an upload (file bytes or pasted text) and its metadata to a stored, searchable note."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from capture.chunking import chunk_blocks
from capture.errors import CaptureError, CorruptDocument, DocumentTooLarge, InvalidMetadata
from capture.language import LANGUAGES, MIXED, detect_note_language
from capture.parsing import normalise_line
from capture.sandbox import ParseSandbox
from capture.settings import CaptureSettings
from retrieval.access import VISIBILITIES
from retrieval.errors import RetrievalError
from retrieval.knowledge import KnowledgeBase
from retrieval.notes import NOTE_KINDS, ROLES, NoteDraft, Participant, SaveResult

DEFAULT_VISIBILITY = {"mentoring": "private", "circle": "community", "pair": "public", "other": "community"}


@dataclass(frozen=True)
class NoteMetadata:
    """What the facilitator says about a session; checked by ``validated``."""

    kind: str
    community: str
    session_date: dt.date
    title: str | None = None
    participants: tuple[Participant, ...] = ()
    visibility: str | None = None
    language: str | None = None
    external_id: str | None = None

    def validated(self) -> NoteMetadata:
        """The metadata with defaults filled in, or ``InvalidMetadata`` saying what is wrong."""
        if self.kind not in NOTE_KINDS:
            raise InvalidMetadata(f"kind must be one of {', '.join(NOTE_KINDS)}, not {self.kind!r}")
        community = self.community.strip()
        if not community or len(community) > 100:
            raise InvalidMetadata("community must be a name of 1 to 100 characters")
        visibility = self.visibility or DEFAULT_VISIBILITY[self.kind]
        if visibility not in VISIBILITIES:
            raise InvalidMetadata(f"visibility must be one of {', '.join(VISIBILITIES)}, not {visibility!r}")
        if self.language is not None and self.language not in (*LANGUAGES, MIXED):
            raise InvalidMetadata(f"language must be fr, en or mixed, not {self.language!r}")
        seen: set[str] = set()
        for participant in self.participants:
            if participant.role not in ROLES:
                raise InvalidMetadata(f"role must be one of {', '.join(ROLES)}, not {participant.role!r}")
            name = participant.name.strip()
            if not name or len(name) > 200:
                raise InvalidMetadata("a participant's name must have 1 to 200 characters")
            if name.casefold() in seen:
                raise InvalidMetadata(f"participant {name!r} is listed twice")
            seen.add(name.casefold())
        if self.title is not None and len(self.title) > 300:
            raise InvalidMetadata("title must have at most 300 characters")
        if self.external_id is not None and not 1 <= len(self.external_id) <= 200:
            raise InvalidMetadata("external id must have 1 to 200 characters")
        return NoteMetadata(
            kind=self.kind,
            community=community,
            session_date=self.session_date,
            title=self.title.strip() if self.title and self.title.strip() else None,
            participants=tuple(Participant(p.name.strip(), p.role) for p in self.participants),
            visibility=visibility,
            language=self.language,
            external_id=self.external_id,
        )


def parse_participant(spec: str) -> Participant:
    """A participant from ``Name:role`` (the CLI's form)."""
    name, separator, role = spec.rpartition(":")
    if not separator or not name.strip():
        raise InvalidMetadata(f"participant {spec!r} must be written Name:role")
    return Participant(name.strip(), role.strip())


def parse_date(value: str) -> dt.date:
    """A session date from ``YYYY-MM-DD``."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidMetadata(f"date must be YYYY-MM-DD, not {value!r}") from exc


@dataclass(frozen=True)
class ImportFailure:
    """A manifest line that could not be imported."""

    id: str | None
    error_code: str
    detail: str


@dataclass(frozen=True)
class ImportOutcome:
    """What became of one manifest line, told as soon as it is durably stored (or has failed)."""

    line: int
    id: str | None
    result: SaveResult | None = None
    failure: ImportFailure | None = None

    def as_json(self) -> dict[str, Any]:
        """The outcome in the shape of an ``import --progress`` line."""
        if self.result is not None:
            return {
                "line": self.line,
                "id": self.id,
                "note_id": self.result.note_id,
                "status": self.result.status,
                "chunks": self.result.chunk_count,
            }
        assert self.failure is not None
        return {
            "line": self.line,
            "id": self.id,
            "status": "failed",
            "error_code": self.failure.error_code,
            "detail": self.failure.detail,
        }


@dataclass
class ImportReport:
    """What a bulk import did."""

    imported: int = 0
    unchanged: int = 0
    failed: list[ImportFailure] = field(default_factory=list)
    note_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report in the shape of ``import --json``."""
        return {
            "imported": self.imported,
            "unchanged": self.unchanged,
            "failed": [{"id": f.id, "error_code": f.error_code, "detail": f.detail} for f in self.failed],
        }


class Ingestor:
    """Sniffs, parses, chunks and stores notes; a bad upload is refused before anything is written.

    Sniffing and parsing run in a ``ParseSandbox`` (its own, unless one is handed over to share): every byte of an
    upload is read there first, and only the parsed blocks come back to be chunked and stored.
    """

    def __init__(
        self,
        knowledge: KnowledgeBase,
        settings: CaptureSettings,
        on_saved: Callable[[SaveResult], None] | None = None,
        sandbox: ParseSandbox | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.settings = settings
        self.on_saved = on_saved
        self._owns_sandbox = sandbox is None
        self.sandbox = sandbox if sandbox is not None else ParseSandbox.from_settings(settings)

    def close(self) -> None:
        """Stop the parsing processes this ingestor started (a sandbox handed over is left to its owner)."""
        if self._owns_sandbox:
            self.sandbox.close()

    def ingest_bytes(self, data: bytes, metadata: NoteMetadata, filename: str | None = None) -> SaveResult:
        """Ingest an uploaded file, whose type is sniffed from its content (the name is only kept for display)."""
        settings = self.settings
        if len(data) > settings.max_upload_bytes:
            raise DocumentTooLarge(f"the file has {len(data)} bytes, over the limit of {settings.max_upload_bytes}")
        metadata = metadata.validated()
        parsed = self.sandbox.parse(data)
        return self._store(parsed.blocks, parsed.source_type, metadata, data, filename)

    def ingest_text(self, text: str, metadata: NoteMetadata) -> SaveResult:
        """Ingest pasted text (read as Markdown, which plain text also is); it is parsed in the sandbox too."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # a lone surrogate, which a JSON body may carry (\ud800)
            raise CorruptDocument(f"the text is not valid Unicode: {exc.reason}") from exc
        if len(data) > self.settings.max_upload_bytes:
            raise DocumentTooLarge(
                f"the text has {len(data)} bytes, over the limit of {self.settings.max_upload_bytes}"
            )
        metadata = metadata.validated()
        parsed = self.sandbox.parse(data, "md")
        return self._store(parsed.blocks, "md", metadata, data, None)

    def _store(
        self,
        blocks: Sequence[Any],
        source_type: str,
        metadata: NoteMetadata,
        original: bytes,
        filename: str | None,
    ) -> SaveResult:
        chunked = chunk_blocks(blocks, metadata.participants, max_chars=self.settings.chunk_max_chars)
        if not chunked.chunks:
            raise InvalidMetadata("the note has no text to index")
        language = metadata.language or detect_note_language([chunk.text for chunk in chunked.chunks])
        title = metadata.title or _default_title(blocks, filename, metadata)
        draft = NoteDraft(
            title=title,
            kind=metadata.kind,
            community=metadata.community,
            session_date=metadata.session_date,
            visibility=metadata.visibility or DEFAULT_VISIBILITY[metadata.kind],
            language=language,
            source_type=source_type,
            text=chunked.text,
            chunks=chunked.chunks,
            participants=metadata.participants,
            external_id=metadata.external_id,
            original=original,
            original_name=_display_name(filename),
        )
        result = self.knowledge.save_note(draft)
        if self.on_saved is not None and result.status != "unchanged":
            self.on_saved(result)
        return result

    def import_manifest(
        self, manifest: Path, on_outcome: Callable[[ImportOutcome], None] | None = None
    ) -> ImportReport:
        """Import every line of a JSONL manifest; a bad line is reported and does not stop the others.

        ``on_outcome`` hears of each line once its note is committed (or it failed): an acknowledgement.
        """
        report = ImportReport()
        base = manifest.parent
        try:
            lines = manifest.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidMetadata(f"cannot read the manifest {manifest}: {exc}") from exc
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            entry_id: str | None = None
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict):
                    raise InvalidMetadata(f"line {number} is not a JSON object")
                entry_id = str(entry["id"]) if entry.get("id") is not None else None
                result = self._import_entry(entry, base)
            except json.JSONDecodeError as exc:
                failure = ImportFailure(entry_id, "invalid_manifest", f"line {number}: {exc}")
            except (CaptureError, RetrievalError) as exc:
                failure = ImportFailure(entry_id, exc.code, f"line {number}: {exc.detail}")
            else:
                report.note_ids.append(result.note_id)
                if result.status == "unchanged":
                    report.unchanged += 1
                else:
                    report.imported += 1
                if on_outcome is not None:
                    on_outcome(ImportOutcome(number, entry_id, result=result))
                continue
            report.failed.append(failure)
            if on_outcome is not None:
                on_outcome(ImportOutcome(number, entry_id, failure=failure))
        return report

    def _import_entry(self, entry: Mapping[str, Any], base: Path) -> SaveResult:
        metadata = metadata_from_mapping(entry)
        if isinstance(entry.get("text"), str):
            return self.ingest_text(entry["text"], metadata)
        path_value = entry.get("path")
        if not isinstance(path_value, str) or not path_value:
            raise InvalidMetadata("a manifest line needs a 'path' or a 'text'")
        path = (base / path_value).resolve()
        if not path.is_relative_to(base.resolve()):
            raise InvalidMetadata(f"path {path_value!r} leaves the manifest's folder")
        try:
            size = path.stat().st_size
            if size > self.settings.max_upload_bytes:
                raise DocumentTooLarge(f"{path_value} has {size} bytes, over the limit")
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidMetadata(f"cannot read {path_value!r}: {exc.strerror}") from exc
        return self.ingest_bytes(data, metadata, filename=path.name)


def metadata_from_mapping(entry: Mapping[str, Any]) -> NoteMetadata:
    """Note metadata from a manifest line or a JSON request body."""
    participants: Iterable[Any] = entry.get("participants") or ()
    try:
        people = tuple(Participant(str(p["name"]), str(p["role"])) for p in participants)
    except (KeyError, TypeError) as exc:
        raise InvalidMetadata("participants must be a list of {'name', 'role'} objects") from exc
    for key in ("kind", "community", "date"):
        if not isinstance(entry.get(key), str):
            raise InvalidMetadata(f"'{key}' is required and must be a string")
    return NoteMetadata(
        kind=entry["kind"],
        community=entry["community"],
        session_date=parse_date(entry["date"]),
        title=entry.get("title"),
        participants=people,
        visibility=entry.get("visibility"),
        language=entry.get("language"),
        external_id=str(entry["id"]) if entry.get("id") is not None else None,
    )


def _display_name(filename: str | None) -> str | None:
    """The last part of an uploaded file's name, for display only: never a path, no control character."""
    if not filename:
        return None
    # Both separators, whatever the client's system; NUL and other controls would be refused by PostgreSQL.
    name = normalise_line(PureWindowsPath(filename).name)[:300]
    return name or None


def _default_title(blocks: Sequence[Any], filename: str | None, metadata: NoteMetadata) -> str:
    for block in blocks:
        if block.kind == "heading":
            return str(block.text)[:300]
    name = _display_name(filename)
    if name and PurePosixPath(name).stem:
        return PurePosixPath(name).stem[:300]
    return f"{metadata.kind} · {metadata.community} · {metadata.session_date.isoformat()}"
