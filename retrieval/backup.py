"""Backups of a data directory taken while the service runs, and their restore into an empty one.

A backup is a folder: ``manifest.json`` (format version, creation time, Alembic revision, row counts,
embedder, SHA-256 of every file), the SQL snapshot and the original files the snapshot references.

- SQLite: ``records.sqlite3``, copied with SQLite's online backup API in a single step, so inside one
  read transaction of the live database (WAL mode: writers go on meanwhile).
- PostgreSQL: ``records/TABLE.jsonl``, every table read inside one REPEATABLE READ transaction.

Vectors are not copied: a restore embeds them again from the chunk text kept in SQL (the lexical index
is rebuilt from SQL by every process anyway). Nothing here opens the live vector store, so a backup never
contends with the service's writer.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, Engine, MetaData, Table, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql import sqltypes

from retrieval.catalog import chunk_meta, index_text
from retrieval.database import MIGRATIONS_DIR, create_database_engine, open_database
from retrieval.embedders import Embedder
from retrieval.errors import RetrievalError, StoreUnavailable
from retrieval.lock import LOCK_FILE, lock_data_dir, open_records_readonly
from retrieval.practice_index import PUBLISHED, PracticeIndex
from retrieval.records import ChunkRecord, NoteRecord, PracticeRecord, QuestionRecord
from retrieval.settings import RetrievalSettings
from retrieval.vectors import VectorStore

FORMAT = "compagnon-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SQLITE_SNAPSHOT = "records.sqlite3"
TABLES_DIR = "records"
ORIGINALS_DIR = "originals"
VERSION_TABLE = "alembic_version"
_EMBED_BATCH = 256
# An original is moved in place just after its note commits: a copy that misses it waits this long for it.
_ORIGINAL_GRACE_SECONDS = 5.0


class BackupCorrupt(RetrievalError):
    """The backup is incomplete, or a file of it does not match its checksum."""

    code = "backup_corrupt"


class BackupUnsupported(RetrievalError):
    """The backup was written by a newer Compagnon (format or database schema this one does not know)."""

    code = "backup_unsupported"


class TargetNotEmpty(RetrievalError):
    """The backup destination, or the data directory or database a restore writes, already holds data."""

    code = "target_not_empty"


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds."""

    path: Path
    schema_revision: str
    counts: dict[str, int]
    originals: int
    originals_missing: tuple[str, ...]
    seconds: float

    def as_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "path": str(self.path),
            "schema_revision": self.schema_revision,
            "counts": self.counts,
            "originals": self.originals,
            "originals_missing": list(self.originals_missing),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class RestoreReport:
    """What a restore wrote."""

    schema_revision: str
    migrated_to: str
    counts: dict[str, int]
    originals: int
    seconds: float

    def as_json(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "schema_revision": self.schema_revision,
            "migrated_to": self.migrated_to,
            "counts": self.counts,
            "originals": self.originals,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class VectorIndexes:
    """The vector collections a restore fills again, each with the embedder and the text it is built from."""

    chunks: VectorStore
    embedder: Embedder
    practices: PracticeIndex
    groups: VectorStore
    group_embedder: Embedder
    group_text: Callable[[str, str], str]
    questions: VectorStore
    question_embedder: Embedder


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest schema revision this code knows."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None
    return head


def _known_revision(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_alembic_config()).get_revision(revision) is not None
    except CommandError:
        return False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _empty(path: Path) -> bool:
    """Absent, or a folder holding nothing but (at most) its write lock."""
    return not path.exists() or (path.is_dir() and all(entry.name == LOCK_FILE for entry in path.iterdir()))


# ----- backup ---------------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def _snapshot_sqlite(engine: Engine, folder: Path) -> tuple[str, dict[str, int], list[tuple[str, str]]]:
    """Copy the live SQLite file in one backup step; read revision, counts and originals from the copy."""
    source_path = make_url(str(engine.url)).database
    if source_path is None or not Path(source_path).is_file():
        raise StoreUnavailable(f"there is no records database at {source_path}")
    target = folder / SQLITE_SNAPSHOT
    with closing(sqlite3.connect(source_path, timeout=30)) as source, closing(sqlite3.connect(target)) as copy:
        source.execute("PRAGMA busy_timeout=30000")
        source.backup(copy, pages=-1)  # one step: the whole copy is read inside one read transaction
        copy.execute("PRAGMA journal_mode=DELETE")
        revision = copy.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
        tables = [
            str(row[0])
            for row in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        ]
        counts = {name: int(copy.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in sorted(tables)}
        originals = [
            (str(note_id), str(path))
            for note_id, path in copy.execute("SELECT id, original_path FROM notes WHERE original_path IS NOT NULL")
        ]
    if revision is None:
        raise BackupCorrupt("the records database has no schema revision")
    return str(revision[0]), counts, originals


def _snapshot_tables(engine: Engine, folder: Path) -> tuple[str, dict[str, int], list[tuple[str, str]]]:
    """Export every table as JSON lines inside one REPEATABLE READ transaction."""
    (folder / TABLES_DIR).mkdir()
    counts: dict[str, int] = {}
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection, connection.begin():
        metadata = MetaData()
        metadata.reflect(bind=connection)
        revision = connection.scalar(text(f"SELECT version_num FROM {VERSION_TABLE}"))
        if revision is None:
            raise BackupCorrupt("the records database has no schema revision")
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows = connection.execution_options(yield_per=1000).execute(select(table).order_by(*order))
            count = 0
            with (folder / TABLES_DIR / f"{table.name}.jsonl").open("w", encoding="utf-8") as out:
                for row in rows.mappings():
                    out.write(json.dumps({k: _encode(v) for k, v in row.items()}, ensure_ascii=False) + "\n")
                    count += 1
            counts[table.name] = count
        notes = metadata.tables["notes"]
        originals = [
            (str(note_id), str(path))
            for note_id, path in connection.execute(
                select(notes.c.id, notes.c.original_path).where(notes.c.original_path.is_not(None))
            )
        ]
    return str(revision), counts, originals


def _copy_originals(originals: Sequence[tuple[str, str]], source: Path, folder: Path) -> tuple[int, list[str]]:
    """Copy the originals the snapshot references; one just committed gets a few seconds to be moved in place."""
    target = folder / ORIGINALS_DIR
    target.mkdir()
    copied = 0
    pending = dict(originals)
    deadline = time.monotonic() + _ORIGINAL_GRACE_SECONDS
    while True:
        for note_id, name in list(pending.items()):
            file = source / name
            if Path(name).name != name or name.startswith("."):
                raise BackupCorrupt(f"note {note_id} names an original outside the originals folder")
            try:
                shutil.copyfile(file, target / name)
            except FileNotFoundError:
                continue
            copied += 1
            del pending[note_id]
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # What is still missing was deleted after the snapshot: its note is restored without its original file.
    return copied, sorted(pending)


def create_backup(settings: RetrievalSettings, destination: Path) -> BackupReport:
    """Write a consistent backup of the records and originals to ``destination`` (absent or empty).

    Takes no lock and writes nothing in the data directory: it runs beside the service.
    """
    started = time.perf_counter()
    if not _empty(destination):
        raise TargetNotEmpty(f"{destination} is not empty; back up into a new folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    engine: Engine = open_records_readonly(settings.resolved_database_url).kw["bind"]
    partial = Path(tempfile.mkdtemp(prefix=f".{destination.name}.partial-", dir=destination.parent))
    try:
        if engine.dialect.name == "sqlite":
            revision, counts, originals = _snapshot_sqlite(engine, partial)
        else:
            revision, counts, originals = _snapshot_tables(engine, partial)
        copied, missing = _copy_originals(originals, settings.originals_dir, partial)
        files = {
            path.relative_to(partial).as_posix(): {"sha256": _sha256(path), "bytes": path.stat().st_size}
            for path in sorted(partial.rglob("*"))
            if path.is_file()
        }
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "database": engine.dialect.name,
            "schema_revision": revision,
            "counts": counts,
            "embedder": settings.embedder,
            "chroma_collection": settings.chroma_collection,
            "originals": copied,
            "originals_missing": missing,
            "files": files,
        }
        # The manifest is written last: a backup without one was interrupted.
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        if destination.exists():
            destination.rmdir()
        partial.replace(destination)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    finally:
        engine.dispose()
    return BackupReport(destination, revision, counts, copied, tuple(missing), time.perf_counter() - started)


# ----- restore --------------------------------------------------------------------------------------


def read_manifest(source: Path) -> dict[str, Any]:
    """The backup's manifest, after checking every file against its checksum."""
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BackupCorrupt(f"{source} has no {MANIFEST}: not a backup, or an interrupted one") from exc
    except (OSError, ValueError) as exc:
        raise BackupCorrupt(f"the manifest of {source} is unreadable: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupCorrupt(f"{source} is not a Compagnon backup")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BackupUnsupported(f"backup format {version!r} is newer than this version reads ({FORMAT_VERSION})")
    revision = manifest.get("schema_revision")
    if not isinstance(revision, str) or not _known_revision(revision):
        raise BackupUnsupported(
            f"the backup's schema revision {revision!r} is unknown here (newest known: {head_revision()}): "
            "restore it with the Compagnon version that wrote it, or a newer one"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BackupCorrupt("the manifest lists no files")
    root = source.resolve()
    for name, expected in sorted(files.items()):
        path = (source / name).resolve()
        if not path.is_relative_to(root) or not isinstance(expected, dict):
            raise BackupCorrupt(f"the manifest names a file outside the backup: {name!r}")
        if not path.is_file():
            raise BackupCorrupt(f"the backup lacks {name}")
        if _sha256(path) != expected.get("sha256"):
            raise BackupCorrupt(f"{name} does not match its checksum: the backup is damaged")
    return manifest


def _target_tables(engine: Engine) -> list[str]:
    return [name for name in inspect(engine).get_table_names() if not name.startswith("sqlite_")]


def _clear_target(settings: RetrievalSettings, engine: Engine) -> None:
    """Forced restore: remove the data directory's content and every table of the target database."""
    if settings.data_dir.exists():
        for entry in settings.data_dir.iterdir():
            if entry.name == LOCK_FILE:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    if engine.dialect.name != "sqlite":
        metadata = MetaData()
        metadata.reflect(bind=engine)
        metadata.drop_all(bind=engine)


def _decoder(column_type: Any) -> Callable[[Any], Any]:
    if isinstance(column_type, sqltypes.JSON):
        return lambda value: value
    if isinstance(column_type, sqltypes.DateTime):
        return lambda value: None if value is None else dt.datetime.fromisoformat(value)
    if isinstance(column_type, sqltypes.Date):
        return lambda value: None if value is None else dt.date.fromisoformat(value)
    if isinstance(column_type, sqltypes.Boolean):
        return lambda value: None if value is None else bool(value)
    if isinstance(column_type, sqltypes.LargeBinary):
        return lambda value: None if value is None else base64.b64decode(value["$base64"])
    return lambda value: value


def _jsonl_rows(source: Path, table: str) -> Iterator[dict[str, Any]]:
    path = source / TABLES_DIR / f"{table}.jsonl"
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the backup's snapshot (its checksum must keep matching)."""
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def _snapshot_rows(snapshot: Connection, tables: dict[str, Table], table: str) -> Iterator[dict[str, Any]]:
    """A snapshot table's rows, typed by SQLAlchemy, encoded as in the JSON-lines export."""
    if table not in tables:
        return
    for row in snapshot.execute(select(tables[table])).mappings():
        yield {key: _encode(value) for key, value in row.items()}


def _import_rows(
    connection: Connection, rows_of: Callable[[str], Iterable[dict[str, Any]]], expected: dict[str, int]
) -> dict[str, int]:
    """Insert every table's rows, parents first; the counts must match the manifest's."""
    metadata = MetaData()
    metadata.reflect(bind=connection)
    counts: dict[str, int] = {}
    for table in metadata.sorted_tables:
        if table.name == VERSION_TABLE:
            continue
        decoders = {column.name: _decoder(column.type) for column in table.columns}
        count = 0
        batch: list[dict[str, Any]] = []
        for row in rows_of(table.name):
            batch.append({name: decoders[name](value) for name, value in row.items() if name in decoders})
            if len(batch) >= 1000:
                connection.execute(table.insert(), batch)
                count += len(batch)
                batch = []
        if batch:
            connection.execute(table.insert(), batch)
            count += len(batch)
        if count != expected.get(table.name, 0):
            raise BackupCorrupt(f"table {table.name}: {count} rows read, the manifest says {expected.get(table.name)}")
        counts[table.name] = count
        _advance_sequences(connection, table)
    return counts


def _advance_sequences(connection: Connection, table: Table) -> None:
    """PostgreSQL: move an integer key's sequence past the ids inserted explicitly."""
    if connection.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        if not isinstance(column.type, sqltypes.Integer):
            continue
        sequence = connection.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name})
        if sequence is not None:
            highest = connection.scalar(select(func.max(column)))
            connection.execute(
                text("SELECT setval(:s, :v, :called)"),
                {"s": sequence, "v": highest or 1, "called": highest is not None},
            )


def _restore_records(source: Path, manifest: dict[str, Any], settings: RetrievalSettings, engine: Engine) -> None:
    revision = manifest["schema_revision"]
    counts = manifest.get("counts", {})
    snapshot_file = source / SQLITE_SNAPSHOT
    if engine.dialect.name == "sqlite" and manifest.get("database") == "sqlite":
        target = make_url(settings.resolved_database_url).database
        assert target is not None
        with closing(_read_only(snapshot_file)) as snapshot, closing(sqlite3.connect(target)) as copy:
            snapshot.backup(copy)
        return
    config = _alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    if manifest.get("database") == "sqlite":
        snapshot_engine = create_engine("sqlite://", creator=lambda: _read_only(snapshot_file))
        try:
            with snapshot_engine.connect() as snapshot, engine.begin() as connection:
                metadata = MetaData()
                metadata.reflect(bind=snapshot)
                _import_rows(connection, lambda table: _snapshot_rows(snapshot, metadata.tables, table), counts)
        finally:
            snapshot_engine.dispose()
    else:
        with engine.begin() as connection:
            _import_rows(connection, lambda table: _jsonl_rows(source, table), counts)


def restore_backup(
    source: Path,
    settings: RetrievalSettings,
    force: bool = False,
    authorize: Callable[[sessionmaker], None] | None = None,  # type: ignore[type-arg]
) -> RestoreReport:
    """Restore the records and originals of a verified backup into an empty target, then migrate to the head.

    The target is the data directory and database the settings name; they must be empty unless ``force``,
    which erases them first. The target's write lock is held meanwhile. ``authorize`` may refuse (raise)
    once the restored records can be read (e.g. the acting account is no admin there). The vectors are
    rebuilt afterwards by ``rebuild_vectors``; a failure leaves the target empty again.
    """
    started = time.perf_counter()
    manifest = read_manifest(source)
    occupied = [str(settings.data_dir)] if not _empty(settings.data_dir) else []
    hold = lock_data_dir(settings.data_dir)
    engine = create_database_engine(settings.resolved_database_url)
    try:
        if engine.dialect.name != "sqlite" and _target_tables(engine):
            occupied.append("the records database")
        if occupied and not force:
            raise TargetNotEmpty(f"{' and '.join(occupied)} already hold data; restore into empty ones (or --force)")
        if occupied:
            _clear_target(settings, engine)
        try:
            _restore_records(source, manifest, settings, engine)
            engine.dispose()
            sessions = open_database(settings.resolved_database_url)
            try:
                if authorize is not None:
                    authorize(sessions)
            finally:
                sessions.kw["bind"].dispose()
            originals = _restore_originals(source, manifest, settings.originals_dir)
        except BaseException:
            engine.dispose()
            _clear_target(settings, engine)
            raise
    finally:
        engine.dispose()
        hold.release()
    return RestoreReport(
        schema_revision=manifest["schema_revision"],
        migrated_to=head_revision(),
        counts=dict(manifest.get("counts", {})),
        originals=originals,
        seconds=time.perf_counter() - started,
    )


def _restore_originals(source: Path, manifest: dict[str, Any], originals_dir: Path) -> int:
    originals_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"{ORIGINALS_DIR}/"
    count = 0
    for name in manifest["files"]:
        if name.startswith(prefix):
            shutil.copyfile(source / name, originals_dir / name.removeprefix(prefix))
            count += 1
    return count


# ----- vectors --------------------------------------------------------------------------------------


def _refill(
    store: VectorStore, items: Iterator[tuple[list[str], list[str], list[dict[str, Any]]]], embed: Embedder
) -> int:
    """Empty a collection, then embed and store every batch; returns how many vectors were stored."""
    stale = sorted(store.all_ids())
    if stale:
        store.delete(stale)
    stored = 0
    for ids, texts, metadatas in items:
        store.upsert(ids, embed.embed_documents(texts), metadatas)
        stored += len(ids)
    return stored


def _batches(
    rows: Iterable[tuple[str, str, dict[str, Any]]],
) -> Iterator[tuple[list[str], list[str], list[dict[str, Any]]]]:
    ids: list[str] = []
    texts: list[str] = []
    metadatas: list[dict[str, Any]] = []
    for row_id, row_text, metadata in rows:
        ids.append(row_id)
        texts.append(row_text)
        metadatas.append(metadata)
        if len(ids) == _EMBED_BATCH:
            yield ids, texts, metadatas
            ids, texts, metadatas = [], [], []
    if ids:
        yield ids, texts, metadatas


def _chunk_rows(session: Session) -> Iterator[tuple[str, str, dict[str, Any]]]:
    notes = {note.id: chunk_meta(note).as_metadata() for note in session.scalars(select(NoteRecord))}
    query = select(ChunkRecord.id, ChunkRecord.note_id, ChunkRecord.text, ChunkRecord.section).order_by(
        ChunkRecord.note_id, ChunkRecord.ordinal
    )
    for chunk_id, note_id, chunk_text, section in session.execute(query):
        yield chunk_id, index_text(chunk_text, section), notes[note_id]


def rebuild_vectors(sessions: sessionmaker, indexes: VectorIndexes) -> dict[str, int]:  # type: ignore[type-arg]
    """Embed every collection again from SQL (chunks, approved entries, draft groups, askers' questions)."""
    with sessions() as session:
        chunks = _refill(indexes.chunks, _batches(_chunk_rows(session)), indexes.embedder)
        practices = session.scalars(select(PracticeRecord).order_by(PracticeRecord.id)).unique().all()
        groups = _refill(
            indexes.groups,
            _batches(
                (
                    record.id,
                    indexes.group_text(record.title, record.practice),
                    {"note_id": record.evidence[0].note_id if record.evidence else ""},
                )
                for record in practices
            ),
            indexes.group_embedder,
        )
        published = [record.id for record in practices if record.status in PUBLISHED]
        questions = _refill(
            indexes.questions,
            _batches(
                (
                    record.id,
                    record.question,
                    {"person_id": record.person_id, "asked_at": int(record.asked_at.strftime("%Y%m%d"))},
                )
                for record in session.scalars(
                    select(QuestionRecord).where(QuestionRecord.person_id.is_not(None)).order_by(QuestionRecord.id)
                )
            ),
            indexes.question_embedder,
        )
    stale = sorted(indexes.practices.store.all_ids())
    if stale:
        indexes.practices.store.delete(stale)
    for start in range(0, len(published), _EMBED_BATCH):
        indexes.practices.update(published[start : start + _EMBED_BATCH], [])
    return {"chunks": chunks, "practices": len(published), "groups": groups, "questions": questions}
