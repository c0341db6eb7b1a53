"""The programme's measures (KPIs) for HR: participation, activity, feedback, skills growth, gaps, review.

Measures over a period (``date_from`` to ``date_to``, both included), cut into weeks (Monday first) or months:

- participation: per community and format, the distinct participants of the period's sessions over the people
  known in that community, that is the people seen in its sessions up to ``date_to`` (any format) and the
  people of the accounts made members of it;
- activity: sessions (notes by session date), speaker turns (chunks with a speaker), questions asked, and
  exchanges (turns plus questions);
- feedback: thumbs up and down on answers, the share of thumbs up, and the latest comments;
- skills growth: per person and period, the topics they contributed to (the community of a session they
  took part in, the tags of an approved entry they are credited on) and whether it was new for them;
- knowledge gaps: questions left unanswered or rated down, grouped by meaning (USE cosines, the threshold
  of peer questions), each group labelled by its most central question and the tags of readable approved
  entries its questions name, with example questions and the colleagues the expert finder suggests;
- review throughput: entries drafted, approved and rejected, and approved entries falling due, per period.

Privacy: every figure is computed from what the viewer may read, filtered before anything is counted. A
note the viewer may not read (someone else's mentoring) counts nowhere, not even in a total: a count of
sessions by date, community or format would tell when and where someone was mentored, and narrow filters
turn any total into a single session. An entry counts when the viewer reads all its sources and, unless
it is published, none of them is private (HR reviews drafts of shared notes only). Questions and feedback are not notes:
HR reads them (as ``Asker.list_questions`` does), so they are counted programme-wide, whatever the community
or format filter; their text is the asker's own, and no answer text appears in any measure. Only HR and
admins (and the local administrator) read the measures.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from retrieval.access import AccessScope, Viewer, resolve_scope
from retrieval.embedders import Embedder
from retrieval.errors import Forbidden, InvalidQuery
from retrieval.expert_finder import ExpertFinder, visible_notes
from retrieval.notes import NOTE_KINDS
from retrieval.practice_index import readable_entries
from retrieval.records import (
    ChunkRecord,
    FeedbackRecord,
    HistoryRecord,
    MembershipRecord,
    NoteRecord,
    PersonRecord,
    PracticeRecord,
    QuestionRecord,
    UserRecord,
)

__all__ = ["BUCKETS", "MEASURES", "KpiFilters", "ProgrammeMeasures", "Table"]

BUCKETS = ("week", "month")
MEASURES = ("participation", "activity", "feedback", "comments", "skills", "gaps", "review")
DEFAULT_DAYS = 364
MAX_DAYS = 5 * 366
MAX_COMMENTS = 20
MAX_GAP_GROUPS = 10
MAX_EXAMPLES = 3
MAX_SUGGESTED = 3
REVIEW_ACTIONS = ("drafted", "approved", "rejected")
KNOWN_BASIS = (
    "people seen in the community's sessions you may read, up to date_to and in any format, "
    "and the people of the accounts made members of it"
)
_WORD = re.compile(r"\w+(?:[-'’]\w+)*")


@dataclass(frozen=True)
class KpiFilters:
    """The period and the restrictions of a request for measures, as given (strings from a query or the CLI)."""

    date_from: str | None = None
    date_to: str | None = None
    community: str | None = None
    kind: str | None = None
    bucket: str = "month"

    def resolved(self, today: dt.date) -> _Period:
        """The checked period, or ``InvalidQuery`` saying which filter is wrong."""
        date_to = _date(self.date_to, "date_to") if self.date_to else today
        date_from = _date(self.date_from, "date_from") if self.date_from else date_to - dt.timedelta(DEFAULT_DAYS)
        if date_from > date_to:
            raise InvalidQuery("date_from is after date_to")
        if (date_to - date_from).days > MAX_DAYS:
            raise InvalidQuery(f"the period is longer than {MAX_DAYS} days")
        if self.bucket not in BUCKETS:
            raise InvalidQuery(f"bucket must be one of {', '.join(BUCKETS)}, not {self.bucket!r}")
        if self.kind is not None and self.kind not in NOTE_KINDS:
            raise InvalidQuery(f"kind must be one of {', '.join(NOTE_KINDS)}, not {self.kind!r}")
        community = self.community.strip() if self.community is not None else None
        if community is not None and not 1 <= len(community) <= 100:
            raise InvalidQuery("community must be a name of 1 to 100 characters")
        return _Period(date_from, date_to, self.bucket, community, self.kind)


def _date(value: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidQuery(f"{name} must be a date as YYYY-MM-DD, not {value!r}") from None


@dataclass(frozen=True)
class _Period:
    """A checked period and its filters."""

    date_from: dt.date
    date_to: dt.date
    bucket: str
    community: str | None
    kind: str | None

    def start_of(self, day: dt.date) -> dt.date:
        """The first day of the bucket a day falls in."""
        if self.bucket == "week":
            return day - dt.timedelta(days=day.weekday())
        return day.replace(day=1)

    def buckets(self) -> list[dt.date]:
        """The first day of every bucket the period touches, in order."""
        starts = []
        start = self.start_of(self.date_from)
        while start <= self.date_to:
            starts.append(start)
            start = start + dt.timedelta(days=7) if self.bucket == "week" else _next_month(start)
        return starts

    def label(self, start: dt.date) -> str:
        """A bucket's name: ``2026-03`` or ``2026-W10``."""
        if self.bucket == "week":
            iso = start.isocalendar()
            return f"{iso.year}-W{iso.week:02d}"
        return f"{start.year:04d}-{start.month:02d}"

    def contains(self, day: dt.date) -> bool:
        """Whether a day is in the period."""
        return self.date_from <= day <= self.date_to

    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """The period as a half-open range of UTC instants."""
        start = dt.datetime.combine(self.date_from, dt.time(), tzinfo=dt.UTC)
        return start, dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

    def as_json(self) -> dict[str, Any]:
        """The period and filters as applied."""
        return {
            "date_from": self.date_from.isoformat(),
            "date_to": self.date_to.isoformat(),
            "bucket": self.bucket,
            "community": self.community,
            "kind": self.kind,
        }


