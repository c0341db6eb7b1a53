"""Best-practice entries: storing drafts with their evidence, grouping duplicates, and the HR review lifecycle.

Life of an entry::

    draft ──approve──> approved ──supersede──> superseded (still readable, points at its successor)
      │                   │
      ├──reject──> rejected (with a reason)
      └──merge──> merged (evidence and contributors moved into the surviving entry)

Every change is kept in the history (who, when, before, after). Only approved entries are published to
search and answers. An approved entry falls due for review when its date passes, when a newer note
refines or contradicts it, or when one of its source notes changes or disappears.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from capture.errors import CaptureError, InvalidMetadata
from capture.extraction.drafts import Evidence, NoteSource, PracticeDraft, locate_quote
from capture.extraction.duplicates import draft_text
from capture.privacy import PiiDetector, PiiFinding, pii_flags, redact
from retrieval.access import AccessScope, Viewer, resolve_scope
from retrieval.catalog import bump_revision
from retrieval.embedders import Embedder
from retrieval.notes import Participant
from retrieval.records import (
    ContributorRecord,
    EvidenceRecord,
    HistoryRecord,
    NoteRecord,
    ParticipationRecord,
    PersonRecord,
    PracticeRecord,
)
from retrieval.sanitising import plain_text
from retrieval.vectors import VectorStore

STATUSES = ("draft", "approved", "rejected", "merged", "superseded")
# Participants who led a session: they see (and, as facilitators, edit) the drafts drawn from it.
LEADING_ROLES = ("facilitator", "mentor")
# Visibilities of the notes whose uploading facilitator sees and edits their drafts, as their leaders do.
_SHARED = ("public", "community")
EDITABLE = ("title", "practice", "steps", "context", "rationale", "pitfalls", "tags")
_CONTRADICTION = re.compile(
    r"\b(ne\s+\w+\s+plus|n'est plus|n’est plus|arr[êe]te[rz]? de|à éviter|no longer|stop(ped)? |don't|do not|never)\b",
    re.I,
)


class PracticeNotFound(CaptureError):
    """No entry with that id visible to the caller."""

    code = "practice_not_found"


class ReviewConflict(CaptureError):
    """The action does not fit the entry's current status."""

    code = "review_conflict"


class ReviewForbidden(CaptureError):
    """The caller may not do this to entries."""

    code = "forbidden"


@dataclass(frozen=True)
class EvidenceView:
    """An evidence span, with the note it comes from."""

    note_id: str
    external_id: str | None
    note_title: str
    claim: str
    quote: str
    start: int
    end: int


@dataclass(frozen=True)
class PracticeView:
    """An entry as shown to reviewers and readers."""

    id: str
    status: str
    title: str
    practice: str
    steps: tuple[str, ...]
    context: str
    rationale: str
    pitfalls: tuple[str, ...]
    tags: tuple[str, ...]
    language: str
    community: str
    kind: str
    extracted_by: str
    prompt_version: str | None
    flags: tuple[str, ...]
    group_id: str | None
    superseded_by: str | None
    merged_into: str | None
    rejection_reason: str | None
    review_due: dt.date | None
    contributors: tuple[Participant, ...]
    evidence: tuple[EvidenceView, ...]
    corroboration_notes: int = 0
    corroboration_people: int = 0
    pii: tuple[PiiFinding, ...] = ()

    def as_json(self) -> dict[str, Any]:
        """The entry in the shape of ``practices list --json`` and ``GET /api/practices``."""
        return {
            "id": self.id,
            "status": self.status,
            "title": self.title,
            "practice": self.practice,
            "steps": list(self.steps),
            "context": self.context,
            "rationale": self.rationale,
            "pitfalls": list(self.pitfalls),
            "tags": list(self.tags),
            "language": self.language,
            "community": self.community,
            "kind": self.kind,
            "contributors": [p.name for p in self.contributors],
            "contributor_roles": [{"name": p.name, "role": p.role} for p in self.contributors],
            "evidence": [
                {
                    "note_id": e.note_id,
                    "external_id": e.external_id,
                    "note_title": e.note_title,
                    "claim": e.claim,
                    "quote": e.quote,
                    "start": e.start,
                    "end": e.end,
                }
                for e in self.evidence
            ],
            "group_id": self.group_id,
            "corroboration": {"notes": self.corroboration_notes, "people": self.corroboration_people},
            "extracted_by": self.extracted_by,
            "prompt_version": self.prompt_version,
            "flags": list(self.flags),
            "superseded_by": self.superseded_by,
            "merged_into": self.merged_into,
            "rejection_reason": self.rejection_reason,
            "review_due": self.review_due.isoformat() if self.review_due else None,
            "pii": [finding.as_json() for finding in self.pii],
        }


