"""Request dependencies: the services, the accounts, and the viewer the request acts as."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer

from api.accounts import Accounts
from api.errors import ApiError, ErrorCode
from api.observability import note_user
from api.services import Services
from api.settings import ApiSettings
from retrieval.access import Viewer

SESSION_COOKIE = "compagnon_session"
CSRF_HEADER = "X-CSRF-Token"
# Methods that change something: a session cookie alone is not enough for them (a browser sends it cross-site).
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Declared as security schemes so that the OpenAPI docs offer to sign in; the checks are ``get_viewer``'s.
_bearer = HTTPBearer(auto_error=False, description="An account's API token, or COMPAGNON_ADMIN_TOKEN.")
_session = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description=f"The cookie POST /api/auth/login sets; unsafe requests also send {CSRF_HEADER}.",
)


def get_services(request: Request) -> Services:
    """The services wired by ``create_app``."""
    services: Services = request.app.state.services
    return services


def get_settings(request: Request) -> ApiSettings:
    """The settings ``create_app`` was given."""
    settings: ApiSettings = request.app.state.settings
    return settings


def get_accounts(request: Request) -> Accounts:
    """The accounts, over the records database of the services."""
    return Accounts(get_services(request).knowledge.sessions, session_hours=get_settings(request).session_hours)


def bootstrap_admin() -> Viewer:
    """The viewer of ``COMPAGNON_ADMIN_TOKEN``: an admin with no person, no community and no private note."""
    return Viewer(label="bootstrap-admin", role="admin")


def get_viewer(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    cookie: Annotated[str | None, Depends(_session)],
) -> Viewer:
    """The signed-in viewer: by bearer token (an account's, or the admin token), else by session cookie.

    A request with neither is refused (401): "public" notes are public to the colleagues who signed in.
    The request's log line names the account.
    """
    viewer = _signed_in(request, bearer, cookie)
    note_user(viewer.label)
    return viewer


def _signed_in(request: Request, bearer: HTTPAuthorizationCredentials | None, cookie: str | None) -> Viewer:
    if bearer is not None:
        token = bearer.credentials
        admin_token = get_settings(request).admin_token
        if admin_token is not None and hmac.compare_digest(token.encode(), admin_token.get_secret_value().encode()):
            return bootstrap_admin()
        return get_accounts(request).token_viewer(token)
    if cookie:
        signed_in = get_accounts(request).session_viewer(cookie)
        if request.method in _UNSAFE_METHODS and not signed_in.accepts_csrf(request.headers.get(CSRF_HEADER)):
            raise ApiError(
                ErrorCode.FORBIDDEN, f"a signed-in browser must send the {CSRF_HEADER} header of its session"
            )
        return signed_in.viewer
    raise ApiError(ErrorCode.UNAUTHORIZED, "sign in (POST /api/auth/login) or send a bearer token")


def require_uploader(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    """A viewer allowed to upload and delete notes: facilitators, HR and admins."""
    if not viewer.may_upload:
        raise ApiError(ErrorCode.FORBIDDEN, "uploading and deleting notes is for facilitators, HR and admins")
    return viewer


def require_admin(viewer: Annotated[Viewer, Depends(get_viewer)]) -> Viewer:
    """A viewer allowed to manage accounts and people's settings: admins."""
    if not viewer.may_manage_accounts:
        raise ApiError(ErrorCode.FORBIDDEN, "managing accounts is for admins")
    return viewer


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
AccountsDep = Annotated[Accounts, Depends(get_accounts)]
ViewerDep = Annotated[Viewer, Depends(get_viewer)]
UploaderDep = Annotated[Viewer, Depends(require_uploader)]
AdminDep = Annotated[Viewer, Depends(require_admin)]
