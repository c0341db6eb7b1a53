"""The ``compagnon`` command line: ingest, import, search, notes, serve, demo.

Commands act on the local data directory with admin rights.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from api.schemas import note_detail_json, note_summary_json, save_result_json
from api.services import Services, build_services
from api.settings import ApiSettings
from capture.errors import CaptureError
from capture.ingestion import NoteMetadata, parse_date, parse_participant
from capture.language import detect_language
from capture.review import PracticeFilters
from capture.settings import CaptureSettings
from retrieval.access import Viewer
from retrieval.errors import RetrievalError
from retrieval.search import SearchFilters
from retrieval.settings import RetrievalSettings


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _services() -> Services:
    return build_services(RetrievalSettings(), CaptureSettings())


def _metadata(args: argparse.Namespace) -> NoteMetadata:
    return NoteMetadata(
        kind=args.kind,
        community=args.community,
        session_date=parse_date(args.date),
        title=args.title,
        participants=tuple(parse_participant(spec) for spec in args.participant),
        visibility=args.visibility,
        language=args.language,
        external_id=args.id,
    )


def cmd_ingest(args: argparse.Namespace) -> int:
    """Ingest files (or stdin with ``-``) with the metadata given on the command line."""
    services = _services()
    metadata = _metadata(args)
    failures = 0
    results: list[dict[str, Any]] = []
    for name in args.files:
        try:
            if name == "-":
                result = services.ingestor.ingest_text(sys.stdin.read(), metadata)
            else:
                path = Path(name)
                result = services.ingestor.ingest_bytes(path.read_bytes(), metadata, filename=path.name)
            results.append({"file": name, **save_result_json(result)})
        except OSError as exc:
            failures += 1
            results.append({"file": name, "error_code": "unreadable_file", "detail": exc.strerror or str(exc)})
        except (CaptureError, RetrievalError) as exc:
            failures += 1
            results.append({"file": name, "error_code": exc.code, "detail": exc.detail})
    drafted = _run_extraction(services)
    if args.json:
        _print_json({"results": results, "extraction_jobs": drafted})
    else:
        for row in results:
            if "error_code" in row:
                print(f"{row['file']}: error {row['error_code']}: {row['detail']}", file=sys.stderr)
            else:
                print(f"{row['file']}: {row['status']} note {row['note_id']} ({row['chunks']} chunks)")
    return 1 if failures else 0


def _run_extraction(services: Services) -> int:
    """Run the extraction jobs the command queued, before the process exits."""
    return services.jobs.drain()


def cmd_import(args: argparse.Namespace) -> int:
    """Bulk-import a JSONL manifest."""
    services = _services()
    report = services.ingestor.import_manifest(Path(args.manifest))
    _run_extraction(services)
    if args.json:
        _print_json(report.as_json())
    else:
        print(f"imported {report.imported}, unchanged {report.unchanged}, failed {len(report.failed)}")
        for failure in report.failed:
            print(f"  {failure.id}: {failure.error_code}: {failure.detail}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_search(args: argparse.Namespace) -> int:
    """Search the notes."""
    services = _services()
    filters = SearchFilters(
        kind=args.kind,
        community=args.community,
        language=args.language,
        date_from=parse_date(args.date_from) if args.date_from else None,
        date_to=parse_date(args.date_to) if args.date_to else None,
    )
    language = detect_language(args.query)
    hits = services.searcher.search(
        args.query, Viewer.administrator(), k=args.k, filters=filters, mode=args.mode, language=language
    )
    practices = services.practice_index.search(args.query, Viewer.administrator(), k=3, language=language)
    if args.json:
        _print_json(
            {
                "query": args.query,
                "hits": [hit.as_json() for hit in hits],
                "practices": [practice.as_json() for practice in practices],
            }
        )
        return 0
    for practice in practices:
        print(f" *  {practice.title}  (approved practice {practice.practice_id})")
        print(f"    {practice.practice[:300]}")
    for rank, hit in enumerate(hits, start=1):
        who = f" — {hit.speaker}" if hit.speaker else ""
        print(f"{rank:2}. [{hit.kind}/{hit.community}] {hit.title}{who}  ({hit.note_id} {hit.start}-{hit.end})")
        print(f"    {hit.text[:300]}")
    if not hits:
        print("no result")
    return 0


def cmd_notes(args: argparse.Namespace) -> int:
    """List, show or delete notes."""
    services = _services()
    viewer = Viewer.administrator()
    if args.notes_command == "list":
        notes = services.knowledge.list_notes(viewer, kind=args.kind, community=args.community, limit=args.limit)
        if args.json:
            _print_json({"notes": [note_summary_json(note) for note in notes]})
        else:
            for note in notes:
                print(
                    f"{note.id}  {note.session_date}  {note.kind:9} {note.community:12} {note.visibility:9} {note.title}"
                )
        return 0
    if args.notes_command == "show":
        detail = services.knowledge.get_note(args.note_id, viewer)
        if args.json:
            _print_json(note_detail_json(detail))
        else:
            summary = detail.summary
            print(
                f"{summary.title}\n{summary.kind} · {summary.community} · {summary.session_date} · {summary.visibility}"
            )
            print(", ".join(f"{p.name} ({p.role})" for p in summary.participants))
            print()
            print(detail.text)
        return 0
    services.delete_note(args.note_id, viewer)
    print(f"deleted {args.note_id}")
    return 0


def cmd_practices(args: argparse.Namespace) -> int:
    """List, show and review best-practice entries."""
    services = _services()
    viewer = Viewer.administrator()
    book = services.practices
    command = args.practices_command
    if command == "list":
        filters = PracticeFilters(status=args.status, community=args.community, tag=args.tag, due=args.due)
        entries = book.list_practices(viewer, filters)
        if args.json:
            _print_json({"practices": [entry.as_json() for entry in entries]})
        else:
            for entry in entries:
                seen = f"{entry.corroboration_notes} notes, {entry.corroboration_people} people"
                print(f"{entry.id}  {entry.status:10} [{entry.community}] {entry.title}  ({seen})")
        return 0
    if command == "history":
        _print_json({"history": [event.as_json() for event in book.history(args.practice_id, viewer)]})
        return 0
    if command == "show":
        entry = book.get(args.practice_id, viewer)
    elif command == "approve":
        entry = book.approve(args.practice_id, viewer)
    elif command == "reject":
        entry = book.reject(args.practice_id, viewer, args.reason)
    elif command == "merge":
        entry = book.merge(args.practice_id, args.sources, viewer)
    elif command == "supersede":
        entry = book.supersede(args.practice_id, args.by, viewer)
    else:
        changes: dict[str, Any] = {}
        for field_name in ("title", "practice", "context", "rationale"):
            if getattr(args, field_name) is not None:
                changes[field_name] = getattr(args, field_name)
        if args.tags is not None:
            changes["tags"] = [tag.strip() for tag in args.tags.split(",") if tag.strip()]
        entry = book.edit(args.practice_id, viewer, changes)
    if getattr(args, "json", False):
        _print_json(entry.as_json())
    else:
        print(f"{entry.id}  {entry.status}  {entry.title}")
        print(f"  {entry.practice}")
        for evidence in entry.evidence:
            print(f"  [{evidence.claim}] «{evidence.quote}» ({evidence.note_id} {evidence.start}-{evidence.end})")
    return 0


def cmd_jobs(args: argparse.Namespace) -> int:
    """Show extraction jobs; ``--run`` runs the pending ones now."""
    services = _services()
    if args.run:
        services.jobs.recover()
        services.jobs.drain()
    jobs = services.jobs.list_jobs(note_id=args.note)
    if args.json:
        _print_json({"jobs": [job.as_json() for job in jobs]})
    else:
        for job in jobs:
            print(f"{job.id}  {job.status:9} note {job.note_id}  drafts {job.drafts}  {job.detail or ''}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the HTTP API."""
    import uvicorn

    from api.app import create_app

    settings = ApiSettings()
    host = args.host or settings.host
    port = args.port or settings.port
    app = create_app(settings, _services())
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0


