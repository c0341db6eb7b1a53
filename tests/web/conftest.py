"""Browser-test harness: the real service in a subprocess, Debian's headless Chromium, signed-in pages."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.accounts import Accounts
from retrieval.database import open_database

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}
# The accounts every browser test may sign in as: login, role, person.
ACCOUNTS = (
    ("julie", "employee", "Julie Moreau"),
    ("karim", "facilitator", "Karim Benali"),
    ("rh", "hr", None),
    ("admin", "admin", None),
)
STARTUP_SECONDS = 240.0


def password_of(login: str) -> str:
    """The password of a test account (``pw-<login>-2026-web``: accounts need 12 characters at least)."""
    return f"pw-{login}-2026-web"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """The service running in a subprocess over a fresh data directory."""

    url: str
    data_dir: Path
    admin_token: str
    log: Path
    _tokens: dict[str, str] = field(default_factory=dict)

    def login_token(self, login: str) -> str:
        """An API token of that account (issued once per test session), for seeding through the API."""
        if login not in self._tokens:
            response = httpx.post(
                f"{self.url}/api/users/{login}/tokens",
                json={"name": "browser tests"},
                headers={"Authorization": f"Bearer {self.admin_token}"},
                timeout=30,
            )
            response.raise_for_status()
            self._tokens[login] = response.json()["token"]
        return self._tokens[login]

    @staticmethod
    def password(login: str) -> str:
        """The password of a test account."""
        return password_of(login)

    def client(self, login: str) -> httpx.Client:
        """An HTTP client acting as that account (bearer token); close it after use."""
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.login_token(login)}"}, timeout=120
        )


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not answer within {STARTUP_SECONDS:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``compagnon serve`` on a free loopback port, with an account for every role (see ``ACCOUNTS``)."""
    data_dir = tmp_path_factory.mktemp("live") / "data"
    data_dir.mkdir()
    sessions = open_database(f"sqlite:///{(data_dir / 'compagnon.sqlite3').resolve()}")
    accounts = Accounts(sessions)
    for login, role, person in ACCOUNTS:
        accounts.create_user(login, role, password_of(login), person)
    sessions.kw["bind"].dispose()
    port = _free_port()
    admin_token = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "COMPAGNON_DATA_DIR": str(data_dir),
        "COMPAGNON_ADMIN_TOKEN": admin_token,
        "COMPAGNON_ASK_RATE_LIMIT": "1000",
        "COMPAGNON_LOGIN_RATE_LIMIT": "1000",
    }
    env.pop("COMPAGNON_DATABASE_URL", None)
    log = data_dir.parent / "server.log"
    compagnon = Path(sys.executable).parent / "compagnon"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(compagnon), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, url, log)
        yield LiveServer(url=url, data_dir=data_dir, admin_token=admin_token, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (no browser is ever downloaded)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


# Console output that is not a fault of the page: a refused request the test provoked is logged by the browser.
_EXPECTED_CONSOLE = ("Failed to load resource",)


@pytest.fixture
def page_as(browser: Any, live_server: LiveServer) -> Iterator[Callable[..., Any]]:
    """Open a fresh browser context in a language and sign in through the login form: ``page_as("julie", "en")``.

    At the end of the test, the pages must have raised no script error, logged no console error and shown no
    missing translation.
    """
    contexts: list[Any] = []
    problems: list[str] = []

    def watch(page: Any) -> None:
        page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

        def on_console(message: Any) -> None:
            text = message.text
            if (message.type == "error" and not text.startswith(_EXPECTED_CONSOLE)) or "missing translation" in text:
                problems.append(f"console {message.type}: {text}")

        page.on("console", on_console)

    def open_page(login: str, lang: str = "fr") -> Any:
        locale = {"fr": "fr-FR", "en": "en-GB"}[lang]
        context = browser.new_context(locale=locale, viewport=VIEWPORT, base_url=live_server.url)
        contexts.append(context)
        page = context.new_page()
        watch(page)
        page.goto("/#/login")
        page.locator("#login-name").fill(login)
        page.locator("#login-password").fill(password_of(login))
        page.locator("form.login-form button[type=submit]").click()
        page.wait_for_selector("main[data-page=chat] h1")
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems, "\n".join(problems)


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    """Save ``tests/web/screenshots/<name>.png`` of a page at 1280x800 (the README shows them)."""

    def take(page: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        page.set_viewport_size(VIEWPORT)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), animations="disabled", caret="hide")
        return path

    return take


CIRCLE_TITLE = "Cercle maintenance — joints"
CIRCLE = f"""# {CIRCLE_TITLE}

## Ce qui a marché
Karim : astuce, on prépare le kit de joints complet la veille du changement de format, sinon on perd vingt minutes.

Sophie : à retenir, toujours faire un test de pelage sur trois barquettes après le remontage du joint.
"""
MENTORING_TITLE = "Mentorat confidentiel : préparer son premier audit"
MENTORING = f"""# {MENTORING_TITLE}

Karim : astuce, avant un audit on relit la check-list de sécurité la veille, au calme.
"""


@dataclass(frozen=True)
class Corpus:
    """What ``corpus`` seeded: a public circle with an approved entry, and a private mentoring julie is not in."""

    circle_id: str
    mentoring_id: str
    practice_id: str
    practice_title: str


def _wait_for_jobs(client: httpx.Client, note_id: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        jobs = client.get("/api/jobs", params={"note_id": note_id}).json()["jobs"]
        if jobs and all(job["status"] not in ("pending", "running") for job in jobs):
            return
        time.sleep(0.5)
    raise AssertionError(f"the extraction of {note_id} did not finish")


@pytest.fixture(scope="session")
def corpus(live_server: LiveServer) -> Corpus:
    """Seed the live server once through the API (re-uploads with the same ids leave the notes unchanged)."""
    with live_server.client("admin") as admin, live_server.client("rh") as hr:
        circle = admin.post(
            "/api/notes",
            json={
                "id": "web-circle-joints",
                "text": CIRCLE,
                "kind": "circle",
                "community": "maintenance",
                "date": "2026-03-12",
                "visibility": "public",
                "participants": [
                    {"name": "Karim Benali", "role": "facilitator"},
                    {"name": "Sophie Martin", "role": "member"},
                ],
            },
        )
        circle.raise_for_status()
        mentoring = admin.post(
            "/api/notes",
            json={
                "id": "web-mentoring-audit",
                "text": MENTORING,
                "kind": "mentoring",
                "community": "qualite",
                "date": "2026-04-02",
                "participants": [{"name": "Karim Benali", "role": "mentor"}, {"name": "Léa Girard", "role": "mentee"}],
            },
        )
        mentoring.raise_for_status()
        circle_id = circle.json()["note_id"]
        _wait_for_jobs(admin, circle_id)
        entries = hr.get("/api/practices", params={"note_id": circle_id}).json()["practices"]
        kit = next(entry for entry in entries if "kit" in entry["practice"])
        if kit["status"] != "approved":
            hr.post(f"/api/practices/{kit['id']}/approve").raise_for_status()
    return Corpus(circle_id, mentoring.json()["note_id"], kit["id"], kit["title"])
