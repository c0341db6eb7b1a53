"""Signing in and out, who am I, and the admins' account management (users, API tokens)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, Field, SecretStr

from api.deps import SESSION_COOKIE, AccountsDep, AdminDep, SettingsDep, ViewerDep

router = APIRouter(prefix="/api", tags=["accounts"])


class Credentials(BaseModel):
    """A login and its password."""

    login: str = Field(min_length=1, max_length=100, examples=["julie"])
    password: SecretStr = Field(min_length=1, max_length=1024)


class NewUser(BaseModel):
    """An account to create; without a password it signs in with API tokens only."""

    login: str = Field(min_length=1, max_length=100, examples=["julie"])
    role: str = Field(examples=["employee"], description="employee, facilitator, hr or admin")
    password: SecretStr | None = Field(default=None, max_length=1024)
    person: str | None = Field(
        default=None, max_length=200, description="The participant this account is (their full name in the notes)."
    )
    communities: list[str] = Field(default_factory=list, max_length=100, examples=[["maintenance"]])


@router.post("/auth/login", summary="Sign in: sets the session cookie; returns the CSRF token for unsafe requests")
def login(body: Credentials, accounts: AccountsDep, settings: SettingsDep, response: Response) -> dict[str, Any]:
    """A browser session; send ``X-CSRF-Token`` with every POST, PUT, PATCH and DELETE made with the cookie."""
    opened = accounts.open_session(body.login, body.password.get_secret_value())
    response.set_cookie(
        SESSION_COOKIE,
        opened.cookie,
        max_age=int(accounts.session_hours * 3600),
        httponly=True,
        samesite="lax",
        secure=settings.https,
        path="/",
    )
    user = opened.user
    return {"login": user.login, "role": user.role, "person": user.person, "csrf_token": opened.csrf_token}


@router.post("/auth/logout", status_code=204, summary="Sign out: the session cookie stops working")
def logout(request: Request, _viewer: ViewerDep, accounts: AccountsDep, settings: SettingsDep) -> Response:
    """Ends the browser session (a bearer token stays valid: revoke it to end it)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        accounts.close_session(cookie)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.https)
    return response


@router.get("/auth/me", summary="Who the request acts as, and what they may do")
def me(viewer: ViewerDep) -> dict[str, Any]:
    """The login, role, person and communities of the caller, and their rights."""
    return {
        "login": viewer.label,
        "role": viewer.role,
        "person": viewer.person_name,
        "communities": sorted(viewer.communities),
        "may_upload": viewer.may_upload,
        "may_review": viewer.may_review,
        "may_manage_accounts": viewer.may_manage_accounts,
    }


@router.get("/users", summary="Every account (admins)")
def list_users(_admin: AdminDep, accounts: AccountsDep) -> dict[str, Any]:
    """Accounts by login, with role, person, communities and whether they are disabled."""
    return {"users": [user.as_json() for user in accounts.list_users()]}


@router.post("/users", status_code=201, summary="Create an account (admins)")
def create_user(body: NewUser, _admin: AdminDep, accounts: AccountsDep) -> dict[str, Any]:
    """The new account (its password is hashed with argon2, never returned)."""
    password = body.password.get_secret_value() if body.password is not None else None
    return accounts.create_user(body.login, body.role, password, body.person, body.communities).as_json()


@router.post("/users/{login}/disable", summary="Disable an account: its tokens and sessions stop working (admins)")
def disable_user(login: str, _admin: AdminDep, accounts: AccountsDep) -> dict[str, Any]:
    """The disabled account."""
    return accounts.disable(login).as_json()


@router.post("/users/{login}/tokens", status_code=201, summary="Issue an API token (admins); shown once")
def issue_token(
    login: str,
    _admin: AdminDep,
    accounts: AccountsDep,
    name: Annotated[str, Body(embed=True, max_length=100, examples=["weekly import script"])] = "",
) -> dict[str, Any]:
    """The token's id (to revoke it) and its secret, which is not stored and cannot be shown again."""
    return accounts.issue_token(login, name).as_json()


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token (admins)")
def revoke_token(token_id: str, _admin: AdminDep, accounts: AccountsDep) -> Response:
    """The token stops working at once."""
    accounts.revoke_token(token_id)
    return Response(status_code=204)
