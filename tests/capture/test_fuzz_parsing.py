"""Malformed and hostile files thrown at the full ingestion path: a stored note or a coded refusal, nothing else."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from api.services import Services
from capture.errors import CaptureError, DocumentTooLarge, ParseTimeout
from capture.ingestion import NoteMetadata
from retrieval.access import Viewer
from retrieval.errors import RetrievalError
from retrieval.notes import Participant
from retrieval.records import ChunkRecord, NoteRecord
from tests.conftest import ServicesFactory

DATA = Path(__file__).parents[1] / "data"
SEEDS = {
    name: (DATA / name).read_bytes()
    for name in ("note.txt", "note_latin1.txt", "note.md", "note.html", "note.docx", "note.pdf", "note.odt")
}
ARCHIVES = ("note.docx", "note.odt")
METADATA = NoteMetadata(
    kind="circle",
    community="maintenance",
    session_date=dt.date(2026, 3, 12),
    participants=(Participant("Karim Benali", "facilitator"), Participant("Sophie Martin", "member")),
)


def _error_codes(base: type[Exception]) -> set[str]:
    codes: set[str] = set()
    pending = list(base.__subclasses__())
    while pending:
        error = pending.pop()
        codes.add(error.code)  # type: ignore[attr-defined]
        pending.extend(error.__subclasses__())
    return codes


STABLE_CODES = _error_codes(CaptureError) | _error_codes(RetrievalError)


def _rezip(seed: bytes, entry: str, content: bytes) -> bytes:
    """The archive with one entry's content replaced (a valid zip around a damaged document)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(seed)) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info.filename, content if info.filename == entry else source.read(info.filename))
    return buffer.getvalue()


@st.composite
def hostile_files(draw: st.DrawFn) -> bytes:
    """Random bytes or text, and real notes of every format truncated, flipped, spliced or with a damaged entry."""
    how = draw(st.sampled_from(["random bytes", "random text", "truncated", "flipped", "spliced", "zip entry"]))
    event(f"mutation: {how}")
    if how == "random bytes":
        return draw(st.binary(max_size=4096))
    if how == "random text":
        return draw(st.text(max_size=2000)).encode("utf-8")
    name = draw(st.sampled_from(ARCHIVES if how == "zip entry" else sorted(SEEDS)))
    seed = SEEDS[name]
    if how == "truncated":
        return seed[: draw(st.integers(0, len(seed) - 1))]
    if how == "flipped":
        flips = draw(st.lists(st.tuples(st.integers(0, len(seed) - 1), st.integers(1, 255)), min_size=1, max_size=24))
        mutated = bytearray(seed)
        for position, mask in flips:
            mutated[position] ^= mask
        return bytes(mutated)
    if how == "spliced":
        start = draw(st.integers(0, len(seed)))
        end = draw(st.integers(start, len(seed)))
        return seed[:start] + draw(st.binary(max_size=512)) + seed[end:]
    with zipfile.ZipFile(io.BytesIO(seed)) as archive:
        entries = sorted(archive.namelist())
        entry = draw(st.sampled_from(entries))
        content = archive.read(entry)
    cut = draw(st.integers(0, len(content)))
    damage = draw(st.sampled_from([b"", b"\x00", b"<", b"&undefined;", b"]]>", b"<!DOCTYPE x [<!ENTITY a 'b'>]>"]))
    rest = content[cut:] if draw(st.booleans()) else b""  # the damage inserted, or the entry cut after it
    return _rezip(seed, entry, content[:cut] + damage + rest)


def footprint(services: Services) -> tuple[int, int, int, frozenset[str]]:
    """Notes and chunks in SQL, vectors in Chroma, files in the originals folder."""
    with services.knowledge.sessions() as session:
        notes = session.scalar(select(func.count()).select_from(NoteRecord)) or 0
        chunks = session.scalar(select(func.count()).select_from(ChunkRecord)) or 0
    originals = services.knowledge.originals_dir
    files = frozenset(path.name for path in originals.iterdir()) if originals.exists() else frozenset()
    return notes, chunks, services.knowledge.store.count(), files


