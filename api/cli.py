"""The ``compagnon`` command line: ingest, import, search, ask, experts, notes, practices, serve, demo.

Commands act on the local data directory with admin rights, or with an account's rights under ``--as LOGIN``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from api.accounts import Accounts, create_demo_accounts
from api.errors import ApiError, ErrorCode
from api.schemas import note_detail_json, note_summary_json, save_result_json
from api.services import Services, build_services
from api.settings import ApiSettings
from capture.errors import CaptureError
from capture.extraction.duplicates import draft_text
from capture.ingestion import ImportOutcome, NoteMetadata, parse_date, parse_participant
from capture.language import detect_language
from capture.review import PracticeFilters
from capture.settings import CaptureSettings
from retrieval.access import ROLES, Viewer
from retrieval.audit import AuditFilters
from retrieval.backup import RestoreReport, VectorIndexes, create_backup, rebuild_vectors, restore_backup
from retrieval.database import open_database
from retrieval.embedders import Embedder
from retrieval.errors import RetrievalError
from retrieval.kpis import MEASURES, KpiFilters
from retrieval.lock import lock_data_dir, open_records_readonly
from retrieval.search import SearchFilters
from retrieval.settings import RetrievalSettings


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


def _services() -> Services:
    return build_services(RetrievalSettings(), CaptureSettings())


def acting_viewer(args: argparse.Namespace, services: Services) -> Viewer:
    """Who a command acts as: the local administrator, or the account named by ``--as LOGIN``."""
    if args.acting_as is None:
        return Viewer.administrator()
    return Accounts(services.knowledge.sessions).viewer(args.acting_as)


def _require_uploader(viewer: Viewer) -> None:
    if not viewer.may_upload:
        raise ApiError(ErrorCode.FORBIDDEN, "uploading and deleting notes is for facilitators, HR and admins")


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
    viewer = acting_viewer(args, services)
    _require_uploader(viewer)
    ingestor = services.ingestor_for(viewer)
    metadata = _metadata(args)
    failures = 0
    results: list[dict[str, Any]] = []
    for name in args.files:
        try:
            if name == "-":
                result = ingestor.ingest_text(sys.stdin.read(), metadata)
            else:
                path = Path(name)
                result = ingestor.ingest_bytes(path.read_bytes(), metadata, filename=path.name)
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
    viewer = acting_viewer(args, services)
    _require_uploader(viewer)
    on_outcome = _acknowledge if args.progress else None
    report = services.ingestor_for(viewer).import_manifest(Path(args.manifest), on_outcome=on_outcome)
    _run_extraction(services)
    if args.progress:
        _print_json_line(report.as_json())
    elif args.json:
        _print_json(report.as_json())
    else:
        print(f"imported {report.imported}, unchanged {report.unchanged}, failed {len(report.failed)}")
        for failure in report.failed:
            print(f"  {failure.id}: {failure.error_code}: {failure.detail}", file=sys.stderr)
    return 1 if report.failed else 0


def _print_json_line(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False), flush=True)


def _acknowledge(outcome: ImportOutcome) -> None:
    """Tell at once that a manifest line is stored (a crash after this loses nothing it told)."""
    _print_json_line(outcome.as_json())


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check that the records, vectors, originals, lexical index and jobs agree; ``--repair`` fixes them."""
    services = build_services(RetrievalSettings(), CaptureSettings(), reconcile=False)
    if not acting_viewer(args, services).may_manage_accounts:
        raise ApiError(ErrorCode.FORBIDDEN, "checking and repairing the stores is for admins")
    reconciler = services.reconciler()
    found = reconciler.check()
    remaining = found
    if args.repair and not found.consistent:
        reconciler.repair(found)
        remaining = reconciler.check()
    if args.json:
        _print_json({"consistent": remaining.consistent, "found": found.as_json(), "remaining": remaining.as_json()})
        return 0 if remaining.consistent else 1
    print(f"notes {found.notes}, chunks {found.chunks}, vectors {found.vectors} ({found.seconds:.2f} s)")
    for kind, count in found.disagreements().items():
        if count:
            print(f"  {kind}: {count}{'' if args.repair else ' (run with --repair to fix)'}")
    if remaining.consistent:
        print("repaired: the stores agree" if not found.consistent else "the stores agree")
        return 0
    for kind, count in remaining.disagreements().items():
        if count:
            print(f"  still {kind}: {count}", file=sys.stderr)
    return 1


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
    viewer = acting_viewer(args, services)
    hits = services.searcher.search(args.query, viewer, k=args.k, filters=filters, mode=args.mode, language=language)
    practices = services.practice_index.search(args.query, viewer, k=3, language=language)
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


