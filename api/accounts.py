"""Accounts: users and their roles, argon2 passwords, hashed API tokens, web sessions and community memberships.

Secrets (API tokens, session cookies, CSRF tokens) are random 32-byte urlsafe strings, handed out once and
stored only as SHA-256 hashes: a copy of the database lets nobody sign in. Passwords are hashed with argon2id
and never logged or returned.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from api.errors import ApiError, ErrorCode
from retrieval.access import ROLES, Viewer, account_viewer
from retrieval.records import MembershipRecord, PersonRecord, TokenRecord, UserRecord, WebSessionRecord

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
# A token's last use is recorded to the minute: one write a minute per token, not one per request.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)
_LOGIN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-@")


def secret_hash(secret: str) -> str:
    """The SHA-256 hex digest under which a token, cookie or CSRF secret is stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _aware(moment: dt.datetime) -> dt.datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class UserView:
    """An account as listed (never with its password hash)."""

    login: str
    role: str
    person: str | None
    communities: tuple[str, ...]
    disabled: bool
    has_password: bool

    def as_json(self) -> dict[str, Any]:
        """The account in the shape of ``users list --json`` and ``GET /api/users``."""
        return {
            "login": self.login,
            "role": self.role,
            "person": self.person,
            "communities": list(self.communities),
            "disabled": self.disabled,
            "has_password": self.has_password,
        }


@dataclass(frozen=True)
class IssuedToken:
    """A new API token: the secret is shown here once and never again."""

    id: str
    login: str
    name: str
    token: str

    def as_json(self) -> dict[str, Any]:
        """The token as ``POST /api/users/{login}/tokens`` answers it."""
        return {"id": self.id, "login": self.login, "name": self.name, "token": self.token}


@dataclass(frozen=True)
class WebSession:
    """A new browser session: the cookie value and the CSRF token go to the browser, only their hashes stay."""

    cookie: str
    csrf_token: str
    expires_at: dt.datetime
    user: UserView


@dataclass(frozen=True)
class SessionViewer:
    """Who a session cookie belongs to, and the hash its unsafe requests' CSRF token must match."""

    viewer: Viewer
    csrf_hash: str

    def accepts_csrf(self, token: str | None) -> bool:
        """Whether a request's ``X-CSRF-Token`` is this session's."""
        return token is not None and hmac.compare_digest(secret_hash(token), self.csrf_hash)


def _unauthorized(detail: str) -> ApiError:
    return ApiError(ErrorCode.UNAUTHORIZED, detail)


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise ApiError(ErrorCode.INVALID_REQUEST, f"role must be one of {', '.join(ROLES)}")
    return role


def _check_login(login: str) -> str:
    login = login.strip().lower()
    if not 1 <= len(login) <= 100 or not set(login) <= _LOGIN_CHARS:
        raise ApiError(ErrorCode.INVALID_REQUEST, "a login is 1 to 100 of a-z, 0-9, '.', '_', '-', '@'")
    return login


def _check_password(password: str) -> str:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ApiError(
            ErrorCode.INVALID_REQUEST,
            f"a password has {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters",
        )
    return password


