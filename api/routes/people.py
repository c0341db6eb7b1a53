"""People and the audit log: name suggestions for uploaders, the right to erasure, who did what (admins only)."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import false, select
from sqlalchemy.orm import selectinload

from api.deps import AdminDep, ServicesDep, UploaderDep, ViewerDep
from retrieval.access import resolve_scope
from retrieval.audit import AuditFilters
from retrieval.errors import PersonNotFound
from retrieval.expert_finder import visible_notes
from retrieval.records import ContributorRecord, NoteRecord, ParticipationRecord, PersonRecord, PracticeRecord

router = APIRouter(prefix="/api", tags=["people"])


def _folded(text: str) -> str:
    """The text in lower case without accents, for matching what someone types against names."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _matches(name: str, prefix: str) -> bool:
    """Whether the name, or one of its words, starts with the (folded) prefix."""
    folded = _folded(name)
    return folded.startswith(prefix) or any(word.startswith(prefix) for word in re.split(r"[\s\-']+", folded))


@router.get("/people", summary="Suggest known people by name, with their roles and communities (uploaders)")
def suggest_people(
    services: ServicesDep,
    viewer: UploaderDep,
    prefix: Annotated[str, Query(max_length=100)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """People of the shared notes the caller may read, whose name or one of its words starts with the prefix."""
    # Private notes never feed suggestions: nobody learns from them who took part in a mentoring session.
    # People who opted out of suggestions (pseudonyms of erased people among them) are not offered either.
    wanted = _folded(prefix.strip())
    query = (
        select(PersonRecord.name, ParticipationRecord.role, NoteRecord.community)
        .join(ParticipationRecord, ParticipationRecord.person_id == PersonRecord.id)
        .join(NoteRecord, NoteRecord.id == ParticipationRecord.note_id)
        .where(NoteRecord.visibility != "private", PersonRecord.opted_out == false())
    )
    people: dict[str, tuple[Counter[str], Counter[str]]] = {}
    with services.knowledge.sessions() as session:
        rows = session.execute(query.where(visible_notes(resolve_scope(session, viewer))))
        for person, role, community in rows:
            if _matches(person, wanted):
                roles, communities = people.setdefault(person, (Counter(), Counter()))
                roles[role] += 1
                communities[community] += 1
    ranked = sorted(people.items(), key=lambda item: (-item[1][1].total(), _folded(item[0])))
    return {
        "people": [
            {
                "name": person,
                "roles": [role for role, _ in roles.most_common()],
                "communities": [community for community, _ in communities.most_common()],
                "notes": communities.total(),
            }
            for person, (roles, communities) in ranked[:limit]
        ]
    }


MAX_TOPIC_EVIDENCE = 3


@router.get("/people/{name}", summary="A person's page: topics they know, sessions joined, entries credited")
def person_page(name: str, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """Only what the caller may read: sessions of notes they may see, entries whose every source they may see.

    Approved entries are listed for everyone; drafts for reviewers (HR) only. Someone the caller sees nothing of
    is reported as unknown (their own page excepted), so the page never tells who took part in a private session.
    """
    with services.knowledge.sessions() as session:
        person = session.scalar(select(PersonRecord).where(PersonRecord.name == name))
        if person is None:
            raise PersonNotFound(f"no colleague named {name!r}")
        scope = resolve_scope(session, viewer)
        joined = session.execute(
            select(NoteRecord, ParticipationRecord.role)
            .join(ParticipationRecord, ParticipationRecord.note_id == NoteRecord.id)
            .where(ParticipationRecord.person_id == person.id, visible_notes(scope))
            .order_by(NoteRecord.session_date.desc(), NoteRecord.title)
        ).all()
        sessions = [(note, role) for note, role in joined if scope.allows(note.visibility, note.community, note.id)]
        statuses = ("approved", "draft") if viewer.may_review else ("approved",)
        credited_query = (
            select(PracticeRecord)
            .join(ContributorRecord, ContributorRecord.practice_id == PracticeRecord.id)
            .options(selectinload(PracticeRecord.evidence))
            .where(ContributorRecord.person_id == person.id, PracticeRecord.status.in_(statuses))
            .order_by(PracticeRecord.updated_at.desc(), PracticeRecord.id)
        )
        credited = session.scalars(credited_query).unique().all()
        sources = {
            n.id: n
            for n in session.scalars(
                select(NoteRecord).where(NoteRecord.id.in_({e.note_id for p in credited for e in p.evidence}))
            )
        }
        entries = [
            practice
            for practice in credited
            if practice.evidence
            and all(
                (note := sources.get(e.note_id)) is not None and scope.allows(note.visibility, note.community, note.id)
                for e in practice.evidence
            )
        ]
        if not sessions and not entries and name != viewer.person_name:
            raise PersonNotFound(f"no colleague named {name!r}")
        return {
            "name": person.name,
            "opted_out": person.opted_out,
            "is_viewer": name == viewer.person_name,
            "may_change_opt_out": name == viewer.person_name or viewer.may_manage_accounts,
            "topics": _topics(sessions, entries, sources),
            "sessions": [
                {
                    "note_id": note.id,
                    "title": note.title,
                    "kind": note.kind,
                    "community": note.community,
                    "session_date": note.session_date.isoformat(),
                    "visibility": note.visibility,
                    "role": role,
                }
                for note, role in sessions
            ],
            "entries": [
                {
                    "id": practice.id,
                    "title": practice.title,
                    "practice": practice.practice,
                    "status": practice.status,
                    "community": practice.community,
                    "tags": list(practice.tags),
                    "language": practice.language,
                }
                for practice in entries
            ],
        }


def _topics(
    sessions: Sequence[tuple[NoteRecord, str]], entries: Sequence[PracticeRecord], notes: Mapping[str, NoteRecord]
) -> list[dict[str, Any]]:
    """What a person knows about: the tags of the entries credited to them and the communities of their sessions."""
    topics: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for practice in entries:
        day = max(notes[e.note_id].session_date for e in practice.evidence)
        for tag in dict.fromkeys(practice.tags):
            topics.setdefault((tag, "tag"), []).append(
                {"kind": "entry", "id": practice.id, "title": practice.title, "date": day.isoformat()}
            )
    for note, role in sessions:
        topics.setdefault((note.community, "community"), []).append(
            {"kind": "session", "id": note.id, "title": note.title, "date": note.session_date.isoformat(), "role": role}
        )
    ranked = sorted(topics.items(), key=lambda item: (-len(item[1]), item[0][1] != "tag", item[0][0]))
    return [
        {"topic": topic, "source": source, "count": len(evidence), "evidence": evidence[:MAX_TOPIC_EVIDENCE]}
        for (topic, source), evidence in ranked
    ]


@router.delete("/people/{name}", summary="Erase a person everywhere (right to erasure)")
def erase_person(name: str, services: ServicesDep, viewer: AdminDep) -> dict[str, Any]:
    """Remove or pseudonymise the person in every store and purge what the stores kept on disk."""
    return services.erase_person(name, viewer).as_json()


@router.get("/audit", summary="The audit log")
def audit_log(
    services: ServicesDep,
    viewer: AdminDep,
    actor: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: dt.datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Who read a private note, who reviewed which entry, who erased whom; newest first."""
    filters = AuditFilters(
        actor=actor, action=action, target_type=target_type, target_id=target_id, since=since, limit=limit
    )
    return {"entries": [entry.as_json() for entry in services.audit.list_entries(viewer, filters)]}