def _next_month(start: dt.date) -> dt.date:
    return (start.replace(day=28) + dt.timedelta(days=4)).replace(day=1)


@dataclass(frozen=True)
class Table:
    """One measure as a table: column names and rows of plain values (what a CSV export writes)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str | int | float | None, ...], ...]

    def csv(self) -> str:
        """The table as CSV (RFC 4180), each text cell a spreadsheet would take for a formula made inert."""
        output = io.StringIO()
        writer = csv.writer(output, lineterminator="\r\n")
        writer.writerow(self.columns)
        writer.writerows([_csv_cell(value) for value in row] for row in self.rows)
        return output.getvalue()


# A spreadsheet evaluates a cell starting with one of these as a formula (CSV injection): a quote keeps it text.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: str | int | float | None) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class ProgrammeMeasures:
    """Computes the programme's measures for a viewer over a period, from what that viewer may read."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        finder: ExpertFinder,
        question_embedder: Embedder,
        gap_threshold: float,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> None:
        self.sessions = sessions
        self.finder = finder
        self.question_embedder = question_embedder
        self.gap_threshold = gap_threshold
        self.today = today

    # ----- entry points ------------------------------------------------------------------

    def report(self, viewer: Viewer, filters: KpiFilters) -> dict[str, Any]:
        """Every measure as JSON (the shape of ``GET /api/kpis`` and ``compagnon kpis --json``)."""
        period = self._period(viewer, filters)
        with self.sessions() as session:
            scope = resolve_scope(session, viewer)
            notes = self._notes(session, scope, period)
            report: dict[str, Any] = {
                "period": period.as_json(),
                "communities": self._communities(session, scope),
                "kinds": list(NOTE_KINDS),
                "participation": self._participation(session, scope, period, notes),
                "activity": self._activity(session, period, notes),
                "feedback": self._feedback(session, period),
                "skills": self._skills(session, scope, period),
                "review": self._review(session, viewer, scope, period),
            }
        report["gaps"] = self._gaps(viewer, period)
        return report

    def table(self, viewer: Viewer, filters: KpiFilters, measure: str) -> Table:
        """One measure as a table, computing only that measure."""
        if measure not in MEASURES:
            raise InvalidQuery(f"measure must be one of {', '.join(MEASURES)}, not {measure!r}")
        period = self._period(viewer, filters)
        if measure == "gaps":
            return _gaps_table(self._gaps(viewer, period))
        with self.sessions() as session:
            scope = resolve_scope(session, viewer)
            if measure == "participation":
                return _participation_table(
                    self._participation(session, scope, period, self._notes(session, scope, period))
                )
            if measure == "activity":
                return _rows_table(
                    self._activity(session, period, self._notes(session, scope, period)),
                    ("period", "label", "sessions", "turns", "questions", "exchanges"),
                )
            if measure == "feedback":
                return _rows_table(self._feedback(session, period), ("period", "label", "up", "down", "rate"))
            if measure == "comments":
                comments = self._feedback(session, period)["comments"]
                columns = ("at", "rating", "comment", "question")
                return Table(columns, tuple(tuple(c[name] for name in columns) for c in comments))
            if measure == "skills":
                return _rows_table(
                    self._skills(session, scope, period),
                    ("person", "period", "label", "topic", "source", "contributions", "new"),
                )
            return _rows_table(
                self._review(session, viewer, scope, period),
                ("period", "label", "drafted", "approved", "rejected", "due"),
            )

    def _period(self, viewer: Viewer, filters: KpiFilters) -> _Period:
        if not (viewer.sees_everything or viewer.role in ("hr", "admin")):
            raise Forbidden("the programme's measures are for HR and admins")
        return filters.resolved(self.today())

    # ----- what the viewer may read --------------------------------------------------------

    @staticmethod
    def _notes(session: Session, scope: AccessScope, period: _Period) -> list[NoteRecord]:
        """The period's sessions the viewer may read, within the community and format filters."""
        return _readable_notes(session, scope, period, since=period.date_from)

    @staticmethod
    def _communities(session: Session, scope: AccessScope) -> list[str]:
        """The communities of the notes the viewer may read (what the community filter offers)."""
        rows = session.execute(
            select(NoteRecord.community, NoteRecord.visibility, NoteRecord.id).where(visible_notes(scope))
        )
        return sorted(
            {community for community, visibility, note_id in rows if scope.allows(visibility, community, note_id)}
        )

    # ----- measures ------------------------------------------------------------------------

    def _participation(
        self, session: Session, scope: AccessScope, period: _Period, notes: Sequence[NoteRecord]
    ) -> dict[str, Any]:
        """Distinct participants per community and format over the people known in the community."""
        everything = _Period(period.date_from, period.date_to, period.bucket, period.community, None)
        known: dict[str, set[str]] = defaultdict(set)
        for note in _readable_notes(session, scope, everything, since=None):
            known[note.community].update(p.person.name for p in note.participations)
        members = session.execute(
            select(MembershipRecord.community, PersonRecord.name)
            .join(UserRecord, UserRecord.id == MembershipRecord.user_id)
            .join(PersonRecord, PersonRecord.id == UserRecord.person_id)
            .where(UserRecord.disabled.is_(False))
        )
        readable = set(self._communities(session, scope))
        for community, name in members:
            if community in readable and (period.community is None or community == period.community):
                known[community].add(name)
        by_format: dict[tuple[str, str], set[str]] = defaultdict(set)
        by_community: dict[str, set[str]] = defaultdict(set)
        for note in notes:
            names = {p.person.name for p in note.participations}
            by_format[(note.community, note.kind)].update(names)
            by_community[note.community].update(names)
        rows = [
            {
                "community": community,
                "kind": kind,
                "participants": len(names),
                "known": len(known[community]),
                "rate": _rate(len(names), len(known[community])),
            }
            for (community, kind), names in sorted(by_format.items())
        ]
        communities = [
            {
                "community": community,
                "participants": len(by_community[community]),
                "known": len(people),
                "rate": _rate(len(by_community[community]), len(people)),
            }
            for community, people in sorted(known.items())
        ]
        return {"denominator": KNOWN_BASIS, "rows": rows, "communities": communities}

    def _activity(self, session: Session, period: _Period, notes: Sequence[NoteRecord]) -> dict[str, Any]:
        """Sessions, speaker turns, questions and exchanges per bucket."""
        sessions: Counter[dt.date] = Counter(period.start_of(note.session_date) for note in notes)
        dates = {note.id: note.session_date for note in notes}
        turns: Counter[dt.date] = Counter()
        if dates:
            spoken = session.scalars(
                select(ChunkRecord.note_id).where(ChunkRecord.note_id.in_(dates), ChunkRecord.speaker.is_not(None))
            )
            turns.update(period.start_of(dates[note_id]) for note_id in spoken)
        start, end = period.bounds()
        asked = session.scalars(
            select(QuestionRecord.asked_at).where(QuestionRecord.asked_at >= start, QuestionRecord.asked_at < end)
        )
        questions: Counter[dt.date] = Counter(period.start_of(_aware(moment).date()) for moment in asked)
        rows = [
            {
                "period": bucket.isoformat(),
                "label": period.label(bucket),
                "sessions": sessions[bucket],
                "turns": turns[bucket],
                "questions": questions[bucket],
                "exchanges": turns[bucket] + questions[bucket],
            }
            for bucket in period.buckets()
        ]
        return {"filters": ["date", "community", "kind"], "question_filters": ["date"], "rows": rows}

    def _feedback(self, session: Session, period: _Period) -> dict[str, Any]:
        """Thumbs up and down per bucket, their share, and the latest comments (the raters' own words)."""
        start, end = period.bounds()
        rated = session.execute(
            select(FeedbackRecord, QuestionRecord.question)
            .join(QuestionRecord, QuestionRecord.id == FeedbackRecord.question_id)
            .where(FeedbackRecord.at >= start, FeedbackRecord.at < end)
            .order_by(FeedbackRecord.at.desc(), FeedbackRecord.id.desc())
        ).all()
        up: Counter[dt.date] = Counter()
        down: Counter[dt.date] = Counter()
        comments: list[dict[str, Any]] = []
        for record, question in rated:
            bucket = period.start_of(_aware(record.at).date())
            (up if record.rating > 0 else down)[bucket] += 1
            if record.comment and len(comments) < MAX_COMMENTS:
                comments.append(
                    {
                        "at": _aware(record.at).isoformat(),
                        "rating": record.rating,
                        "comment": record.comment,
                        "question": question,
                    }
                )
        rows = [
            {
                "period": bucket.isoformat(),
                "label": period.label(bucket),
                "up": up[bucket],
                "down": down[bucket],
                "rate": _rate(up[bucket], up[bucket] + down[bucket]),
            }
            for bucket in period.buckets()
        ]
        total_up, total_down = sum(up.values()), sum(down.values())
        return {
            "filters": ["date"],
            "rows": rows,
            "totals": {"up": total_up, "down": total_down, "rate": _rate(total_up, total_up + total_down)},
            "comments": comments,
        }

    def _skills(self, session: Session, scope: AccessScope, period: _Period) -> dict[str, Any]:
        """Per person and bucket, the topics they contributed to, and which were new to them."""
        contributions: list[tuple[str, dt.date, str, str]] = []
        for note in _readable_notes(session, scope, period, since=None):
            contributions.extend(
                (p.person.name, note.session_date, note.community, "community") for p in note.participations
            )
        entries = [
            entry
            for entry in readable_entries(session, scope)
            if (period.community is None or entry.community == period.community)
            and (period.kind is None or entry.kind == period.kind)
        ]
        dates = _note_dates(session, {e.note_id for entry in entries for e in entry.evidence})
        for entry in entries:
            day = max(dates[e.note_id] for e in entry.evidence)
            if day > period.date_to:
                continue
            for contributor in entry.contributors:
                contributions.extend((contributor.person.name, day, tag, "tag") for tag in dict.fromkeys(entry.tags))
        first: dict[tuple[str, str, str], dt.date] = {}
        counts: Counter[tuple[str, dt.date, str, str]] = Counter()
        for person, day, topic, source in contributions:
            key = (person, topic, source)
            first[key] = min(first.get(key, day), day)
            if period.contains(day):
                counts[(person, period.start_of(day), topic, source)] += 1
        rows = [
            {
                "person": person,
                "period": bucket.isoformat(),
                "label": period.label(bucket),
                "topic": topic,
                "source": source,
                "contributions": count,
                "new": period.start_of(first[(person, topic, source)]) == bucket,
            }
            for (person, bucket, topic, source), count in sorted(counts.items())
        ]
        people: dict[str, dict[str, set[str]]] = defaultdict(lambda: {"topics": set(), "new": set()})
        for (person, bucket, topic, source), _ in counts.items():
            people[person]["topics"].add(f"{source}:{topic}")
            if period.start_of(first[(person, topic, source)]) == bucket:
                people[person]["new"].add(f"{source}:{topic}")
        summary = [
            {"person": person, "topics": len(sets["topics"]), "new_topics": len(sets["new"])}
            for person, sets in sorted(people.items(), key=lambda item: (-len(item[1]["new"]), item[0]))
        ]
        return {"filters": ["date", "community", "kind"], "rows": rows, "people": summary}

    def _review(self, session: Session, viewer: Viewer, scope: AccessScope, period: _Period) -> dict[str, Any]:
        """Entries drafted, approved and rejected per bucket, approved entries falling due, and current counts."""
        entries = {entry.id: entry for entry in _reviewable(session, viewer, scope, period)}
        start, end = period.bounds()
        events: dict[str, Counter[dt.date]] = {action: Counter() for action in REVIEW_ACTIONS}
        if entries:
            history = session.execute(
                select(HistoryRecord.action, HistoryRecord.at).where(
                    HistoryRecord.practice_id.in_(entries),
                    HistoryRecord.action.in_(REVIEW_ACTIONS),
                    HistoryRecord.at >= start,
                    HistoryRecord.at < end,
                )
            )
            for action, at in history:
                events[action][period.start_of(_aware(at).date())] += 1
        due: Counter[dt.date] = Counter(
            period.start_of(entry.review_due)
            for entry in entries.values()
            if entry.status == "approved" and entry.review_due is not None and period.contains(entry.review_due)
        )
        rows = [
            {
                "period": bucket.isoformat(),
                "label": period.label(bucket),
                **{action: events[action][bucket] for action in REVIEW_ACTIONS},
                "due": due[bucket],
            }
            for bucket in period.buckets()
        ]
        statuses = Counter(entry.status for entry in entries.values())
        today = self.today()
        current = {
            "draft": statuses["draft"],
            "approved": statuses["approved"],
            "rejected": statuses["rejected"],
            "due_now": sum(
                1
                for entry in entries.values()
                if entry.status == "approved" and entry.review_due is not None and entry.review_due <= today
            ),
        }
        return {"filters": ["date", "community", "kind"], "rows": rows, "current": current}

    def _gaps(self, viewer: Viewer, period: _Period) -> dict[str, Any]:
        """Unanswered and down-rated questions grouped by meaning, with examples and suggested colleagues."""
        start, end = period.bounds()
        with self.sessions() as session:
            questions = session.scalars(
                select(QuestionRecord)
                .options(selectinload(QuestionRecord.feedback))
                .where(QuestionRecord.asked_at >= start, QuestionRecord.asked_at < end)
                .order_by(QuestionRecord.asked_at.desc(), QuestionRecord.id)
            ).all()
            gaps = [
                _Gap(q.question, q.language, _aware(q.asked_at), not q.answered, any(f.rating < 0 for f in q.feedback))
                for q in questions
                if not q.answered or any(f.rating < 0 for f in q.feedback)
            ]
            tags = {tag for entry in readable_entries(session, resolve_scope(session, viewer)) for tag in entry.tags}
        groups = self._group(gaps)
        shown = []
        for members, central in groups[:MAX_GAP_GROUPS]:
            suggestions = self.finder.suggest(central.question, viewer, central.language, k=MAX_SUGGESTED)
            words = {word for gap in members for word in _words(gap.question)}
            examples = list({gap.question: gap for gap in members}.values())[:MAX_EXAMPLES]
            shown.append(
                {
                    "topic": central.question,
                    "tags": sorted(tag for tag in tags if _words(tag) and _words(tag) <= words),
                    "count": len(members),
                    "unanswered": sum(gap.unanswered for gap in members),
                    "rated_down": sum(gap.rated_down for gap in members),
                    "examples": [
                        {
                            "question": gap.question,
                            "asked_at": gap.asked_at.isoformat(),
                            "reason": "unanswered" if gap.unanswered else "rated_down",
                        }
                        for gap in examples
                    ],
                    "suggested": [expert.name for expert in suggestions.experts],
                }
            )
        return {"filters": ["date"], "total": len(gaps), "groups": shown}

    def _group(self, gaps: Sequence[_Gap]) -> list[tuple[list[_Gap], _Gap]]:
        """Gaps grouped by meaning (each joins the closest group above the threshold), largest group first."""
        if not gaps:
            return []
        vectors = self.question_embedder.embed_documents([gap.question for gap in gaps])
        members: list[list[int]] = []
        centroids: list[np.ndarray[Any, Any]] = []
        for index, vector in enumerate(vectors):
            similarities = [float(vector @ (c / np.linalg.norm(c))) for c in centroids]
            best = int(np.argmax(similarities)) if similarities else -1
            if best >= 0 and similarities[best] >= self.gap_threshold:
                members[best].append(index)
                centroids[best] = centroids[best] + vector
            else:
                members.append([index])
                centroids.append(np.array(vector, dtype=float))
        groups = []
        for indices, centroid in zip(members, centroids, strict=True):
            central = max(indices, key=lambda i: float(vectors[i] @ centroid))
            groups.append(([gaps[i] for i in indices], gaps[central]))
        groups.sort(key=lambda group: (-len(group[0]), -max(g.asked_at.timestamp() for g in group[0])))
        return groups


