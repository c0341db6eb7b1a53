"""The HR review queue: what to review first, and each entry side by side with the passages it quotes.

The default order, ``priority``, adds three components; each item carries them, so the reviewer sees why
it comes first::

    priority = log2(1 + grounding) + log2(corroboration) + min(age_days, 365) / 365

- ``grounding``: the recorded questions that retrieved a passage the entry quotes (one of the question's
  sources, a chunk or an entry, overlaps an evidence span in the same note): the questions the entry would
  ground once approved, the unanswered ones (knowledge gaps) included;
- ``corroboration``: the distinct notes supporting the entry's duplicate group (1 for a lone draft);
- ``age_days``: days since the entry was drafted, capped at a year: older first among equals.

The queue lists only what the reviewer may read (``PracticeBook.list_practices``: HR never sees the drafts of
private notes), and an item's passages are read through ``KnowledgeBase.get_note``, which checks the note's
visibility again and audits any read of a private note.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from capture.errors import InvalidMetadata
from capture.review import EvidenceView, PracticeBook, PracticeFilters, PracticeView, ReviewForbidden
from retrieval.access import Viewer
from retrieval.knowledge import KnowledgeBase
from retrieval.records import PracticeRecord, QuestionRecord

# ``open``: what awaits a decision, drafts and approved entries whose review date has come.
QUEUE_STATUSES = ("open", "draft", "due", "approved", "rejected", "merged", "superseded")
SORTS = ("priority", "age", "corroboration", "grounding")
MAX_PAGE = 200
# A note up to this length is shown whole beside the entry; a longer one as windows around the quoted spans.
FULL_NOTE_CHARS = 4000
CONTEXT_CHARS = 400
_AGE_CAP_DAYS = 365
_REVIEWABLE = ("draft", "approved")


@dataclass(frozen=True)
class QueueFilters:
    """Restrictions on the queue; ``due_before`` keeps entries whose review date is on or before it."""

    status: str = "open"
    community: str | None = None
    kind: str | None = None
    tag: str | None = None
    due_before: dt.date | None = None


@dataclass(frozen=True)
class Priority:
    """Why an entry comes where it does: the score and its components."""

    score: float
    grounding: int
    corroboration: int
    contributors: int
    age_days: int

    def as_json(self) -> dict[str, Any]:
        """The score (rounded) and its components."""
        return {
            "score": round(self.score, 3),
            "grounding": self.grounding,
            "corroboration": self.corroboration,
            "contributors": self.contributors,
            "age_days": self.age_days,
        }


def priority_of(grounding: int, corroboration: int, contributors: int, age_days: int) -> Priority:
    """The documented score of an entry from its components."""
    score = math.log2(1 + grounding) + math.log2(max(corroboration, 1)) + min(age_days, _AGE_CAP_DAYS) / _AGE_CAP_DAYS
    return Priority(score, grounding, corroboration, contributors, age_days)


@dataclass(frozen=True)
class QueueItem:
    """An entry of the queue with its priority."""

    practice: PracticeView
    priority: Priority
    drafted_at: dt.datetime

    def as_json(self) -> dict[str, Any]:
        """The entry as ``GET /api/practices`` shows it, with its priority and when it was drafted."""
        return {
            **self.practice.as_json(),
            "priority": self.priority.as_json(),
            "drafted_at": self.drafted_at.isoformat(),
        }


@dataclass(frozen=True)
class QueuePage:
    """One page of the queue, its total, and the values the filters can take."""

    items: tuple[QueueItem, ...]
    total: int
    offset: int
    limit: int
    sort: str
    facets: dict[str, list[str]]

    def as_json(self) -> dict[str, Any]:
        """The page as JSON."""
        return {
            "items": [item.as_json() for item in self.items],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
            "sort": self.sort,
            "facets": self.facets,
        }


@dataclass(frozen=True)
class HighlightedSpan:
    """An evidence span inside an excerpt: ``excerpt.text[start:end] == quote``."""

    claim: str
    quote: str
    start: int
    end: int

    def as_json(self) -> dict[str, Any]:
        """The span as JSON."""
        return {"claim": self.claim, "quote": self.quote, "start": self.start, "end": self.end}


@dataclass(frozen=True)
class SourceExcerpt:
    """A stretch of a source note around the spans an entry quotes; ``offset`` is where it starts in the note."""

    note_id: str
    external_id: str | None
    title: str
    kind: str
    community: str
    session_date: dt.date
    visibility: str
    note_length: int
    offset: int
    text: str
    spans: tuple[HighlightedSpan, ...]

    def as_json(self) -> dict[str, Any]:
        """The excerpt as JSON."""
        return {
            "note_id": self.note_id,
            "external_id": self.external_id,
            "title": self.title,
            "kind": self.kind,
            "community": self.community,
            "session_date": self.session_date.isoformat(),
            "visibility": self.visibility,
            "note_length": self.note_length,
            "offset": self.offset,
            "text": self.text,
            "spans": [span.as_json() for span in self.spans],
        }


@dataclass(frozen=True)
class ReviewItem:
    """An entry as the reviewer opens it: its text, priority, passages, duplicates and history."""

    practice: PracticeView
    priority: Priority
    drafted_at: dt.datetime
    sources: tuple[SourceExcerpt, ...]
    duplicates: tuple[PracticeView, ...]
    history: tuple[dict[str, Any], ...]

    def as_json(self) -> dict[str, Any]:
        """The item as JSON; duplicates are shown in short."""
        return {
            "practice": self.practice.as_json(),
            "priority": self.priority.as_json(),
            "drafted_at": self.drafted_at.isoformat(),
            "sources": [source.as_json() for source in self.sources],
            "duplicates": [
                {
                    "id": d.id,
                    "status": d.status,
                    "title": d.title,
                    "practice": d.practice,
                    "community": d.community,
                    "kind": d.kind,
                    "contributors": [p.name for p in d.contributors],
                    "notes": sorted({e.note_title for e in d.evidence}),
                }
                for d in self.duplicates
            ],
            "history": list(self.history),
        }


class ReviewQueue:
    """Orders the entries a reviewer may read, and opens one beside its source notes."""

    def __init__(
        self, book: PracticeBook, knowledge: KnowledgeBase, today: Callable[[], dt.date] | None = None
    ) -> None:
        self.book = book
        self.knowledge = knowledge
        self.today = today or book.today

    def queue(
        self,
        viewer: Viewer,
        filters: QueueFilters | None = None,
        sort: str = "priority",
        offset: int = 0,
        limit: int = 50,
    ) -> QueuePage:
        """A page of the entries matching the filters, in the chosen order, with the filters' possible values."""
        _require_reviewer(viewer)
        filters = filters or QueueFilters()
        if filters.status not in QUEUE_STATUSES:
            raise InvalidMetadata(f"unknown status {filters.status!r}; one of {', '.join(QUEUE_STATUSES)}")
        if sort not in SORTS:
            raise InvalidMetadata(f"unknown sort {sort!r}; one of {', '.join(SORTS)}")
        if offset < 0 or not 1 <= limit <= MAX_PAGE:
            raise InvalidMetadata(f"offset must be 0 or more and limit between 1 and {MAX_PAGE}")
        views = self._with_status(viewer, filters.status)
        facets = {
            "communities": sorted({v.community for v in views}),
            "kinds": sorted({v.kind for v in views}),
            "tags": sorted({tag for v in views for tag in v.tags}),
        }
        matching = [v for v in views if _matches(v, filters)]
        items = self._items(matching)
        items.sort(key=_SORT_KEYS[sort])
        return QueuePage(
            items=tuple(items[offset : offset + limit]),
            total=len(items),
            offset=offset,
            limit=limit,
            sort=sort,
            facets=facets,
        )

    def item(self, practice_id: str, viewer: Viewer) -> ReviewItem:
        """An entry with the passages of its notes it quotes highlighted, its duplicates and its history."""
        _require_reviewer(viewer)
        view = self.book.get(practice_id, viewer)
        [queued] = self._items([view])
        duplicates: tuple[PracticeView, ...] = ()
        if view.group_id:
            group = self.book.list_practices(viewer, PracticeFilters(group_id=view.group_id))
            duplicates = tuple(d for d in group if d.id != view.id and d.status in _REVIEWABLE)
        return ReviewItem(
            practice=view,
            priority=queued.priority,
            drafted_at=queued.drafted_at,
            sources=tuple(self._excerpts(view.evidence, viewer)),
            duplicates=duplicates,
            history=tuple(event.as_json() for event in self.book.history(practice_id, viewer)),
        )

    def _with_status(self, viewer: Viewer, status: str) -> list[PracticeView]:
        if status == "open":
            return [
                *self.book.list_practices(viewer, PracticeFilters(status="draft")),
                *self.book.list_practices(viewer, PracticeFilters(status="approved", due=True)),
            ]
        if status == "due":
            return self.book.list_practices(viewer, PracticeFilters(status="approved", due=True))
        return self.book.list_practices(viewer, PracticeFilters(status=status))

    def _items(self, views: Sequence[PracticeView]) -> list[QueueItem]:
        if not views:
            return []
        with self.book.sessions() as session:
            drafted = {
                practice_id: _aware(created_at)
                for practice_id, created_at in session.execute(
                    select(PracticeRecord.id, PracticeRecord.created_at).where(
                        PracticeRecord.id.in_([v.id for v in views])
                    )
                )
            }
            questions = select(QuestionRecord.id, QuestionRecord.sources).execution_options(yield_per=500)
            grounding = _grounding(session.execute(questions).tuples(), views)
        today = self.today()
        items = []
        for view in views:
            drafted_at = drafted[view.id]
            priority = priority_of(
                grounding.get(view.id, 0),
                view.corroboration_notes,
                view.corroboration_people,
                max((today - drafted_at.date()).days, 0),
            )
            items.append(QueueItem(view, priority, drafted_at))
        return items

    def _excerpts(self, evidence: Sequence[EvidenceView], viewer: Viewer) -> list[SourceExcerpt]:
        by_note: dict[str, list[EvidenceView]] = defaultdict(list)
        for span in evidence:
            by_note[span.note_id].append(span)
        excerpts: list[SourceExcerpt] = []
        for note_id, spans in by_note.items():
            # Read as the viewer: the note's visibility is checked again, and a private read is audited.
            note = self.knowledge.get_note(note_id, viewer)
            summary = note.summary
            for start, end, members in _windows(note.text, sorted(spans, key=lambda s: (s.start, s.end))):
                excerpts.append(
                    SourceExcerpt(
                        note_id=summary.id,
                        external_id=summary.external_id,
                        title=summary.title,
                        kind=summary.kind,
                        community=summary.community,
                        session_date=summary.session_date,
                        visibility=summary.visibility,
                        note_length=len(note.text),
                        offset=start,
                        text=note.text[start:end],
                        spans=tuple(HighlightedSpan(s.claim, s.quote, s.start - start, s.end - start) for s in members),
                    )
                )
        return excerpts