class Accounts:
    """Creates and checks accounts over the records' session factory."""

    def __init__(
        self,
        sessions: sessionmaker,  # type: ignore[type-arg]
        session_hours: float = 12.0,
        hasher: PasswordHasher | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.sessions = sessions
        self.session_hours = session_hours
        self.hasher = hasher or PasswordHasher()
        self.clock = clock

    # ----- users --------------------------------------------------------------------------

    def create_user(
        self,
        login: str,
        role: str,
        password: str | None = None,
        person: str | None = None,
        communities: Iterable[str] = (),
    ) -> UserView:
        """Create an account; without a password it signs in with API tokens only."""
        login = _check_login(login)
        _check_role(role)
        password_hash = self.hasher.hash(_check_password(password)) if password is not None else None
        try:
            with self.sessions.begin() as session:
                user = UserRecord(login=login, role=role, password_hash=password_hash)
                if person and person.strip():
                    user.person_id = self._person_id(session, person.strip())
                for community in sorted({c.strip() for c in communities if c.strip()}):
                    user.memberships.append(MembershipRecord(community=community))
                session.add(user)
        except IntegrityError as exc:
            raise ApiError(ErrorCode.INVALID_REQUEST, f"there is already a user {login!r}") from exc
        return self.get_user(login)

    @staticmethod
    def _person_id(session: Session, name: str) -> int:
        # A newcomer may have an account before taking part in any session: their person is created now,
        # and the notes they later take part in are linked to it by name, as ingestion does.
        person = session.scalar(select(PersonRecord).where(PersonRecord.name == name))
        if person is None:
            person = PersonRecord(name=name)
            session.add(person)
            session.flush()
        return person.id

    def get_user(self, login: str) -> UserView:
        """One account."""
        with self.sessions() as session:
            return _user_view(self._user(session, login))

    def list_users(self) -> list[UserView]:
        """Every account, by login."""
        with self.sessions() as session:
            return [_user_view(user) for user in session.scalars(select(UserRecord).order_by(UserRecord.login))]

    def set_password(self, login: str, password: str) -> None:
        """Replace an account's password."""
        password_hash = self.hasher.hash(_check_password(password))
        with self.sessions.begin() as session:
            self._user(session, login).password_hash = password_hash

    def disable(self, login: str) -> UserView:
        """Disable an account: its tokens and sessions stop working at once (the tokens stay listed as revoked)."""
        with self.sessions.begin() as session:
            user = self._user(session, login)
            user.disabled = True
            now = self.clock()
            for token in session.scalars(
                select(TokenRecord).where(TokenRecord.user_id == user.id, TokenRecord.revoked_at.is_(None))
            ):
                token.revoked_at = now
            session.execute(delete(WebSessionRecord).where(WebSessionRecord.user_id == user.id))
        return self.get_user(login)

    def viewer(self, login: str) -> Viewer:
        """The viewer an enabled account acts as (the CLI's ``--as LOGIN``)."""
        with self.sessions() as session:
            user = self._user(session, login)
            if user.disabled:
                raise _unauthorized(f"the user {user.login!r} is disabled")
            return account_viewer(session, user)

    @staticmethod
    def _user(session: Session, login: str) -> UserRecord:
        user = session.scalar(select(UserRecord).where(UserRecord.login == login.strip().lower()))
        if user is None:
            raise ApiError(ErrorCode.NOT_FOUND, f"no user {login!r}")
        return user

    # ----- passwords ----------------------------------------------------------------------

    def verify_password(self, login: str, password: str) -> UserView:
        """The account whose login and password these are; any mismatch is the same 401."""
        refused = _unauthorized("wrong login or password")
        with self.sessions.begin() as session:
            user = session.scalar(select(UserRecord).where(UserRecord.login == login.strip().lower()))
            stored = user.password_hash if user is not None else None
            if user is None or stored is None or user.disabled:
                # Hash anyway, so that an unknown login answers as slowly as a wrong password.
                self.hasher.hash(password)
                raise refused
            try:
                self.hasher.verify(stored, password)
            except (VerificationError, InvalidHashError) as exc:
                raise refused from exc
            if self.hasher.check_needs_rehash(stored):
                user.password_hash = self.hasher.hash(password)
            return _user_view(user)

    # ----- API tokens ---------------------------------------------------------------------

    def issue_token(self, login: str, name: str = "") -> IssuedToken:
        """A new API token for an account; its secret is returned once, only its hash is kept."""
        token = secrets.token_urlsafe(32)
        token_id = "tok_" + secrets.token_hex(8)
        with self.sessions.begin() as session:
            user = self._user(session, login)
            if user.disabled:
                raise ApiError(ErrorCode.INVALID_REQUEST, f"the user {user.login!r} is disabled")
            session.add(
                TokenRecord(
                    id=token_id,
                    user_id=user.id,
                    token_hash=secret_hash(token),
                    name=name[:100],
                    created_at=self.clock(),
                )
            )
            return IssuedToken(id=token_id, login=user.login, name=name[:100], token=token)

    def revoke_token(self, token_id: str) -> None:
        """Revoke an API token (it stays listed, with its revocation time)."""
        with self.sessions.begin() as session:
            token = session.get(TokenRecord, token_id)
            if token is None:
                raise ApiError(ErrorCode.NOT_FOUND, f"no token {token_id!r}")
            if token.revoked_at is None:
                token.revoked_at = self.clock()

    def token_viewer(self, token: str) -> Viewer:
        """The viewer of a bearer token; unknown, revoked and disabled users' tokens are refused."""
        now = self.clock()
        with self.sessions() as session:
            record = session.scalar(select(TokenRecord).where(TokenRecord.token_hash == secret_hash(token)))
            if record is None or record.revoked_at is not None:
                raise _unauthorized("the bearer token is not valid")
            user = session.get(UserRecord, record.user_id)
            if user is None or user.disabled:
                raise _unauthorized("the bearer token is not valid")
            viewer = account_viewer(session, user)
            stale = record.last_used_at is None or _aware(record.last_used_at) < now - LAST_USED_RESOLUTION
        if stale:
            # A write of its own, not an upgrade of the read above: SQLite refuses that upgrade outright when
            # another process wrote meanwhile, and a token used by a script must not make it fail.
            with self.sessions.begin() as session:
                session.execute(update(TokenRecord).where(TokenRecord.id == record.id).values(last_used_at=now))
        return viewer

    # ----- web sessions -------------------------------------------------------------------

    def open_session(self, login: str, password: str) -> WebSession:
        """Sign in with a password: a new session cookie and its CSRF token."""
        user = self.verify_password(login, password)
        cookie = secrets.token_urlsafe(32)
        csrf_token = secrets.token_urlsafe(32)
        now = self.clock()
        expires_at = now + dt.timedelta(hours=self.session_hours)
        with self.sessions.begin() as session:
            record = self._user(session, user.login)
            # Expired sessions are swept here, the one moment a user is known to be about to get a new one.
            session.execute(
                delete(WebSessionRecord).where(WebSessionRecord.user_id == record.id, WebSessionRecord.expires_at < now)
            )
            session.add(
                WebSessionRecord(
                    id=secret_hash(cookie),
                    user_id=record.id,
                    csrf_hash=secret_hash(csrf_token),
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return WebSession(cookie=cookie, csrf_token=csrf_token, expires_at=expires_at, user=user)

    def session_viewer(self, cookie: str) -> SessionViewer:
        """The viewer of a session cookie; unknown, expired and disabled users' sessions are refused."""
        with self.sessions() as session:
            record = session.get(WebSessionRecord, secret_hash(cookie))
            if record is None or _aware(record.expires_at) <= self.clock():
                raise _unauthorized("the session has expired; sign in again")
            user = session.get(UserRecord, record.user_id)
            if user is None or user.disabled:
                raise _unauthorized("the session has expired; sign in again")
            return SessionViewer(viewer=account_viewer(session, user), csrf_hash=record.csrf_hash)

    def close_session(self, cookie: str) -> None:
        """Sign out: the session cookie stops working."""
        with self.sessions.begin() as session:
            session.execute(delete(WebSessionRecord).where(WebSessionRecord.id == secret_hash(cookie)))


def _user_view(user: UserRecord) -> UserView:
    return UserView(
        login=user.login,
        role=user.role,
        person=user.person.name if user.person is not None else None,
        communities=tuple(m.community for m in user.memberships),
        disabled=user.disabled,
        has_password=user.password_hash is not None,
    )


@dataclass(frozen=True)
class DemoAccount:
    """An account of the demo company, with the password the README lists."""

    login: str
    role: str
    person: str | None
    password: str


# Demo mode only (``compagnon demo``): nothing else ever starts with a known password.
DEMO_ACCOUNTS = (
    DemoAccount("julie", "employee", "Julie Fabre", "compagnon-demo-julie"),
    DemoAccount("karim", "facilitator", "Karim Benali", "compagnon-demo-karim"),
    DemoAccount("rh", "hr", None, "compagnon-demo-rh"),
    DemoAccount("admin", "admin", None, "compagnon-demo-admin"),
)


def create_demo_accounts(accounts: Accounts) -> list[str]:
    """Create the demo accounts that do not exist yet; returns their logins."""
    existing = {user.login for user in accounts.list_users()}
    created = []
    for demo in DEMO_ACCOUNTS:
        if demo.login not in existing:
            accounts.create_user(demo.login, demo.role, demo.password, demo.person)
            created.append(demo.login)
    return created