@dataclass(frozen=True)
class _Gap:
    """A question that went unanswered or whose answer was rated down."""

    question: str
    language: str
    asked_at: dt.datetime
    unanswered: bool
    rated_down: bool


def _words(text: str) -> set[str]:
    return {word.casefold() for word in _WORD.findall(text)}


def _readable_notes(session: Session, scope: AccessScope, period: _Period, since: dt.date | None) -> list[NoteRecord]:
    """Notes the scope reads dated up to the period's end (from ``since`` when given), within its filters."""
    query = (
        select(NoteRecord)
        .options(selectinload(NoteRecord.participations))
        .where(visible_notes(scope), NoteRecord.session_date <= period.date_to)
        .order_by(NoteRecord.session_date, NoteRecord.id)
    )
    if since is not None:
        query = query.where(NoteRecord.session_date >= since)
    if period.community is not None:
        query = query.where(NoteRecord.community == period.community)
    if period.kind is not None:
        query = query.where(NoteRecord.kind == period.kind)
    # Re-checked in Python with the same rule: nothing unreadable is counted even if the SQL were too broad.
    return [note for note in session.scalars(query) if scope.allows(note.visibility, note.community, note.id)]


def _note_dates(session: Session, note_ids: Iterable[str]) -> dict[str, dt.date]:
    ids = sorted(set(note_ids))
    if not ids:
        return {}
    rows = session.execute(select(NoteRecord.id, NoteRecord.session_date).where(NoteRecord.id.in_(ids)))
    return {note_id: day for note_id, day in rows}


