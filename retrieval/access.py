"""Who may see what: the viewer, and the access scope resolved from the records before any ranking.

Roles (``ROLES``): ``employee`` reads; ``facilitator`` also uploads notes and edits the drafts of the sessions
they led; ``hr`` also reads every community's shared notes and reviews best practices; ``admin`` uploads and
manages accounts. ``public`` is the anonymous reader of library calls and tests (public notes only); the local
CLI acts as ``Viewer.administrator()``, who sees and does everything.

A note is visible when the viewer sees everything, when it is public, when it is a ``community`` note of one
of the viewer's communities (every community for HR), or when the viewer took part in it. ``private`` notes
are for their participants only, whatever the role: admins and HR do not read other people's mentoring.
Anything else is hidden, so the filter fails closed: an unknown role sees nothing (not even public notes),
an unknown visibility or an empty community hides the note.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retrieval.records import NoteRecord, ParticipationRecord, PersonRecord, UserRecord

VISIBILITIES = ("public", "community", "private")
ROLES = ("employee", "facilitator", "hr", "admin")
ANONYMOUS = "public"
_UPLOADERS = frozenset({"facilitator", "hr", "admin"})
# Notes a person took part in that make them a member of the note's community (a private session does not).
_MEMBERSHIP_VISIBILITIES = ("public", "community")


@dataclass(frozen=True)
class Viewer:
    """The person asking, as the server knows them (never built from client-supplied filters)."""

    label: str
    person_name: str | None = None
    communities: frozenset[str] = frozenset()
    sees_everything: bool = False
    role: str = "employee"

    @classmethod
    def administrator(cls) -> Viewer:
        """A viewer who sees and does everything (the local CLI on its own data directory)."""
        return cls(label="admin", sees_everything=True, role="admin")

    @classmethod
    def public(cls) -> Viewer:
        """A viewer who sees public notes only and may change nothing."""
        return cls(label="public", role=ANONYMOUS)

    @property
    def may_upload(self) -> bool:
        """Whether the viewer may upload (and delete) notes: facilitators, HR and admins."""
        return self.sees_everything or self.role in _UPLOADERS

    @property
    def may_review(self) -> bool:
        """Whether the viewer reviews best practices (approve, reject, merge, supersede, edit): HR."""
        return self.sees_everything or self.role == "hr"

    @property
    def may_manage_accounts(self) -> bool:
        """Whether the viewer creates, lists and disables accounts and their tokens: admins."""
        return self.sees_everything or self.role == "admin"

    @property
    def sees_community_notes(self) -> bool:
        """Whether the viewer reads the ``community`` notes of every community (HR), not only their own."""
        return self.sees_everything or self.role == "hr"

    def may_delete_note(self, participants: Collection[str]) -> bool:
        """Whether the viewer may delete a note they can see: HR and admins, or a facilitator who took part."""
        if self.sees_everything or self.role in ("hr", "admin"):
            return True
        return self.role == "facilitator" and self.person_name is not None and self.person_name in participants


@dataclass(frozen=True)
class AccessScope:
    """A viewer's rights resolved against the records: what a search may consider at all."""

    sees_everything: bool
    communities: frozenset[str] = frozenset()
    note_ids: frozenset[str] = field(default_factory=frozenset)
    sees_public: bool = True

    @classmethod
    def nothing(cls) -> AccessScope:
        """The scope that shows no note at all (what an unknown role gets)."""
        return cls(sees_everything=False, sees_public=False)

    def allows(self, visibility: str, community: str, note_id: str) -> bool:
        """Whether a note with these attributes is visible in this scope."""
        if self.sees_everything or note_id in self.note_ids:
            return True
        if visibility == "public":
            return self.sees_public
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
        clauses: list[dict[str, Any]] = []
        if self.sees_public:
            clauses.append({"visibility": "public"})
        if self.communities:
            clauses.append({"$and": [{"visibility": "community"}, {"community": {"$in": sorted(self.communities)}}]})
        if self.note_ids:
            clauses.append({"note_id": {"$in": sorted(self.note_ids)}})
        if not clauses:
            # Chroma has no "false" filter: ask for a visibility no note has.
            return {"visibility": "__none__"}
        return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def resolve_scope(session: Session, viewer: Viewer) -> AccessScope:
    """Resolve a viewer's scope from the records: their communities and the notes they took part in."""
    if viewer.sees_everything:
        return AccessScope(sees_everything=True)
    if viewer.role == ANONYMOUS:
        return AccessScope(sees_everything=False)
    if viewer.role not in ROLES:
        return AccessScope.nothing()
    note_ids: frozenset[str] = frozenset()
    if viewer.person_name:
        rows = session.scalars(
            select(ParticipationRecord.note_id)
            .join(PersonRecord, PersonRecord.id == ParticipationRecord.person_id)
            .where(PersonRecord.name == viewer.person_name)
        )
        note_ids = frozenset(rows)
    communities = set(viewer.communities)
    if viewer.sees_community_notes:
        # HR reads every community's shared notes: spelled out as the list of communities, so that every
        # consumer of the scope (Chroma filters, SQL conditions) applies the same rule without a special case.
        communities.update(session.scalars(select(NoteRecord.community).distinct()))
    return AccessScope(sees_everything=False, communities=frozenset(c for c in communities if c), note_ids=note_ids)


def account_viewer(session: Session, user: UserRecord) -> Viewer:
    """The viewer of an account: its role, its person, its memberships and the communities of its shared sessions.

    A user is a member of the communities they were given explicitly, and of the communities of the public
    and community notes their person took part in (a circle of the maintenance community makes them a
    member of it); a private session (mentoring) does not make its participants members of its community.
    """
    communities = {membership.community for membership in user.memberships}
    person_name = user.person.name if user.person is not None else None
    if user.person_id is not None:
        communities.update(
            session.scalars(
                select(NoteRecord.community)
                .join(ParticipationRecord, ParticipationRecord.note_id == NoteRecord.id)
                .where(
                    ParticipationRecord.person_id == user.person_id,
                    NoteRecord.visibility.in_(_MEMBERSHIP_VISIBILITIES),
                )
                .distinct()
            )
        )
    return Viewer(
        label=user.login,
        person_name=person_name,
        communities=frozenset(c for c in communities if c),
        role=user.role,
    )