@dataclass(frozen=True)
class HistoryEntry:
    """One event of an entry's history."""

    action: str
    actor: str
    at: dt.datetime
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None

    def as_json(self) -> dict[str, Any]:
        """The event as JSON."""
        return {
            "action": self.action,
            "actor": self.actor,
            "at": self.at.isoformat(),
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class PracticeFilters:
    """Restrictions on a listing of entries."""

    status: str | None = None
    community: str | None = None
    kind: str | None = None
    tag: str | None = None
    due: bool = False
    note_id: str | None = None
    group_id: str | None = None


@dataclass
class _Reviewer:
    """Who acts, and what they may do."""

    viewer: Viewer
    scope: AccessScope
    facilitated: set[str] = field(default_factory=set)
    uploaded: set[str] = field(default_factory=set)


def practice_id_for(note_id: str, draft: PracticeDraft) -> str:
    """A draft's id: the same draft of the same note is stored once, however often extraction reruns."""
    anchor = draft.evidence[0] if draft.evidence else Evidence("practice", draft.practice)
    key = "\x1f".join((note_id, draft.extracted_by, draft.practice, str(anchor.start), str(anchor.end)))
    return "p" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:23]


def _log_event(
    session: Session,
    practice_id: str,
    action: str,
    actor: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str | None = None,
) -> None:
    """Append one event to an entry's history, stamped now."""
    session.add(
        HistoryRecord(
            practice_id=practice_id,
            action=action,
            actor=actor,
            at=dt.datetime.now(dt.UTC),
            before=before,
            after=after,
            reason=reason,
        )
    )


def _stored_findings(record: PracticeRecord) -> list[PiiFinding]:
    """The personal data recorded when the entry's text last changed."""
    return [PiiFinding(**finding) for finding in record.pii or ()]


def _snapshot(record: PracticeRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in (*EDITABLE, "status")}


