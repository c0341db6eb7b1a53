"""The audit log: who did what to which target, when; append-only from the application, read by admins.

The log shows two kinds of rows, newest first:

- rows of the ``audit_log`` table, appended by ``AuditLog.append`` (or ``audit_in``, inside the act's own
  transaction): private notes read by someone who did not take part (``note.read``, ``note.original``),
  people erased (``person.erased``);
- the review events of best-practice entries (``practice.approved``, ``practice.edited``, ...), read from
  the entries' history. That history is written in the same transaction as the change it records, so the
  two cannot disagree, and a second copy written after the fact could be lost in a crash.

There is deliberately no method to change or remove a row. The one exception is the right to erasure:
``capture.erasure`` replaces an erased person's name by their pseudonym in past rows, and says so in
its own ``person.erased`` row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from retrieval.access import Viewer
from retrieval.errors import Forbidden
from retrieval.records import AuditRecord, HistoryRecord

__all__ = ["NOTE_ORIGINAL", "NOTE_READ", "PERSON_ERASED", "AuditEntry", "AuditFilters", "AuditLog", "audit_in"]

NOTE_READ = "note.read"
NOTE_ORIGINAL = "note.original"
PERSON_ERASED = "person.erased"
# Review events of the entries' history that belong in the audit view (drafting and due dates are the system's).
REVIEW_ACTIONS = ("approved", "edited", "merged", "rejected", "superseded", "pseudonymised")
MAX_LIST = 1000


@dataclass(frozen=True)
class AuditEntry:
    """One audited act."""

    at: dt.datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def as_json(self) -> dict[str, Any]:
        """The entry in the shape of ``audit --json`` and ``GET /api/audit``."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class AuditFilters:
    """Restrictions on a listing of the audit log."""

    actor: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: dt.datetime | None = None
    limit: int = 100


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite gives back naive datetimes; they were written in UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def audit_in(
    session: Session,
    actor: str,
    action: str,
    target_type: str,
    target_id: str,
    detail: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> None:
    """Append an audit row inside the caller's transaction (it commits with the act it records)."""
    session.add(
        AuditRecord(
            at=at or _now(),
            actor=actor[:200],
            action=action[:50],
            target_type=target_type[:30],
            target_id=target_id[:200],
            detail=dict(detail or {}),
        )
    )


class AuditLog:
    """Appends audit rows and lists them, with the entries' review history, to admins."""

    def __init__(self, sessions: sessionmaker) -> None:  # type: ignore[type-arg]
        self.sessions = sessions

    def append(
        self, actor: str, action: str, target_type: str, target_id: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Record one act in its own transaction."""
        with self.sessions.begin() as session:
            audit_in(session, actor, action, target_type, target_id, detail)

    def list_entries(self, viewer: Viewer, filters: AuditFilters | None = None) -> list[AuditEntry]:
        """Audited acts, newest first; only admins may read the log."""
        if not viewer.may_manage_accounts:
            raise Forbidden("only admins may read the audit log")
        filters = filters or AuditFilters()
        limit = max(1, min(filters.limit, MAX_LIST))
        with self.sessions() as session:
            entries = self._rows(session, filters, limit) + self._reviews(session, filters, limit)
        entries.sort(key=lambda e: (e.at, e.id), reverse=True)
        return entries[:limit]

    @staticmethod
    def _rows(session: Session, filters: AuditFilters, limit: int) -> list[AuditEntry]:
        query = select(AuditRecord).order_by(AuditRecord.at.desc(), AuditRecord.id.desc()).limit(limit)
        if filters.actor:
            query = query.where(AuditRecord.actor == filters.actor)
        if filters.action:
            query = query.where(AuditRecord.action == filters.action)
        if filters.target_type:
            query = query.where(AuditRecord.target_type == filters.target_type)
        if filters.target_id:
            query = query.where(AuditRecord.target_id == filters.target_id)
        if filters.since:
            query = query.where(AuditRecord.at >= filters.since)
        return [
            AuditEntry(
                at=_aware(r.at),
                actor=r.actor,
                action=r.action,
                target_type=r.target_type,
                target_id=r.target_id,
                detail=dict(r.detail or {}),
                id=f"a{r.id}",
            )
            for r in session.scalars(query)
        ]

    @staticmethod
    def _reviews(session: Session, filters: AuditFilters, limit: int) -> list[AuditEntry]:
        if filters.target_type not in (None, "practice"):
            return []
        actions: tuple[str, ...] = REVIEW_ACTIONS
        if filters.action:
            name = filters.action.removeprefix("practice.")
            if not filters.action.startswith("practice.") or name not in REVIEW_ACTIONS:
                return []
            actions = (name,)
        query = (
            select(HistoryRecord)
            .where(HistoryRecord.action.in_(actions))
            .order_by(HistoryRecord.at.desc(), HistoryRecord.id.desc())
            .limit(limit)
        )
        if filters.actor:
            query = query.where(HistoryRecord.actor == filters.actor)
        if filters.target_id:
            query = query.where(HistoryRecord.practice_id == filters.target_id)
        if filters.since:
            query = query.where(HistoryRecord.at >= filters.since)
        return [
            AuditEntry(
                at=_aware(r.at),
                actor=r.actor,
                action=f"practice.{r.action}",
                target_type="practice",
                target_id=r.practice_id,
                detail={"reason": r.reason} if r.reason else {},
                id=f"h{r.id}",
            )
            for r in session.scalars(query)
        ]