def _print_suggestions(suggestions: dict[str, Any]) -> None:
    for expert in suggestions["experts"]:
        print(f"  expert: {expert['name']} ({expert['score']:.2f})")
        for evidence in expert["evidence"]:
            print(f"      « {evidence['quote'][:200]} » ({evidence['title']}, {evidence['note_id']})")
    for peer in suggestions["peers"]:
        print(f"  peer: {peer['name']}: {peer['reason']}")


def cmd_ask(args: argparse.Namespace) -> int:
    """Ask a question: a cited answer or an honest abstention, then experts and peers."""
    services = _services()
    viewer = acting_viewer(args, services)
    asked = services.answer(args.question, viewer)
    suggestions = services.suggest_after(args.question, asked, viewer).as_json()
    if args.json:
        _print_json({**asked.as_json(), **suggestions})
        return 0
    answer = asked.answer
    print(answer.text)
    for citation in answer.citations:
        print(f"  [{citation.n}] {citation.title} ({citation.note_id} {citation.start}-{citation.end})")
        print(f"      « {citation.quote[:300]} »")
    print(f"  ({answer.engine}; question {asked.question_id})")
    _print_suggestions(suggestions)
    return 0


def cmd_experts(args: argparse.Namespace) -> int:
    """The colleagues who know, with their evidence, and the peers facing the same question."""
    services = _services()
    suggestions = services.suggest(args.question, acting_viewer(args, services), k=args.k).as_json()
    if args.json:
        _print_json(suggestions)
    elif suggestions["experts"] or suggestions["peers"]:
        _print_suggestions(suggestions)
    else:
        print("nobody to suggest")
    return 0


def cmd_people(args: argparse.Namespace) -> int:
    """Opt a person out of (or back into) expert and peer suggestions."""
    services = _services()
    opted_out = args.people_command == "opt-out"
    services.finder.set_opt_out(args.name, opted_out)
    print(f"{args.name}: {'never suggested' if opted_out else 'suggested again'}")
    return 0


def cmd_people_erase(args: argparse.Namespace) -> int:
    """The right to erasure: remove or pseudonymise a person everywhere, and purge the stores' files."""
    services = _services()
    report = services.erase_person(args.name, acting_viewer(args, services)).as_json()
    if args.json:
        _print_json(report)
        return 0
    print(f"erased: now {report['pseudonym']}")
    print(
        f"  {report['notes_rewritten']} notes and {report['entries_rewritten']} entries pseudonymised, "
        f"{report['questions_deleted']} questions and {report['feedback_deleted']} ratings deleted, "
        f"{report['accounts_unlinked']} accounts unlinked"
    )
    if services.retrieval.chroma_url:
        print("  the Chroma server keeps deleted bytes until its operator runs `chroma vacuum`")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """The audit log, newest first: private notes read, entries reviewed, people erased."""
    services = _services()
    filters = AuditFilters(actor=args.actor, action=args.action, target_id=args.target, limit=args.limit)
    entries = services.audit.list_entries(acting_viewer(args, services), filters)
    if args.json:
        _print_json({"entries": [entry.as_json() for entry in entries]})
        return 0
    for entry in entries:
        when = entry.at.isoformat()[:19]
        print(f"{when}  {entry.actor:20}  {entry.action:20}  {entry.target_type} {entry.target_id}")
    return 0


