"""People and the audit log: the right to erasure, and who did what (admins only)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import AdminDep, ServicesDep
from retrieval.audit import AuditFilters

router = APIRouter(prefix="/api", tags=["people"])


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