def _reviewable(session: Session, viewer: Viewer, scope: AccessScope, period: _Period) -> list[PracticeRecord]:
    """Entries the viewer reads under the review rules, within the community and format filters."""
    query = select(PracticeRecord).options(selectinload(PracticeRecord.evidence))
    if period.community is not None:
        query = query.where(PracticeRecord.community == period.community)
    if period.kind is not None:
        query = query.where(PracticeRecord.kind == period.kind)
    records = session.scalars(query).all()
    notes = {
        note.id: note
        for note in session.scalars(
            select(NoteRecord).where(NoteRecord.id.in_({e.note_id for r in records for e in r.evidence}))
        )
    }
    readable = []
    for record in records:
        sources = [notes.get(e.note_id) for e in record.evidence]
        if not sources or not all(n is not None and scope.allows(n.visibility, n.community, n.id) for n in sources):
            continue
        published = record.status in ("approved", "superseded")
        shared = all(n is not None and n.visibility != "private" for n in sources)
        if viewer.sees_everything or published or (viewer.may_review and shared):
            readable.append(record)
    return readable


def _rows_table(measure: dict[str, Any], columns: tuple[str, ...]) -> Table:
    return Table(columns, tuple(tuple(row[name] for name in columns) for row in measure["rows"]))


def _participation_table(measure: dict[str, Any]) -> Table:
    columns = ("community", "kind", "participants", "known", "rate")
    rows = [tuple(row[name] for name in columns) for row in measure["rows"]]
    rows += [(c["community"], "all", c["participants"], c["known"], c["rate"]) for c in measure["communities"]]
    return Table(columns, tuple(rows))


def _gaps_table(measure: dict[str, Any]) -> Table:
    columns = ("topic", "tags", "count", "unanswered", "rated_down", "examples", "suggested")
    return Table(
        columns,
        tuple(
            (
                group["topic"],
                " | ".join(group["tags"]),
                group["count"],
                group["unanswered"],
                group["rated_down"],
                " | ".join(example["question"] for example in group["examples"]),
                " | ".join(group["suggested"]),
            )
            for group in measure["groups"]
        ),
    )
