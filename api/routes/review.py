"""The HR review queue: drafts and due entries in priority order, and one entry beside its source notes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import ServicesDep, ViewerDep
from capture.review_queue import MAX_PAGE, QUEUE_STATUSES, SORTS, QueueFilters, ReviewQueue

router = APIRouter(prefix="/api/review", tags=["review"])


@router.get("/queue", summary="The review queue (HR)")
def review_queue(
    services: ServicesDep,
    viewer: ViewerDep,
    status: Annotated[str, Query(pattern=f"^({'|'.join(QUEUE_STATUSES)})$")] = "open",
    community: Annotated[str | None, Query(max_length=100)] = None,
    kind: Annotated[str | None, Query(max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    due_before: dt.date | None = None,
    sort: Annotated[str, Query(pattern=f"^({'|'.join(SORTS)})$")] = "priority",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> dict[str, Any]:
    """Entries awaiting a decision (``open``: drafts and due entries) or of one status, with why each comes first.

    ``priority = log2(1 + grounding) + log2(corroboration) + min(age_days, 365) / 365``; ``facets`` lists the
    communities, formats and tags of the entries of that status, for the filters.
    """
    filters = QueueFilters(status=status, community=community, kind=kind, tag=tag, due_before=due_before)
    page = ReviewQueue(services.practices, services.knowledge).queue(viewer, filters, sort, offset, limit)
    return page.as_json()


@router.get("/items/{practice_id}", summary="One entry beside its source notes (HR)")
def review_item(practice_id: str, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """The entry, its priority, the passages of its notes with the quoted spans, its duplicates and history."""
    return ReviewQueue(services.practices, services.knowledge).item(practice_id, viewer).as_json()