def demo_manifest() -> Path:
    """The demo corpus's manifest, shipped inside the package."""
    return Path(str(resources.files("api") / "demo" / "manifest.jsonl"))


def cmd_demo(args: argparse.Namespace) -> int:
    """Load the demo corpus (a fictional company's session notes)."""
    services = _services()
    report = services.ingestor.import_manifest(demo_manifest())
    jobs = _run_extraction(services)
    if args.json:
        _print_json(report.as_json())
    else:
        print(
            f"demo corpus: imported {report.imported}, unchanged {report.unchanged}, "
            f"failed {len(report.failed)}; {jobs} extraction jobs run"
        )
        for failure in report.failed:
            print(f"  {failure.id}: {failure.error_code}: {failure.detail}", file=sys.stderr)
    return 1 if report.failed else 0


def _add_metadata_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, help="circle, pair, mentoring or other")
    parser.add_argument("--community", required=True, help="the community the session belongs to")
    parser.add_argument("--date", required=True, help="session date, YYYY-MM-DD")
    parser.add_argument("--title", help="title (default: the first heading, or the file name)")
    parser.add_argument(
        "--participant",
        action="append",
        default=[],
        metavar="NAME:ROLE",
        help="a participant and their role (facilitator, member, pair, mentor, mentee, author); repeatable",
    )
    parser.add_argument("--visibility", help="public, community or private (mentoring defaults to private)")
    parser.add_argument("--language", help="fr, en or mixed (default: detected)")
    parser.add_argument("--id", help="external id: ingesting again with the same id replaces the note")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(prog="compagnon", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="ingest note files (or - for stdin)")
    ingest.add_argument("files", nargs="+")
    _add_metadata_arguments(ingest)
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(handler=cmd_ingest)

    bulk = commands.add_parser("import", help="bulk-import a JSONL manifest")
    bulk.add_argument("manifest")
    bulk.add_argument("--json", action="store_true")
    bulk.set_defaults(handler=cmd_import)

    search = commands.add_parser("search", help="hybrid search over the notes")
    search.add_argument("query")
    search.add_argument("--k", type=int, default=10)
    search.add_argument("--kind")
    search.add_argument("--community")
    search.add_argument("--language")
    search.add_argument("--date-from")
    search.add_argument("--date-to")
    search.add_argument("--mode", choices=("hybrid", "dense", "lexical"), default="hybrid")
    search.add_argument("--json", action="store_true")
    search.set_defaults(handler=cmd_search)

    notes = commands.add_parser("notes", help="list, show or delete notes")
    notes_commands = notes.add_subparsers(dest="notes_command", required=True)
    listing = notes_commands.add_parser("list")
    listing.add_argument("--kind")
    listing.add_argument("--community")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    show = notes_commands.add_parser("show")
    show.add_argument("note_id")
    show.add_argument("--json", action="store_true")
    delete = notes_commands.add_parser("delete")
    delete.add_argument("note_id")
    notes.set_defaults(handler=cmd_notes)

    practices = commands.add_parser("practices", help="list, show and review best-practice entries")
    practices_commands = practices.add_subparsers(dest="practices_command", required=True)
    plist = practices_commands.add_parser("list")
    plist.add_argument("--status", choices=("draft", "approved", "rejected", "merged", "superseded"))
    plist.add_argument("--community")
    plist.add_argument("--tag")
    plist.add_argument("--due", action="store_true", help="only entries due for review")
    plist.add_argument("--json", action="store_true")
    for name in ("show", "approve", "history"):
        sub = practices_commands.add_parser(name)
        sub.add_argument("practice_id")
        sub.add_argument("--json", action="store_true")
    reject = practices_commands.add_parser("reject")
    reject.add_argument("practice_id")
    reject.add_argument("--reason", required=True)
    reject.add_argument("--json", action="store_true")
    merge = practices_commands.add_parser("merge", help="merge SOURCES into PRACTICE_ID")
    merge.add_argument("practice_id")
    merge.add_argument("sources", nargs="+")
    merge.add_argument("--json", action="store_true")
    supersede = practices_commands.add_parser("supersede", help="PRACTICE_ID is replaced by --by")
    supersede.add_argument("practice_id")
    supersede.add_argument("--by", required=True)
    supersede.add_argument("--json", action="store_true")
    edit = practices_commands.add_parser("edit")
    edit.add_argument("practice_id")
    for field_name in ("title", "practice", "context", "rationale"):
        edit.add_argument(f"--{field_name}")
    edit.add_argument("--tags", help="comma-separated")
    edit.add_argument("--json", action="store_true")
    practices.set_defaults(handler=cmd_practices)

    jobs = commands.add_parser("jobs", help="extraction jobs")
    jobs.add_argument("--note")
    jobs.add_argument("--run", action="store_true", help="run the pending jobs now")
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(handler=cmd_jobs)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.set_defaults(handler=cmd_serve)

    demo = commands.add_parser("demo", help="load the demo corpus")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; domain errors print their code and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (CaptureError, RetrievalError) as exc:
        if getattr(args, "json", False):
            _print_json({"error_code": exc.code, "detail": exc.detail})
        else:
            print(f"error {exc.code}: {exc.detail}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
