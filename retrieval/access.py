"""Who may see what: the viewer, and the access scope resolved from the records before any ranking.

A note is visible to a viewer when the viewer sees everything (admin, the local CLI), when it is public,
when it belongs to one of the viewer's communities and is shared with the community, or when the viewer
took part in it. Anything else, including an unknown visibility, is hidden: the filter fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrieval.records import ParticipationRecord, PersonRecord

VISIBILITIES = ("public", "community", "private")


@dataclass(frozen=True)
class Viewer:
    """The person asking, as the server knows them (never built from client-supplied filters)."""

    label: str
    person_name: str | None = None
    communities: frozenset[str] = frozenset()
    sees_everything: bool = False

    @classmethod
    def administrator(cls) -> Viewer:
        """A viewer who sees every note (the local CLI, admins)."""
        return cls(label="admin", sees_everything=True)

    @classmethod
    def public(cls) -> Viewer:
        """A viewer who sees public notes only."""
        return cls(label="public")


@dataclass(frozen=True)
class AccessScope:
    """A viewer's rights resolved against the records: what a search may consider at all."""

    sees_everything: bool
    communities: frozenset[str] = frozenset()
    note_ids: frozenset[str] = field(default_factory=frozenset)

    def allows(self, visibility: str, community: str, note_id: str) -> bool:
        """Whether a note with these attributes is visible in this scope."""
        if self.sees_everything or note_id in self.note_ids:
            return True
        if visibility == "public":
            return True
        return visibility == "community" and bool(community) and community in self.communities

    def allows_metadata(self, metadata: Mapping[str, Any]) -> bool:
        """Whether a stored chunk (by its vector metadata) is visible in this scope."""
        return self.allows(
            str(metadata.get("visibility", "")), str(metadata.get("community", "")), str(metadata.get("note_id", ""))
        )

    def where(self) -> dict[str, Any] | None:
        """The same rule as a Chroma metadata filter (None when everything is visible)."""
        if self.sees_everything:
            return None
        clauses: list[dict[str, Any]] = [{"visibility": "public"}]
        if self.communities:
            clauses.append({"$and": [{"visibility": "community"}, {"community": {"$in": sorted(self.communities)}}]})
        if self.note_ids:
            clauses.append({"note_id": {"$in": sorted(self.note_ids)}})
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def resolve_scope(session: Session, viewer: Viewer) -> AccessScope:
    """Resolve a viewer's scope: their communities and the notes they took part in."""
    if viewer.sees_everything:
        return AccessScope(sees_everything=True)
    note_ids: frozenset[str] = frozenset()
    if viewer.person_name:
        rows = session.scalars(
            select(ParticipationRecord.note_id)
            .join(PersonRecord, PersonRecord.id == ParticipationRecord.person_id)
            .where(PersonRecord.name == viewer.person_name)
        )
        note_ids = frozenset(rows)
    communities = frozenset(c for c in viewer.communities if c)
    return AccessScope(sees_everything=False, communities=communities, note_ids=note_ids)