@pytest.fixture
def fuzzed(make_services: ServicesFactory) -> Services:
    """One set of real services (SQLite, embedded Chroma, the packaged embedder) for every example."""
    return make_services()


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=hostile_files())
def test_a_hostile_file_is_stored_or_refused_with_a_stable_code_and_a_refusal_writes_nothing(
    fuzzed: Services, data: bytes
) -> None:
    before = footprint(fuzzed)
    try:
        result = fuzzed.ingestor.ingest_bytes(data, METADATA, filename="upload.bin")
    except (CaptureError, RetrievalError) as exc:
        event(f"refused: {exc.code}")
        if exc.code == "parse_failed":
            event(f"parse_failed: {exc.detail}")
        assert exc.code in STABLE_CODES
        assert footprint(fuzzed) == before
        return
    event(f"stored: {result.status}")
    after = footprint(fuzzed)
    assert after[:3] == before[:3] if result.status == "unchanged" else after[0] == before[0] + 1
    assert after[1] == after[2], "SQL chunks and Chroma vectors disagree"
    assert all(not name.startswith(".staged-") for name in after[3])


def test_every_real_note_goes_through_the_path_the_fuzzing_drives(fuzzed: Services) -> None:
    for name, seed in sorted(SEEDS.items()):
        result = fuzzed.ingestor.ingest_bytes(seed, replace(METADATA, external_id=name), filename=name)
        assert result.status == "created", name
    notes, chunks, vectors, files = footprint(fuzzed)
    assert notes == len(SEEDS) and chunks == vectors and len(files) == len(SEEDS)


def test_after_a_parser_is_killed_nothing_is_written_and_the_next_upload_is_stored(
    make_services: ServicesFactory,
) -> None:
    services = make_services(parse_cpu_seconds=1)
    services.ingestor.ingest_bytes(SEEDS["note.md"], replace(METADATA, external_id="first"))
    before = footprint(services)
    body = "".join(f"<p>Paragraphe {i}. Une phrase de plus.</p>" for i in range(40_000))
    with pytest.raises(ParseTimeout):
        services.ingestor.ingest_bytes(f"<html><body>{body}</body></html>".encode(), METADATA, filename="flood.html")
    assert footprint(services) == before
    result = services.ingestor.ingest_bytes(SEEDS["note.docx"], replace(METADATA, external_id="next"))
    assert result.status == "created"
    assert footprint(services)[0] == before[0] + 1


@pytest.mark.parametrize("filename", ["../../etc/passwd", "..\\..\\escape.txt", "/tmp/absolute.txt", "nul\x00byte.txt"])
def test_a_filename_is_never_used_as_a_path(services: Services, tmp_path: Path, filename: str) -> None:
    before = {path for path in tmp_path.rglob("*") if "data" not in path.relative_to(tmp_path).parts}
    result = services.ingestor.ingest_bytes(SEEDS["note.txt"], METADATA, filename=filename)
    after = {path for path in tmp_path.rglob("*") if "data" not in path.relative_to(tmp_path).parts}
    assert after == before
    originals = services.knowledge.originals_dir
    assert [path.name for path in originals.iterdir()] == [f"{result.note_id}.txt"]
    assert originals.resolve().is_relative_to(services.retrieval.data_dir.resolve())
    assert not [path for path in services.retrieval.data_dir.rglob("*") if path.name in ("passwd", "escape.txt")]
    name = services.knowledge.get_note(result.note_id, Viewer.administrator()).original_name
    assert name is not None
    assert "/" not in name and "\\" not in name and "\x00" not in name


def test_an_upload_over_the_size_cap_is_refused_before_it_is_parsed(make_services: ServicesFactory) -> None:
    services = make_services(max_upload_bytes=1000)
    before = footprint(services)
    with pytest.raises(DocumentTooLarge, match="over the limit of 1000"):
        services.ingestor.ingest_bytes(b"Karim : une ligne.\n" * 100, METADATA, filename="big.txt")
    assert footprint(services) == before
    assert services.ingestor.sandbox.worker_pids() == []  # refused without starting a parser


def test_the_type_comes_from_the_content_not_the_name(make_services: ServicesFactory) -> None:
    services = make_services()
    result = services.ingestor.ingest_bytes((DATA / "note_docx_named.txt").read_bytes(), METADATA, filename="a.txt")
    note = services.knowledge.get_note(result.note_id, Viewer.administrator())
    assert note.summary.source_type == "docx"
    assert [path.name for path in services.knowledge.originals_dir.iterdir()] == [f"{result.note_id}.docx"]
