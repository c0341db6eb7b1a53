"""Request dependencies: the services, and the viewer the request acts as."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from api.errors import ApiError, ErrorCode
from api.services import Services
from api.settings import ApiSettings
from retrieval.access import Viewer


def get_services(request: Request) -> Services:
    """The services wired by ``create_app``."""
    services: Services = request.app.state.services
    return services


def get_viewer(request: Request) -> Viewer:
    """The viewer of a request: admin with the admin token, else public read-only access."""
    settings: ApiSettings = request.app.state.settings
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return Viewer.public()
    expected = settings.admin_token.get_secret_value() if settings.admin_token else None
    if scheme.lower() != "bearer" or expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(ErrorCode.UNAUTHORIZED, "the bearer token is not valid")
    return Viewer.administrator()


def require_writer(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    """A viewer allowed to upload and delete notes."""
    if not viewer.sees_everything:
        raise ApiError(ErrorCode.UNAUTHORIZED, "uploading and deleting notes needs the admin bearer token")
    return viewer


ServicesDep = Annotated[Services, Depends(get_services)]
ViewerDep = Annotated[Viewer, Depends(get_viewer)]
WriterDep = Annotated[Viewer, Depends(require_writer)]