def cmd_questions(args: argparse.Namespace) -> int:
    """Questions asked, newest first; ``--unanswered`` lists the knowledge gaps."""
    services = _services()
    questions = services.asker.list_questions(
        acting_viewer(args, services), answered=False if args.unanswered else None, limit=args.limit
    )
    if args.json:
        _print_json({"questions": [question.as_json() for question in questions]})
        return 0
    for question in questions:
        row = question.as_json()
        mark = "answered" if row["answered"] else "UNANSWERED"
        print(f"{row['asked_at'][:16]}  {mark:10}  {row['question']}")
    return 0


def cmd_feedback(args: argparse.Namespace) -> int:
    """Ratings and comments on answers, newest first."""
    services = _services()
    feedback = services.asker.list_feedback(acting_viewer(args, services), limit=args.limit)
    if args.json:
        _print_json({"feedback": [item.as_json() for item in feedback]})
        return 0
    for item in feedback:
        row = item.as_json()
        print(f"{'+1' if row['rating'] > 0 else '-1'}  {row['question']}  {row['comment']}")
    return 0


def cmd_kpis(args: argparse.Namespace) -> int:
    """The programme's measures over a period: a summary, every measure as JSON, or one measure as CSV."""
    services = _services()
    viewer = acting_viewer(args, services)
    filters = KpiFilters(
        date_from=args.date_from, date_to=args.date_to, community=args.community, kind=args.kind, bucket=args.bucket
    )
    if args.csv:
        sys.stdout.write(services.kpis.table(viewer, filters, args.csv).csv())
        return 0
    report = services.kpis.report(viewer, filters)
    if args.json:
        _print_json(report)
        return 0
    period = report["period"]
    print(f"{period['date_from']} to {period['date_to']}, by {period['bucket']}")
    print("participation (participants / people known in the community):")
    for row in report["participation"]["communities"]:
        print(f"  {row['community']}: {row['participants']} / {row['known']}")
    print("period      sessions  turns  questions  thumbs up  thumbs down")
    for activity, feedback in zip(report["activity"]["rows"], report["feedback"]["rows"], strict=True):
        print(
            f"{activity['label']:10}  {activity['sessions']:8}  {activity['turns']:5}  {activity['questions']:9}"
            f"  {feedback['up']:9}  {feedback['down']:11}"
        )
    current = report["review"]["current"]
    print(f"entries: {current['draft']} drafts, {current['approved']} approved ({current['due_now']} due)")
    print(f"knowledge gaps: {report['gaps']['total']} questions")
    for group in report["gaps"]["groups"]:
        suggested = ", ".join(group["suggested"]) or "nobody"
        print(f"  {group['count']} x {group['topic']} (ask {suggested})")
    return 0


def cmd_notes(args: argparse.Namespace) -> int:
    """List, show or delete notes."""
    services = _services()
    viewer = acting_viewer(args, services)
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
    doomed = services.knowledge.get_note(args.note_id, viewer).summary
    if not viewer.may_delete_note([p.name for p in doomed.participants]):
        raise ApiError(ErrorCode.FORBIDDEN, "a facilitator deletes only the notes of sessions they took part in")
    services.delete_note(args.note_id, viewer)
    print(f"deleted {args.note_id}")
    return 0


def cmd_practices(args: argparse.Namespace) -> int:
    """List, show and review best-practice entries."""
    services = _services()
    viewer = acting_viewer(args, services)
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
    viewer = acting_viewer(args, services)
    if args.run:
        if not viewer.may_upload:
            raise ApiError(ErrorCode.FORBIDDEN, "running the extraction jobs is for facilitators, HR and admins")
        services.jobs.recover()
        services.jobs.drain()
    jobs = services.jobs.list_jobs(viewer, note_id=args.note)
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
    from api.observability import configure_logging

    settings = ApiSettings()
    host = args.host or settings.host
    port = args.port or settings.port
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, _services())
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, log_level=settings.log_level)
    return 0


