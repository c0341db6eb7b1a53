"""Best-practice entries: list, read, history, and the HR review actions; extraction jobs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from api.deps import ServicesDep, ViewerDep
from capture.review import PracticeFilters

router = APIRouter(prefix="/api", tags=["practices"])


@router.get("/practices", summary="List best-practice entries")
def list_practices(
    services: ServicesDep,
    viewer: ViewerDep,
    status: Annotated[str | None, Query(pattern="^(draft|approved|rejected|merged|superseded)$")] = None,
    community: str | None = None,
    kind: str | None = None,
    tag: str | None = None,
    due: bool = False,
    note_id: str | None = None,
    group_id: str | None = None,
) -> dict[str, Any]:
    """Entries the caller may read: drafts for HR and the source note's facilitator, approved ones for readers."""
    filters = PracticeFilters(
        status=status, community=community, kind=kind, tag=tag, due=due, note_id=note_id, group_id=group_id
    )
    return {"practices": [p.as_json() for p in services.practices.list_practices(viewer, filters)]}


@router.get("/practices/{practice_id}", summary="One entry with its evidence")
def show_practice(practice_id: str, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """An entry, its evidence spans and contributors."""
    return services.practices.get(practice_id, viewer).as_json()


@router.get("/practices/{practice_id}/history", summary="Every change to an entry")
def practice_history(practice_id: str, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """Who did what to the entry, when, with the values before and after."""
    return {"history": [event.as_json() for event in services.practices.history(practice_id, viewer)]}


@router.patch("/practices/{practice_id}", summary="Edit an entry's text")
def edit_practice(
    practice_id: str,
    services: ServicesDep,
    viewer: ViewerDep,
    changes: Annotated[dict[str, Any], Body(examples=[{"title": "Préparer le kit de joints la veille"}])],
) -> dict[str, Any]:
    """Change title, practice, steps, context, rationale, pitfalls or tags; the history keeps both versions."""
    return services.practices.edit(practice_id, viewer, changes).as_json()


@router.post("/practices/{practice_id}/approve", summary="Approve an entry (HR)")
def approve_practice(practice_id: str, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """Publish the entry to search and answers."""
    return services.practices.approve(practice_id, viewer).as_json()


@router.post("/practices/{practice_id}/reject", summary="Reject an entry with a reason (HR)")
def reject_practice(
    practice_id: str,
    services: ServicesDep,
    viewer: ViewerDep,
    reason: Annotated[str, Body(embed=True, min_length=1, max_length=2000)],
) -> dict[str, Any]:
    """Reject a draft, or withdraw an approved entry."""
    return services.practices.reject(practice_id, viewer, reason).as_json()


@router.post("/practices/{practice_id}/merge", summary="Merge duplicates into this entry (HR)")
def merge_practices(
    practice_id: str,
    services: ServicesDep,
    viewer: ViewerDep,
    sources: Annotated[list[str], Body(embed=True, min_length=1, max_length=50)],
) -> dict[str, Any]:
    """The entry keeps the union of evidence and contributors; the others become ``merged``."""
    return services.practices.merge(practice_id, sources, viewer).as_json()


@router.post("/practices/{practice_id}/supersede", summary="Replace an approved entry by a newer one (HR)")
def supersede_practice(
    practice_id: str,
    services: ServicesDep,
    viewer: ViewerDep,
    by: Annotated[str, Body(embed=True, min_length=1, max_length=40)],
) -> dict[str, Any]:
    """The old entry stays readable as ``superseded``, pointing at its successor."""
    return services.practices.supersede(practice_id, by, viewer).as_json()


@router.get("/jobs", summary="Extraction jobs of the notes you may read, and their progress")
def list_jobs(
    services: ServicesDep,
    viewer: ViewerDep,
    note_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Jobs newest first, with their status and drafts, of the notes the caller may read or uploaded (if shared)."""
    jobs = services.jobs.list_jobs(viewer, note_id=note_id, limit=limit)
    return {"jobs": [job.as_json() for job in jobs]}
