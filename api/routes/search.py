"""Search over the notes the caller may see."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.deps import ServicesDep, ViewerDep
from api.services import Services
from capture.language import detect_language
from retrieval.access import Viewer
from retrieval.search import MAX_K, SearchFilters

router = APIRouter(prefix="/api", tags=["search"])


def search_json(
    services: Services, viewer: Viewer, query: str, k: int, filters: SearchFilters, mode: str
) -> dict[str, Any]:
    """Run a search and shape it as ``search --json`` prints it."""
    language = detect_language(query)
    hits = services.searcher.search(query, viewer, k=k, filters=filters, mode=mode, language=language)
    practices = services.practice_index.search(query, viewer, k=3, language=language)
    return {
        "query": query,
        "hits": [hit.as_json() for hit in hits],
        "practices": [practice.as_json() for practice in practices],
    }


@router.get("/search", summary="Hybrid search over the notes you may see")
def search(
    services: ServicesDep,
    viewer: ViewerDep,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    kind: str | None = None,
    community: str | None = None,
    language: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    mode: Annotated[str, Query(pattern="^(hybrid|dense|lexical)$")] = "hybrid",
) -> dict[str, Any]:
    """Chunks ranked by meaning and words, with their note and offsets."""
    filters = SearchFilters(kind=kind, community=community, language=language, date_from=date_from, date_to=date_to)
    return search_json(services, viewer, q, k, filters, mode)
