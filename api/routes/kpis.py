"""The programme's measures (HR and admins): every measure as JSON, or one measure as a CSV table."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import ServicesDep, ViewerDep
from api.errors import ApiError, ErrorCode
from retrieval.kpis import MEASURES, KpiFilters

router = APIRouter(prefix="/api", tags=["kpis"])

# Strings, checked by ``KpiFilters``: a bad date or bucket is an ``invalid_query`` like any other bad filter.
DateFrom = Annotated[str | None, Query(description="first day, YYYY-MM-DD (default: a year before date_to)")]
DateTo = Annotated[str | None, Query(description="last day, YYYY-MM-DD (default: today)")]
Community = Annotated[str | None, Query(description="only this community's sessions")]
Kind = Annotated[str | None, Query(description="only this format: circle, pair, mentoring, other")]
Bucket = Annotated[str, Query(description="week (Monday first) or month")]


@router.get("/kpis", summary="The programme's measures: participation, activity, feedback, skills, gaps, review")
def kpis(
    services: ServicesDep,
    viewer: ViewerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    community: Community = None,
    kind: Kind = None,
    bucket: Bucket = "month",
) -> dict[str, Any]:
    """Computed from what the caller may read; a note they may not read counts nowhere (HR and admins only)."""
    filters = KpiFilters(date_from=date_from, date_to=date_to, community=community, kind=kind, bucket=bucket)
    return services.kpis.report(viewer, filters)


@router.get(
    "/kpis/{measure}.csv",
    summary=f"One measure as a CSV table: {', '.join(MEASURES)}",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def kpi_table(
    measure: str,
    services: ServicesDep,
    viewer: ViewerDep,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    community: Community = None,
    kind: Kind = None,
    bucket: Bucket = "month",
) -> Response:
    """The same figures as ``GET /api/kpis``, one table per measure; formula-like cells are made inert."""
    if measure not in MEASURES:
        raise ApiError(ErrorCode.NOT_FOUND, f"no measure {measure!r}: one of {', '.join(MEASURES)}")
    filters = KpiFilters(date_from=date_from, date_to=date_to, community=community, kind=kind, bucket=bucket)
    table = services.kpis.table(viewer, filters, measure)
    return Response(
        table.csv(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="compagnon-{measure}.csv"'},
    )