def _require_admin(viewer: Viewer) -> None:
    if not viewer.may_manage_accounts:
        raise ApiError(ErrorCode.FORBIDDEN, "backup and restore are for admins")


def cmd_backup(args: argparse.Namespace) -> int:
    """Write a consistent backup (records snapshot, originals, manifest); the service may keep running."""
    settings = RetrievalSettings()
    if args.acting_as is not None:
        _require_admin(Accounts(open_records_readonly(settings.resolved_database_url)).viewer(args.acting_as))
    report = create_backup(settings, Path(args.dest))
    if args.json:
        _print_json(report.as_json())
    else:
        print(
            f"backup {report.path}: schema {report.schema_revision}, {report.counts.get('notes', 0)} notes, "
            f"{report.counts.get('chunks', 0)} chunks, {report.originals} originals in {report.seconds:.1f} s"
        )
        for note_id in report.originals_missing:
            print(f"  note {note_id}: its original was deleted after the snapshot", file=sys.stderr)
    return 0


def vector_indexes(services: Services) -> VectorIndexes:
    """The vector collections of the services, with the embedder and text each is built from."""
    return VectorIndexes(
        chunks=services.knowledge.store,
        embedder=services.knowledge.embedder,
        practices=services.practice_index,
        groups=services.practices.group_store,
        group_embedder=services.practices.group_embedder,
        group_text=draft_text,
        questions=services.finder.question_store,
        question_embedder=services.finder.question_embedder,
    )


def restore_into(
    retrieval: RetrievalSettings,
    capture: CaptureSettings,
    source: Path,
    force: bool = False,
    acting_as: str | None = None,
    embedder: Embedder | None = None,
    group_embedder: Embedder | None = None,
) -> tuple[RestoreReport, dict[str, int]]:
    """Restore a backup into the (empty) target of the settings, then embed every vector collection again."""

    def authorize(sessions: Any) -> None:
        if acting_as is not None:
            _require_admin(Accounts(sessions).viewer(acting_as))

    hold = lock_data_dir(retrieval.data_dir)
    try:
        report = restore_backup(source, retrieval, force=force, authorize=authorize)
        services = build_services(retrieval, capture, embedder=embedder, group_embedder=group_embedder)
        try:
            vectors = rebuild_vectors(services.knowledge.sessions, vector_indexes(services))
        finally:
            services.close()
    finally:
        hold.release()
    return report, vectors


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup into an empty data directory and database, then embed the vectors again."""
    report, vectors = restore_into(
        RetrievalSettings(), CaptureSettings(), Path(args.src), force=args.force, acting_as=args.acting_as
    )
    if args.json:
        _print_json({**report.as_json(), "vectors": vectors})
    else:
        print(
            f"restored schema {report.schema_revision} (migrated to {report.migrated_to}): "
            f"{report.counts.get('notes', 0)} notes, {report.originals} originals, "
            f"{vectors['chunks']} chunk vectors embedded again"
        )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Run uploads and extraction jobs from the broker (COMPAGNON_BROKER_URL) until stopped."""
    from api.worker import run_worker

    return run_worker(processes=args.processes, threads=args.threads)