def _require_reviewer(viewer: Viewer) -> None:
    if not viewer.may_review:
        raise ReviewForbidden("only HR reviews the queue of best-practice entries")


def _matches(view: PracticeView, filters: QueueFilters) -> bool:
    if filters.community and view.community != filters.community:
        return False
    if filters.kind and view.kind != filters.kind:
        return False
    if filters.tag and filters.tag not in view.tags:
        return False
    return filters.due_before is None or (view.review_due is not None and view.review_due <= filters.due_before)


def _grounding(
    rows: Iterable[tuple[str, Sequence[dict[str, Any]] | None]], views: Sequence[PracticeView]
) -> dict[str, int]:
    """For each entry, the number of recorded questions with a source overlapping one of its evidence spans."""
    spans: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for view in views:
        for evidence in view.evidence:
            spans[evidence.note_id].append((evidence.start, evidence.end, view.id))
    questions: dict[str, set[str]] = defaultdict(set)
    for question_id, sources in rows:
        for source in sources or ():
            for start, end, practice_id in spans.get(source["note_id"], ()):
                if source["start"] < end and start < source["end"]:
                    questions[practice_id].add(question_id)
    return {practice_id: len(ids) for practice_id, ids in questions.items()}


def _windows(text: str, spans: Sequence[EvidenceView]) -> list[tuple[int, int, list[EvidenceView]]]:
    """Stretches of the note around sorted spans: the whole note when short, else one window per cluster."""
    if len(text) <= FULL_NOTE_CHARS:
        return [(0, len(text), list(spans))]
    windows: list[tuple[int, int, list[EvidenceView]]] = []
    for span in spans:
        start, end = _expand(text, span.start, span.end)
        if windows and start <= windows[-1][1]:
            previous_start, previous_end, members = windows[-1]
            windows[-1] = (previous_start, max(previous_end, end), [*members, span])
        else:
            windows.append((start, end, [span]))
    return windows


def _expand(text: str, start: int, end: int) -> tuple[int, int]:
    """A span widened by the context on each side, cut at the first line break (else space) within the context."""
    low, high = max(start - CONTEXT_CHARS, 0), min(end + CONTEXT_CHARS, len(text))
    if low > 0:
        cut = text.find("\n", low, start)
        cut = cut if cut >= 0 else text.find(" ", low, start)
        low = cut + 1 if cut >= 0 else low
    if high < len(text):
        cut = text.rfind("\n", end, high)
        cut = cut if cut >= 0 else text.rfind(" ", end, high)
        high = cut if cut >= 0 else high
    return low, high


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


_SORT_KEYS: dict[str, Callable[[QueueItem], tuple[Any, ...]]] = {
    "priority": lambda i: (-i.priority.score, i.drafted_at, i.practice.id),
    "age": lambda i: (i.drafted_at, i.practice.id),
    "corroboration": lambda i: (-i.priority.corroboration, -i.priority.contributors, i.drafted_at, i.practice.id),
    "grounding": lambda i: (-i.priority.grounding, i.drafted_at, i.practice.id),
}