class PracticeBook:
    """Stores drafts, groups near-duplicates, runs the review lifecycle and publishes approved entries."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        group_embedder: Embedder,
        group_store: VectorStore,
        group_threshold: float,
        review_after_days: int = 365,
        on_published: Callable[[Sequence[str], Sequence[str]], None] | None = None,
        today: Callable[[], dt.date] = dt.date.today,
        pii_detector: PiiDetector | None = None,
        pii_redaction: bool = False,
    ) -> None:
        self.sessions = sessions
        self.group_embedder = group_embedder
        self.group_store = group_store
        self.group_threshold = group_threshold
        self.review_after_days = review_after_days
        self.on_published = on_published
        self.today = today
        self.pii_detector = pii_detector
        self.pii_redaction = pii_redaction

    # ----- access -------------------------------------------------------------------------

    def _reviewer(self, session: Session, viewer: Viewer) -> _Reviewer:
        reviewer = _Reviewer(viewer=viewer, scope=resolve_scope(session, viewer))
        if viewer.person_name:
            reviewer.facilitated = set(
                session.scalars(
                    select(ParticipationRecord.note_id)
                    .join(PersonRecord, PersonRecord.id == ParticipationRecord.person_id)
                    .where(PersonRecord.name == viewer.person_name, ParticipationRecord.role.in_(LEADING_ROLES))
                )
            )
        if viewer.role == "facilitator":
            reviewer.uploaded = set(
                session.scalars(
                    select(NoteRecord.id).where(
                        NoteRecord.uploaded_by == viewer.label, NoteRecord.visibility.in_(_SHARED)
                    )
                )
            )
        return reviewer

    @staticmethod
    def _may_read(reviewer: _Reviewer, record: PracticeRecord, notes: dict[str, NoteRecord]) -> bool:
        """Approved entries: readers of every source. Drafts: the session's leader or uploader, HR for shared notes."""
        if reviewer.viewer.sees_everything:
            return True
        sources = [notes[e.note_id] for e in record.evidence if e.note_id in notes]
        published = record.status in {"approved", "superseded"}
        # An entry inherits the most restrictive visibility of its sources; what one uploaded, one has read.
        if not sources or not all(
            reviewer.scope.allows(n.visibility, n.community, n.id) or (not published and n.id in reviewer.uploaded)
            for n in sources
        ):
            return False
        if published:
            return True
        if any(n.id in reviewer.facilitated or n.id in reviewer.uploaded for n in sources):
            return True
        # A draft of a private (mentoring) note quotes what a mentee confided: it stays with the mentor, who
        # may re-share the lesson in a shared note; HR reviews drafts of public and community notes only.
        return reviewer.viewer.may_review and all(n.visibility != "private" for n in sources)

    def _require_reviewer(self, practice_id: str, viewer: Viewer, action: str) -> None:
        """HR acts on the entries it may read; a facilitator may only edit the drafts of notes they led or uploaded."""
        if not (viewer.may_review or (action == "edited" and viewer.role == "facilitator")):
            raise ReviewForbidden("only HR may review best-practice entries")
        with self.sessions() as session:
            record = session.get(PracticeRecord, practice_id)
            reviewer = self._reviewer(session, viewer)
            if record is None or not self._may_read(reviewer, record, self._notes(session, [record])):
                raise PracticeNotFound(f"no best-practice entry {practice_id!r}")
            own = any(e.note_id in reviewer.facilitated | reviewer.uploaded for e in record.evidence)
            if not viewer.may_review and not (record.status == "draft" and own):
                raise ReviewForbidden("a facilitator edits only the drafts of the sessions they led or uploaded")

    # ----- drafts -------------------------------------------------------------------------

    def store_drafts(self, note: NoteSource, drafts: Sequence[PracticeDraft], actor: str) -> list[str]:
        """Store verified drafts of a note (already stored ones are left as they are); returns their ids."""
        ids: list[str] = []
        new: list[tuple[str, PracticeDraft]] = []
        if drafts:
            self._prepare_detector()
        with self.sessions.begin() as session:
            for draft in drafts:
                practice_id = practice_id_for(note.note_id, draft)
                ids.append(practice_id)
                if session.get(PracticeRecord, practice_id) is not None:
                    continue
                session.add(self._record(session, practice_id, note, draft))
                _log_event(
                    session,
                    practice_id,
                    "drafted",
                    actor,
                    None,
                    {"title": draft.title, "extracted_by": draft.extracted_by},
                )
                new.append((practice_id, draft))
            session.flush()
            for practice_id, _ in new:
                self._flag(session, session.get_one(PracticeRecord, practice_id))
            if new:
                self._group(session, new, note)
        return ids

    def _record(self, session: Session, practice_id: str, note: NoteSource, draft: PracticeDraft) -> PracticeRecord:
        fields, changed = _plain_fields(
            {
                "title": draft.title,
                "practice": draft.practice,
                "steps": list(draft.steps),
                "context": draft.context,
                "rationale": draft.rationale,
                "pitfalls": list(draft.pitfalls),
                "tags": list(draft.tags),
            }
        )
        record = PracticeRecord(
            id=practice_id,
            status="draft",
            title=fields["title"][:300],
            practice=fields["practice"],
            steps=fields["steps"],
            context=fields["context"],
            rationale=fields["rationale"],
            pitfalls=fields["pitfalls"],
            tags=fields["tags"],
            language=draft.language,
            community=note.community,
            kind=note.kind,
            extracted_by=draft.extracted_by,
            prompt_version=draft.prompt_version,
            flags=list(dict.fromkeys([*draft.flags, *(f"sanitised:{name}" for name in changed)])),
            group_id=practice_id,
        )
        for position, evidence in enumerate(draft.evidence):
            record.evidence.append(
                EvidenceRecord(
                    note_id=note.note_id,
                    claim=evidence.claim,
                    quote=evidence.quote,
                    start=evidence.start,
                    end=evidence.end,
                    position=position,
                )
            )
        for position, contributor in enumerate(draft.contributors):
            person = session.scalar(select(PersonRecord).where(PersonRecord.name == contributor.name))
            if person is not None:
                record.contributors.append(
                    ContributorRecord(person_id=person.id, role=contributor.role, position=position)
                )
        return record

    def _group(self, session: Session, new: Sequence[tuple[str, PracticeDraft]], note: NoteSource) -> None:
        """Join each new draft to the group of the most similar existing entry above the threshold."""
        texts = [draft_text(draft.title, draft.practice) for _, draft in new]
        vectors = self.group_embedder.embed_documents(texts)
        for (practice_id, draft), vector in zip(new, vectors, strict=True):
            record = session.get(PracticeRecord, practice_id)
            assert record is not None
            neighbours = self.group_store.query(vector, 10) if self.group_store.count() else []
            for hit in neighbours:
                if hit.similarity < self.group_threshold or hit.id == practice_id:
                    continue
                other = session.get(PracticeRecord, hit.id)
                if other is None or other.status in ("rejected", "merged"):
                    continue
                other_notes = {e.note_id for e in other.evidence}
                if other_notes == {note.note_id}:
                    continue  # two drafts of one note are not corroboration
                record.group_id = other.group_id
                if other.status == "approved" and self._newer_than(session, note.note_id, other):
                    self._mark_due(session, other, _refinement(draft.practice), "system")
                break
            self.group_store.upsert([practice_id], np.asarray([vector]), [{"note_id": note.note_id}])

    @staticmethod
    def _newer_than(session: Session, note_id: str, entry: PracticeRecord) -> bool:
        note = session.get(NoteRecord, note_id)
        dates = [session.get(NoteRecord, e.note_id) for e in entry.evidence]
        latest = max((n.session_date for n in dates if n is not None), default=None)
        return note is not None and latest is not None and note.session_date > latest

    def _mark_due(self, session: Session, record: PracticeRecord, reason: str, actor: str) -> None:
        before = {"review_due": record.review_due.isoformat() if record.review_due else None}
        record.review_due = self.today()
        _log_event(session, record.id, "due", actor, before, {"review_due": record.review_due.isoformat()}, reason)

    # ----- reading ------------------------------------------------------------------------

    def list_practices(self, viewer: Viewer, filters: PracticeFilters | None = None) -> list[PracticeView]:
        """Entries the viewer may read, most corroborated and oldest first within a status."""
        filters = filters or PracticeFilters()
        with self.sessions() as session:
            reviewer = self._reviewer(session, viewer)
            query = select(PracticeRecord).options(
                selectinload(PracticeRecord.evidence), selectinload(PracticeRecord.contributors)
            )
            if filters.status:
                query = query.where(PracticeRecord.status == filters.status)
            if filters.community:
                query = query.where(PracticeRecord.community == filters.community)
            if filters.kind:
                query = query.where(PracticeRecord.kind == filters.kind)
            if filters.group_id:
                query = query.where(PracticeRecord.group_id == filters.group_id)
            if filters.due:
                query = query.where(PracticeRecord.review_due <= self.today())
            if filters.note_id:
                query = query.where(
                    PracticeRecord.id.in_(
                        select(EvidenceRecord.practice_id).where(EvidenceRecord.note_id == filters.note_id)
                    )
                )
            records = [r for r in session.scalars(query.order_by(PracticeRecord.created_at, PracticeRecord.id))]
            if filters.tag:
                records = [r for r in records if filters.tag in r.tags]
            notes = self._notes(session, records)
            visible = [r for r in records if self._may_read(reviewer, r, notes)]
            groups = self._group_stats(session, {r.group_id for r in visible if r.group_id})
            views = [self._view(r, notes, groups, _stored_findings(r)) for r in visible]
        views.sort(key=lambda v: -v.corroboration_notes)
        return views

    def get(self, practice_id: str, viewer: Viewer) -> PracticeView:
        """One entry with its evidence, if the viewer may read it."""
        with self.sessions() as session:
            record = self._readable(session, practice_id, viewer)
            notes = self._notes(session, [record])
            groups = self._group_stats(session, {record.group_id} if record.group_id else set())
            return self._view(record, notes, groups, _stored_findings(record))

    def history(self, practice_id: str, viewer: Viewer) -> list[HistoryEntry]:
        """Every event of an entry, oldest first."""
        with self.sessions() as session:
            self._readable(session, practice_id, viewer)
            rows = session.scalars(
                select(HistoryRecord).where(HistoryRecord.practice_id == practice_id).order_by(HistoryRecord.id)
            )
            return [HistoryEntry(r.action, r.actor, r.at, r.before, r.after, r.reason) for r in rows]

    def _readable(self, session: Session, practice_id: str, viewer: Viewer) -> PracticeRecord:
        record = session.get(PracticeRecord, practice_id)
        if record is None or not self._may_read(
            self._reviewer(session, viewer), record, self._notes(session, [record])
        ):
            raise PracticeNotFound(f"no best-practice entry {practice_id!r}")
        return record

    @staticmethod
    def _notes(session: Session, records: Iterable[PracticeRecord]) -> dict[str, NoteRecord]:
        ids = {e.note_id for r in records for e in r.evidence}
        if not ids:
            return {}
        return {n.id: n for n in session.scalars(select(NoteRecord).where(NoteRecord.id.in_(ids)))}

    @staticmethod
    def _group_stats(session: Session, group_ids: set[str | None]) -> dict[str, tuple[int, int]]:
        stats: dict[str, tuple[int, int]] = {}
        ids = {g for g in group_ids if g}
        if not ids:
            return stats
        members = session.scalars(
            select(PracticeRecord)
            .options(selectinload(PracticeRecord.evidence), selectinload(PracticeRecord.contributors))
            .where(PracticeRecord.group_id.in_(ids), PracticeRecord.status.not_in(("rejected",)))
        ).all()
        for group_id in ids:
            group = [m for m in members if m.group_id == group_id]
            notes = {e.note_id for m in group for e in m.evidence}
            people = {c.person_id for m in group for c in m.contributors}
            stats[group_id] = (len(notes), len(people))
        return stats

    @staticmethod
    def _view(
        record: PracticeRecord,
        notes: dict[str, NoteRecord],
        groups: dict[str, tuple[int, int]],
        pii: Sequence[PiiFinding] = (),
    ) -> PracticeView:
        corroboration = groups.get(record.group_id or "", (len({e.note_id for e in record.evidence}), 0))
        return PracticeView(
            id=record.id,
            status=record.status,
            title=record.title,
            practice=record.practice,
            steps=tuple(record.steps or ()),
            context=record.context,
            rationale=record.rationale,
            pitfalls=tuple(record.pitfalls or ()),
            tags=tuple(record.tags or ()),
            language=record.language,
            community=record.community,
            kind=record.kind,
            extracted_by=record.extracted_by,
            prompt_version=record.prompt_version,
            flags=tuple(record.flags or ()),
            group_id=record.group_id,
            superseded_by=record.superseded_by,
            merged_into=record.merged_into,
            rejection_reason=record.rejection_reason,
            review_due=record.review_due,
            contributors=tuple(Participant(c.person.name, c.role) for c in record.contributors),
            evidence=tuple(
                EvidenceView(
                    note_id=e.note_id,
                    external_id=notes[e.note_id].external_id if e.note_id in notes else None,
                    note_title=notes[e.note_id].title if e.note_id in notes else "",
                    claim=e.claim,
                    quote=e.quote,
                    start=e.start,
                    end=e.end,
                )
                for e in record.evidence
            ),
            corroboration_notes=corroboration[0],
            corroboration_people=corroboration[1],
            pii=tuple(pii),
        )

    # ----- personal data ------------------------------------------------------------------

    def _findings(self, session: Session, record: PracticeRecord) -> list[PiiFinding]:
        """Personal data in the entry's text; the participants of its source sessions are expected there."""
        if self.pii_detector is None:
            return []
        note_ids = {e.note_id for e in record.evidence}
        names = {c.person.name for c in record.contributors}
        if note_ids:
            names.update(
                session.scalars(
                    select(PersonRecord.name)
                    .join(ParticipationRecord, ParticipationRecord.person_id == PersonRecord.id)
                    .where(ParticipationRecord.note_id.in_(note_ids))
                )
            )
        return self.pii_detector.scan(_text_fields(record), record.language, sorted(names))

    def _prepare_detector(self) -> None:
        """Load the personal-data detector before a write transaction, which must not wait on it."""
        if self.pii_detector is not None:
            self.pii_detector.prepare()

    def _flag(self, session: Session, record: PracticeRecord) -> None:
        """Replace the entry's ``pii:<entity>`` flags by those of its current text."""
        if self.pii_detector is None:
            return
        findings = self._findings(session, record)
        kept = [f for f in record.flags or () if not f.startswith("pii:")]
        record.flags = kept + pii_flags(findings)
        record.pii = [finding.as_json() for finding in findings]

    def _redact(self, session: Session, record: PracticeRecord, actor: str) -> None:
        """Replace the flagged spans of the entry's text by placeholders, as an event of its history."""
        flagged = [f for f in self._findings(session, record) if f.flagged]
        if not flagged:
            self._flag(session, record)
            return
        before = _snapshot(record)
        for name in ("title", "practice", "context", "rationale"):
            value = redact(getattr(record, name), [f for f in flagged if f.field == name], record.language)
            setattr(record, name, value[:300] if name == "title" else value)
        for name in ("steps", "pitfalls"):
            items = getattr(record, name) or []
            setattr(
                record,
                name,
                [
                    redact(item, [f for f in flagged if f.field == f"{name}[{i}]"], record.language)
                    for i, item in enumerate(items)
                ],
            )
        entities = sorted({f.entity.lower() for f in flagged})
        kept = [f for f in record.flags or () if not f.startswith(("pii:", "pii_redacted:"))]
        record.flags = kept + [f"pii_redacted:{entity}" for entity in entities]
        record.pii = [finding.as_json() for finding in self._findings(session, record)]
        _log_event(
            session, record.id, "redacted", actor, before, _snapshot(record), f"personal data: {', '.join(entities)}"
        )

    # ----- review actions -----------------------------------------------------------------

    def _act(
        self,
        practice_id: str,
        viewer: Viewer,
        action: str,
        allowed: tuple[str, ...],
        change: Callable[[Session, PracticeRecord], None],
        reason: str | None = None,
    ) -> PracticeView:
        self._require_reviewer(practice_id, viewer, action)
        self._prepare_detector()
        published: list[str] = []
        withdrawn: list[str] = []
        with self.sessions.begin() as session:
            record = session.get(PracticeRecord, practice_id)
            if record is None:
                raise PracticeNotFound(f"no best-practice entry {practice_id!r}")
            if record.status not in allowed:
                raise ReviewConflict(f"cannot {action} an entry that is {record.status}")
            was_published = record.status == "approved"
            before = _snapshot(record)
            change(session, record)
            _log_event(session, record.id, action, viewer.label, before, _snapshot(record), reason)
            is_published = record.status == "approved"
            if is_published:
                published.append(record.id)
            elif was_published:
                withdrawn.append(record.id)
            bump_revision(session)
        if self.on_published is not None and (published or withdrawn):
            self.on_published(published, withdrawn)
        return self.get(practice_id, viewer)

    def approve(self, practice_id: str, viewer: Viewer) -> PracticeView:
        """Publish a draft (or confirm a due entry) and set its next review date."""

        def change(session: Session, record: PracticeRecord) -> None:
            if self.pii_redaction:
                self._redact(session, record, viewer.label)
            record.status = "approved"
            record.review_due = self.today() + dt.timedelta(days=self.review_after_days)

        return self._act(practice_id, viewer, "approved", ("draft", "approved"), change)

    def reject(self, practice_id: str, viewer: Viewer, reason: str) -> PracticeView:
        """Reject a draft (or withdraw an approved entry), with a reason."""
        if not reason.strip():
            raise InvalidMetadata("a rejection needs a reason")

        def change(_session: Session, record: PracticeRecord) -> None:
            record.status = "rejected"
            record.rejection_reason = reason.strip()

        return self._act(practice_id, viewer, "rejected", ("draft", "approved"), change, reason)

    def edit(self, practice_id: str, viewer: Viewer, changes: dict[str, Any]) -> PracticeView:
        """Change the text fields of an entry; the history keeps before and after."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise InvalidMetadata(f"cannot edit {', '.join(sorted(unknown))}; editable: {', '.join(EDITABLE)}")
        for name, value in changes.items():
            if name in ("steps", "pitfalls", "tags"):
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InvalidMetadata(f"{name} must be a list of strings")
            elif not isinstance(value, str):
                raise InvalidMetadata(f"{name} must be a string")
        # What a reviewer types is shown to every reader: plain text too (see retrieval.sanitising).
        changes, _ = _plain_fields(changes)
        for name in ("title", "practice"):
            if name in changes and not changes[name]:
                raise InvalidMetadata(f"{name} must be a non-empty string (of plain text)")

        def change(session: Session, record: PracticeRecord) -> None:
            for name, value in changes.items():
                setattr(record, name, value)
            # An approved entry is published again as edited: with redaction on, what is published is redacted.
            if self.pii_redaction and record.status == "approved":
                self._redact(session, record, viewer.label)
            else:
                self._flag(session, record)

        return self._act(practice_id, viewer, "edited", ("draft", "approved"), change)

    def merge(self, target_id: str, source_ids: Sequence[str], viewer: Viewer) -> PracticeView:
        """Merge entries into a target: it keeps the union of evidence and contributors."""
        if not source_ids or target_id in source_ids:
            raise InvalidMetadata("merge needs other entries than the target")
        for source_id in source_ids:
            # Merging moves evidence into the target: the reviewer must be able to read every source entry.
            self._require_reviewer(source_id, viewer, "merged")

        def change(session: Session, target: PracticeRecord) -> None:
            for source_id in source_ids:
                source = session.get(PracticeRecord, source_id)
                if source is None:
                    raise PracticeNotFound(f"no best-practice entry {source_id!r}")
                if source.status not in ("draft", "approved"):
                    raise ReviewConflict(f"cannot merge an entry that is {source.status}")
                spans = {(e.note_id, e.start, e.end, e.claim) for e in target.evidence}
                for evidence in source.evidence:
                    if (evidence.note_id, evidence.start, evidence.end, evidence.claim) not in spans:
                        target.evidence.append(
                            EvidenceRecord(
                                note_id=evidence.note_id,
                                claim=evidence.claim,
                                quote=evidence.quote,
                                start=evidence.start,
                                end=evidence.end,
                                position=len(target.evidence),
                            )
                        )
                people = {c.person_id for c in target.contributors}
                for contributor in source.contributors:
                    if contributor.person_id not in people:
                        target.contributors.append(
                            ContributorRecord(
                                person_id=contributor.person_id,
                                role=contributor.role,
                                position=len(target.contributors),
                            )
                        )
                        people.add(contributor.person_id)
                target.tags = list(dict.fromkeys([*target.tags, *source.tags]))
                before = _snapshot(source)
                source.status = "merged"
                source.merged_into = target.id
                source.group_id = target.group_id
                _log_event(
                    session, source.id, "merged", viewer.label, before, {**_snapshot(source), "merged_into": target.id}
                )

        return self._act(target_id, viewer, "merged", ("draft", "approved"), change, f"merged {', '.join(source_ids)}")

    def supersede(self, old_id: str, new_id: str, viewer: Viewer) -> PracticeView:
        """A newer approved entry replaces an older one, which stays readable as superseded."""
        if old_id == new_id:
            raise InvalidMetadata("an entry cannot supersede itself")
        self._require_reviewer(new_id, viewer, "superseded")
        with self.sessions() as session:
            newer = session.get(PracticeRecord, new_id)
            if newer is None:
                raise PracticeNotFound(f"no best-practice entry {new_id!r}")
            if newer.status != "approved":
                raise ReviewConflict("the newer entry must be approved first")

        def change(_session: Session, record: PracticeRecord) -> None:
            record.status = "superseded"
            record.superseded_by = new_id

        return self._act(old_id, viewer, "superseded", ("approved",), change, f"superseded by {new_id}")

    # ----- sources changing ---------------------------------------------------------------

    def settle_sources(self, note_id: str, note_text: str | None) -> None:
        """After a note changed (text given) or disappeared (None): re-anchor or drop its evidence.

        Drafts left without evidence are deleted; approved entries left with less evidence fall due.
        """
        withdrawn: list[str] = []
        with self.sessions.begin() as session:
            evidence = session.scalars(select(EvidenceRecord).where(EvidenceRecord.note_id == note_id)).all()
            touched: set[str] = set()
            for item in evidence:
                span = locate_quote(note_text, item.quote, item.start) if note_text is not None else None
                if span is None:
                    touched.add(item.practice_id)
                    session.delete(item)
                else:
                    item.start, item.end = span
            session.flush()
            for practice_id in touched:
                record = session.get(PracticeRecord, practice_id)
                if record is None:
                    continue
                session.refresh(record)
                if not record.evidence and record.status == "draft":
                    session.delete(record)
                    self.group_store.delete([practice_id])
                elif record.status == "approved":
                    self._mark_due(session, record, "a source note changed or was deleted", "system")
                    if not record.evidence:
                        record.status = "draft"
                        withdrawn.append(record.id)
            if touched:
                bump_revision(session)
        if self.on_published is not None and withdrawn:
            self.on_published([], withdrawn)

    # ----- erasure ------------------------------------------------------------------------

    def pseudonymise_person(
        self,
        person_id: int,
        pseudonym_id: int,
        rewrite_for: Callable[[set[str]], Callable[[Any], Any]],
        note_texts: dict[str, str],
        actor: str,
    ) -> list[str]:
        """Erasure: credit a person's entries to their pseudonym, and replace their name in entries and history.

        ``rewrite_for(note_ids)`` gives the rewriting of text and JSON values for an entry drawn from those
        notes; ``note_texts`` holds the new texts of the rewritten notes, where evidence is re-anchored.
        Each changed entry gets a ``pseudonymised`` event that names nobody; changed approved entries are
        published again and changed drafts re-embedded for grouping. Returns the ids of the changed entries.
        """
        changed: list[str] = []
        republished: list[str] = []
        with self.sessions.begin() as session:
            records = session.scalars(
                select(PracticeRecord).options(
                    selectinload(PracticeRecord.evidence), selectinload(PracticeRecord.contributors)
                )
            ).all()
            for record in records:
                rewrite = rewrite_for({e.note_id for e in record.evidence})
                fields = []
                for name in (*EDITABLE, "rejection_reason"):
                    value = getattr(record, name)
                    if rewrite(value) != value:
                        setattr(record, name, rewrite(value))
                        fields.append(name)
                for item in list(record.evidence):
                    text = note_texts.get(item.note_id)
                    if text is None:
                        if rewrite(item.quote) != item.quote:
                            item.quote = rewrite(item.quote)
                            fields.append("evidence")
                        continue
                    span = locate_quote(text, rewrite(item.quote), item.start)
                    if span is None:  # the quote no longer occurs: the entry loses that support
                        record.evidence.remove(item)
                    elif (item.quote, item.start, item.end) != (text[span[0] : span[1]], *span):
                        item.quote, (item.start, item.end) = text[span[0] : span[1]], span
                    else:
                        continue
                    fields.append("evidence")
                credited = [c for c in record.contributors if c.person_id == person_id]
                for contributor in credited:
                    if any(c.person_id == pseudonym_id for c in record.contributors):
                        record.contributors.remove(contributor)
                    else:
                        contributor.person_id = pseudonym_id
                for event in session.scalars(select(HistoryRecord).where(HistoryRecord.practice_id == record.id)):
                    event.actor = rewrite(event.actor)
                    event.before, event.after, event.reason = (
                        rewrite(event.before),
                        rewrite(event.after),
                        rewrite(event.reason),
                    )
                if not fields and not credited:
                    continue
                changed.append(record.id)
                if credited:
                    fields.append("contributors")
                _log_event(
                    session,
                    record.id,
                    "pseudonymised",
                    actor,
                    None,
                    {"fields": sorted(set(fields))},
                    "a contributor exercised the right to erasure",
                )
                if record.status == "approved":
                    republished.append(record.id)
            if changed:
                bump_revision(session)
            regroup = {
                r.id: (draft_text(r.title, r.practice), r.evidence[0].note_id if r.evidence else "")
                for r in records
                if r.id in set(changed)
            }
        grouped = self.group_store.get_vectors(sorted(regroup))
        if grouped:
            ids = sorted(grouped)
            vectors = self.group_embedder.embed_documents([regroup[i][0] for i in ids])
            self.group_store.upsert(ids, vectors, [{"note_id": regroup[i][1]} for i in ids])
        if self.on_published is not None and republished:
            self.on_published(republished, [])
        return changed


def _plain_fields(values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Text fields made plain text (list items left empty are dropped), and the names of those that changed."""
    plain: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, list):
            plain[name] = [text for item in value if (text := plain_text(item))]
        else:
            plain[name] = plain_text(value)
    return plain, [name for name in values if plain[name] != values[name]]


def _text_fields(record: PracticeRecord) -> list[tuple[str, str]]:
    """The entry's text, field by field; list items are named ``steps[0]``, ``pitfalls[1]``, ..."""
    fields = [(name, getattr(record, name) or "") for name in ("title", "practice", "context", "rationale")]
    for name in ("steps", "pitfalls"):
        fields.extend((f"{name}[{i}]", item) for i, item in enumerate(getattr(record, name) or []))
    return fields


def _refinement(practice: str) -> str:
    if _CONTRADICTION.search(practice):
        return "a newer note may contradict it"
    return "a newer note refines it"