def _at_least_one(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {number}")
    return number


def demo_manifest() -> Path:
    """The demo corpus's manifest, shipped inside the package."""
    return Path(str(resources.files("api") / "demo" / "manifest.jsonl"))


def cmd_demo(args: argparse.Namespace) -> int:
    """Load the demo corpus (a fictional company's session notes)."""
    services = _services()
    report = services.ingestor.import_manifest(demo_manifest())
    jobs = _run_extraction(services)
    accounts = create_demo_accounts(Accounts(services.knowledge.sessions))
    if args.json:
        _print_json({**report.as_json(), "accounts_created": accounts})
    else:
        print(
            f"demo corpus: imported {report.imported}, unchanged {report.unchanged}, "
            f"failed {len(report.failed)}; {jobs} extraction jobs run; demo accounts created: "
            f"{', '.join(accounts) or 'none (they exist)'}"
        )
        for failure in report.failed:
            print(f"  {failure.id}: {failure.error_code}: {failure.detail}", file=sys.stderr)
    return 1 if report.failed else 0


def cmd_users(args: argparse.Namespace) -> int:
    """Create, list and disable accounts, and issue their API tokens."""
    # Accounts need the records only: no embedding model is loaded.
    accounts = Accounts(open_database(RetrievalSettings().resolved_database_url))
    if args.acting_as is not None and not accounts.viewer(args.acting_as).may_manage_accounts:
        raise ApiError(ErrorCode.FORBIDDEN, "managing accounts is for admins")
    command = args.users_command
    if command == "create":
        password = sys.stdin.readline().rstrip("\r\n") if args.password_stdin else None
        user = accounts.create_user(args.login, args.role, password, args.person, args.community)
        print(f"created {user.login} ({user.role}){'' if user.has_password else '; sign in with a token'}")
    elif command == "list":
        users = accounts.list_users()
        if args.json:
            _print_json({"users": [user.as_json() for user in users]})
        else:
            for user in users:
                state = "disabled" if user.disabled else "active"
                print(f"{user.login:20} {user.role:12} {state:9} {user.person or '-'}  {', '.join(user.communities)}")
    elif command == "disable":
        print(f"disabled {accounts.disable(args.login).login}")
    else:
        issued = accounts.issue_token(args.login, args.name)
        print(f"token {issued.id} for {issued.login} (shown once):", file=sys.stderr)
        print(issued.token)
    return 0


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
    parser.add_argument("--as", dest="acting_as", metavar="LOGIN", help="act with that account's rights")
    commands = parser.add_subparsers(dest="command", required=True)

    ingest = commands.add_parser("ingest", help="ingest note files (or - for stdin)")
    ingest.add_argument("files", nargs="+")
    _add_metadata_arguments(ingest)
    ingest.add_argument("--json", action="store_true")
    ingest.set_defaults(handler=cmd_ingest)

    bulk = commands.add_parser("import", help="bulk-import a JSONL manifest")
    bulk.add_argument("manifest")
    bulk.add_argument("--json", action="store_true")
    bulk.add_argument(
        "--progress",
        action="store_true",
        help="JSON Lines: one line per manifest line as soon as it is stored (or failed), then the summary",
    )
    bulk.set_defaults(handler=cmd_import)

    doctor = commands.add_parser("doctor", help="check that the stores agree (exit 1 if not); --repair fixes them")
    doctor.add_argument("--repair", action="store_true", help="fix every disagreement found")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=cmd_doctor)

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

    ask = commands.add_parser("ask", help="ask a question: a cited answer, experts and peers")
    ask.add_argument("question")
    ask.add_argument("--json", action="store_true")
    ask.set_defaults(handler=cmd_ask)

    experts = commands.add_parser("experts", help="the colleagues who know, and peers facing the same question")
    experts.add_argument("question")
    experts.add_argument("--k", type=int, default=5)
    experts.add_argument("--json", action="store_true")
    experts.set_defaults(handler=cmd_experts)

    people = commands.add_parser("people", help="a person's consent to being suggested")
    people_commands = people.add_subparsers(dest="people_command", required=True)
    for name in ("opt-out", "opt-in"):
        people_commands.add_parser(name).add_argument("name")
    people.set_defaults(handler=cmd_people)
    erase = people_commands.add_parser("erase", help="right to erasure: remove or pseudonymise NAME everywhere")
    erase.add_argument("name")
    erase.add_argument("--json", action="store_true")
    erase.set_defaults(handler=cmd_people_erase)

    audit = commands.add_parser("audit", help="the audit log: private notes read, entries reviewed, people erased")
    audit.add_argument("--actor")
    audit.add_argument("--action")
    audit.add_argument("--target", help="a target id (note, entry, pseudonym)")
    audit.add_argument("--limit", type=int, default=100)
    audit.add_argument("--json", action="store_true")
    audit.set_defaults(handler=cmd_audit)

    questions = commands.add_parser("questions", help="questions asked (--unanswered: the knowledge gaps)")
    questions.add_argument("--unanswered", action="store_true")
    questions.add_argument("--limit", type=int, default=100)
    questions.add_argument("--json", action="store_true")
    questions.set_defaults(handler=cmd_questions)

    feedback = commands.add_parser("feedback", help="ratings and comments on answers")
    feedback.add_argument("--limit", type=int, default=100)
    feedback.add_argument("--json", action="store_true")
    feedback.set_defaults(handler=cmd_feedback)

    kpis = commands.add_parser("kpis", help="the programme's measures: participation, activity, feedback, gaps")
    kpis.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (default: a year ago)")
    kpis.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day (default: today)")
    kpis.add_argument("--community")
    kpis.add_argument("--kind", help="circle, pair, mentoring or other")
    kpis.add_argument("--bucket", default="month", help="week or month")
    kpis.add_argument("--csv", metavar="MEASURE", help=f"print one measure as CSV: {', '.join(MEASURES)}")
    kpis.add_argument("--json", action="store_true")
    kpis.set_defaults(handler=cmd_kpis)

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

    worker = commands.add_parser("worker", help="run uploads and extraction jobs from COMPAGNON_BROKER_URL")
    worker.add_argument("--processes", type=_at_least_one, default=1, help="worker processes (default 1)")
    worker.add_argument("--threads", type=_at_least_one, default=2, help="threads per process (default 2)")
    worker.set_defaults(handler=cmd_worker)

    demo = commands.add_parser("demo", help="load the demo corpus")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(handler=cmd_demo)

    users = commands.add_parser("users", help="accounts: create, list, disable, issue API tokens")
    users_commands = users.add_subparsers(dest="users_command", required=True)
    create = users_commands.add_parser("create")
    create.add_argument("login")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--person", help="the participant this account is (their full name in the notes)")
    create.add_argument("--community", action="append", default=[], help="a community they belong to; repeatable")
    create.add_argument("--password-stdin", action="store_true", help="read the password from the first stdin line")
    users_list = users_commands.add_parser("list")
    users_list.add_argument("--json", action="store_true")
    users_commands.add_parser("disable").add_argument("login")
    token = users_commands.add_parser("token", help="print a new API token (shown once)")
    token.add_argument("login")
    token.add_argument("--name", default="")
    users.set_defaults(handler=cmd_users)

    backup = commands.add_parser("backup", help="write a consistent backup while the service runs (admins)")
    backup.add_argument("dest", help="a new (or empty) folder")
    backup.add_argument("--json", action="store_true")
    backup.set_defaults(handler=cmd_backup)

    restore = commands.add_parser("restore", help="restore a backup into an empty data directory (admins)")
    restore.add_argument("src", help="the backup folder")
    restore.add_argument("--force", action="store_true", help="erase the target data directory and database first")
    restore.add_argument("--json", action="store_true")
    restore.set_defaults(handler=cmd_restore)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; domain errors print their code and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except (CaptureError, RetrievalError, ApiError) as exc:
        error_code = exc.error.code if isinstance(exc, ApiError) else exc.code
        if getattr(args, "json", False):
            _print_json({"error_code": error_code, "detail": exc.detail})
        else:
            print(f"error {error_code}: {exc.detail}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
