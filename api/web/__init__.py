"""The web app: ``GET /`` serves the single page, ``/static/...`` its modules, styles and dictionaries."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "mount_static", "router"]

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    """The page shell; revalidated on every load so that a new release is picked up at once."""
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})


def mount_static(app: FastAPI) -> None:
    """Serve the web app's files under ``/static`` (revalidated by ETag, never listed)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
