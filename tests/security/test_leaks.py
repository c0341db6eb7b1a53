"""Leak tests: no private or community string reaches, over HTTP or in the logs, anyone not entitled to it.

A corpus of 30 notes (``tests/data/leaks``: public circles, community notes of maintenance and of qualite,
private mentoring and pair notes, in French and English) is uploaded once for the module; the extraction jobs
run and HR approves entries of the shared notes. Every private and community note carries canaries (a
codename, a phone-like number, a rare phrase, a third person named only there, its title, the names of
participants who appear nowhere else, its ids). Then each caller (employees of maintenance and of qualite, a
facilitator who led one private session, HR, an admin, the bootstrap admin token, a mentee, an anonymous
caller) fires requests aimed at what they may not read, and every field of every response (SSE streams
included) is scanned for the canaries of the notes that caller may not read. The entitlement is computed
here from the README's policy, independently of ``retrieval.access``. The application's log records are
scanned too. The counts are written to ``.reports/leaks.json`` and printed at the end of the module.
"""

from __future__ import annotations

import json
import logging
import re
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.accounts import Accounts
from api.app import create_app
from api.services import Services, build_services
from api.settings import ApiSettings
from capture.settings import CaptureSettings
from retrieval.access import Viewer
from retrieval.embedders import Embedder
from retrieval.settings import RetrievalSettings

DATA = Path(__file__).parents[1] / "data" / "leaks"
REPORT = Path(__file__).parents[2] / ".reports" / "leaks.json"
ADMIN_TOKEN = "leaks-bootstrap-admin-token-0123456789"
# The application's loggers, and the server's (unused by TestClient, captured should they ever log).
LOGGERS = ("capture", "retrieval", "api", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "starlette")
STATUSES = ("draft", "approved", "rejected", "merged", "superseded")
# Sentences shorter than this are too generic to be a note's own ("Astuce, écris une fiche.").
MIN_SENTENCE_CHARS = 30


def fold(text: str) -> str:
    """Lower case without accents, so that a canary is found whatever the casing or accent folding."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def canary_pattern(canary: str) -> str:
    """A regex for a canary: any run of spaces or separators between its words or digit groups."""
    words = re.split(r"[\s.\-]+", fold(canary).strip())
    return r"[\s.\-]*".join(re.escape(word) for word in words if word)


@dataclass(frozen=True)
class CorpusNote:
    """A note of the leak corpus, with its canaries and the probes aimed at it."""

    external_id: str
    title: str
    kind: str
    community: str
    date: str
    visibility: str
    participants: tuple[tuple[str, str], ...]
    text: str
    canaries: tuple[str, ...]
    probes: tuple[str, ...]
    people: tuple[str, ...]

    @property
    def names(self) -> frozenset[str]:
        """The names of the note's participants."""
        return frozenset(name for name, _ in self.participants)

    def sentences(self) -> list[str]:
        """The note's own sentences (speaker labels removed), long enough to be its own."""
        found = []
        for line in self.text.splitlines():
            body = line.split(":", 1)[1] if ":" in line[:30] else line
            for sentence in re.split(r"(?<=[.;!?])\s+", body.strip().lstrip("# ")):
                if len(sentence) >= MIN_SENTENCE_CHARS:
                    found.append(sentence.strip())
        return found


def load_corpus() -> list[CorpusNote]:
    """The notes of ``tests/data/leaks/manifest.jsonl``; each title is the note's first line."""
    notes = []
    for line in (DATA / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        text = (DATA / "notes" / row["file"]).read_text(encoding="utf-8")
        title = text.splitlines()[0].lstrip("# ").strip()
        canaries = row.get("canaries", {})
        people = tuple(canaries.get("people", ()))
        marks = [canaries[key] for key in ("codename", "phone", "phrase", "person") if key in canaries]
        notes.append(
            CorpusNote(
                external_id=row["id"],
                title=title,
                kind=row["kind"],
                community=row["community"],
                date=row["date"],
                visibility=row["visibility"],
                participants=tuple((p["name"], p["role"]) for p in row["participants"]),
                text=text,
                canaries=(*marks, title, *people) if marks else (),
                probes=tuple(row.get("probes", {}).values()),
                people=people,
            )
        )
    return notes


CORPUS = load_corpus()
BY_ID = {note.external_id: note for note in CORPUS}


@dataclass(frozen=True)
class Caller:
    """Someone calling the API, and what the README's policy entitles them to read."""

    role: str
    headers: dict[str, str]
    person: str | None = None
    memberships: frozenset[str] = frozenset()
    reads_every_community: bool = False
    signed_in: bool = True

    @property
    def communities(self) -> frozenset[str]:
        """Explicit memberships, plus the communities of the public and community notes their person took part in."""
        joined = {n.community for n in CORPUS if n.visibility != "private" and self.person in n.names}
        return self.memberships | joined

    def may_read(self, note: CorpusNote) -> bool:
        """The visibility policy of the README, applied to one note of the corpus."""
        if not self.signed_in:
            return False
        if note.visibility == "public":
            return True
        if note.visibility == "community":
            return self.reads_every_community or note.community in self.communities
        return self.person is not None and self.person in note.names


@dataclass
class Tally:
    """Requests tried, responses scanned and leaks found, for one role."""

    queries: int = 0
    responses: int = 0
    leaks: int = 0


@dataclass(frozen=True)
class Leak:
    """A canary found where its reader was not entitled to it."""

    role: str
    request: str
    canary: str
    note: str


@dataclass
class Exchange:
    """One request and its decoded answer (JSON, or the SSE events)."""

    status: int
    payload: Any
    text: str


class LogRecords(logging.Handler):
    """Keeps every record of the application's loggers, formatted with its exception if any."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[tuple[str, str]] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, self.format(record)))


def sse_events(raw: str) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a server-sent event stream."""
    events = []
    for block in raw.strip().split("\n\n"):
        name, data = "message", []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").strip())
        events.append((name, json.loads("\n".join(data)) if data else None))
    return events


def leaves(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """Every (key, string) of a decoded JSON value: keys, strings and numbers, at any depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield "", str(k)
            yield from leaves(v, str(k))
    elif isinstance(value, list):
        for item in value:
            yield from leaves(item, key)
    elif value is not None:
        yield key, str(value)


def unechoed(detail: str, sent: list[str]) -> str:
    """An error's detail without the identifiers the request itself sent ("no note 'ID'")."""
    for echoed in sorted(sent, key=len, reverse=True):
        detail = detail.replace(echoed, "")
    return detail


@dataclass
class Scanner:
    """Sends requests as a caller and scans every field of the answer for what that caller may not read."""

    client: TestClient
    note_ids: dict[str, str]
    tallies: dict[str, Tally] = field(default_factory=dict)
    leaks: list[Leak] = field(default_factory=list)
    # Every question and comment sent: what the asker typed, which HR reads by design (not note content).
    typed: set[str] = field(default_factory=set)
    _patterns: dict[str, tuple[re.Pattern[str], list[tuple[re.Pattern[str], str, str]]]] = field(default_factory=dict)

    def forbidden(self, caller: Caller) -> tuple[re.Pattern[str], list[tuple[re.Pattern[str], str, str]]]:
        """One pattern for every canary of the notes the caller may not read, and each on its own."""
        if caller.role not in self._patterns:
            marks: list[tuple[str, str]] = []
            for note in CORPUS:
                if note.visibility == "public" or caller.may_read(note):
                    continue
                strings = [*note.canaries, note.external_id, self.note_ids[note.external_id], *note.sentences()]
                marks.extend((canary, note.external_id) for canary in strings)
            single = [(re.compile(canary_pattern(c)), c, n) for c, n in marks]
            combined = re.compile("|".join(f"(?:{p.pattern})" for p, _, _ in single) or r"(?!x)x")
            self._patterns[caller.role] = (combined, single)
        return self._patterns[caller.role]

    def tally(self, caller: Caller) -> Tally:
        return self.tallies.setdefault(caller.role, Tally())

    def send(
        self,
        caller: Caller,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Exchange:
        """Send one request as the caller, scan the answer, and return it decoded."""
        self.tally(caller).queries += 1
        sent = [*path.split("/"), *(str(v) for v in (params or {}).values()), *(s for _, s in leaves(body))]
        if path.endswith("/ask") or path.endswith("/ask/stream") or path.endswith("/feedback"):
            self.typed.update(s for _, s in leaves(body))
        if path.endswith("/stream"):
            with self.client.stream(method, path, json=body, headers=caller.headers) as streamed:
                text = "".join(streamed.iter_text())
                status = streamed.status_code
                headers = dict(streamed.headers)
            payload: Any = sse_events(text) if status == 200 else json.loads(text)
        else:
            response: Response = self.client.request(method, path, params=params, json=body, headers=caller.headers)
            text, status, headers = response.text, response.status_code, dict(response.headers)
            payload = response.json() if text and "json" in response.headers.get("content-type", "") else text
        self.scan(caller, f"{method} {path} {params or ''} {body or ''}", status, payload, headers, sent)
        return Exchange(status, payload, text)

    def scan(
        self, caller: Caller, request: str, status: int, payload: Any, headers: dict[str, str], sent: list[str]
    ) -> None:
        """Look for the caller's forbidden canaries in every field, minus the echo of what the request itself sent."""
        self.tally(caller).responses += 1
        fields: list[str] = [f"{k}: {v}" for k, v in headers.items()]
        for key, value in leaves(payload):
            if key == "query" and value in sent:
                continue  # search echoes the query it was sent
            if key in ("question", "comment") and value in self.typed:
                continue  # what an asker typed: HR reads the questions asked by design
            fields.append(unechoed(value, sent) if status >= 400 and key == "detail" else value)
        haystack = fold("\n".join(fields))
        combined, single = self.forbidden(caller)
        if not combined.search(haystack):
            return
        for pattern, canary, note in single:
            if pattern.search(haystack):
                self.tally(caller).leaks += 1
                self.leaks.append(Leak(caller.role, request[:300], canary, note))


@dataclass
class World:
    """The services, the HTTP client, the callers and the stored corpus, shared by the module's tests."""

    services: Services
    client: TestClient
    scanner: Scanner
    callers: dict[str, Caller]
    note_ids: dict[str, str]
    logs: LogRecords
    mentee_questions: list[str]


def wait_for_jobs(client: TestClient, headers: dict[str, str], count: int) -> None:
    """Until the uploader sees ``count`` extraction jobs, every one of them finished."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = client.get("/api/jobs", params={"limit": 500}, headers=headers).json()["jobs"]
        if len(jobs) >= count and all(job["status"] not in ("pending", "running") for job in jobs):
            assert len(jobs) == count and all(job["status"] == "done" for job in jobs), jobs
            return
        time.sleep(0.2)
    raise AssertionError("extraction did not finish")


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    embedder: Embedder,
    group_embedder: Embedder,
    request: pytest.FixtureRequest,
) -> Iterator[World]:
    """The corpus uploaded, extracted and partly approved, and one account per role."""
    logs = LogRecords()
    levels = {}
    for name in LOGGERS:
        logger = logging.getLogger(name)
        levels[name] = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(logs)
    data_dir = tmp_path_factory.mktemp("leaks") / "data"
    services = build_services(
        RetrievalSettings(data_dir=data_dir), CaptureSettings(), embedder=embedder, group_embedder=group_embedder
    )
    app = create_app(ApiSettings(admin_token=ADMIN_TOKEN, ask_rate_limit=100_000), services)
    try:
        with TestClient(app) as client:
            built = build_world(services, client, logs)
            yield built
            report(built, request.config)
    finally:
        services.close()
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(logs)
            logging.getLogger(name).setLevel(levels[name])


def build_world(services: Services, client: TestClient, logs: LogRecords) -> World:
    """Accounts, uploads, extraction, HR's approvals and the mentee's questions."""
    accounts = Accounts(services.knowledge.sessions)

    def account(login: str, role: str, person: str | None = None, *communities: str) -> dict[str, str]:
        accounts.create_user(login, role, person=person, communities=communities)
        return {"Authorization": f"Bearer {accounts.issue_token(login, 'leaks').token}"}

    callers = {
        "employee_maintenance": Caller(
            "employee_maintenance",
            account("maelle", "employee", "Maelle Dubreuil", "maintenance"),
            "Maelle Dubreuil",
            frozenset({"maintenance"}),
        ),
        "employee_qualite": Caller(
            "employee_qualite",
            account("quentin", "employee", "Quentin Arbogast", "qualite"),
            "Quentin Arbogast",
            frozenset({"qualite"}),
        ),
        "facilitator": Caller("facilitator", account("karim", "facilitator", "Karim Benali"), "Karim Benali"),
        "hr": Caller("hr", account("rh", "hr"), reads_every_community=True),
        "admin": Caller("admin", account("adele", "admin", "Adele Vautrin"), "Adele Vautrin"),
        "bootstrap_admin": Caller("bootstrap_admin", {"Authorization": f"Bearer {ADMIN_TOKEN}"}),
        "mentee": Caller("mentee", account("ysaline", "employee", "Ysaline Kerjean"), "Ysaline Kerjean"),
        "anonymous": Caller("anonymous", {}, signed_in=False),
    }
    uploader = callers["bootstrap_admin"].headers
    note_ids = {}
    for note in CORPUS:
        body = {
            "text": note.text,
            "title": note.title,
            "kind": note.kind,
            "community": note.community,
            "date": note.date,
            "visibility": note.visibility,
            "id": note.external_id,
            "participants": [{"name": name, "role": role} for name, role in note.participants],
        }
        response = client.post("/api/notes", json=body, headers=uploader)
        assert response.status_code == 201, response.text
        note_ids[note.external_id] = response.json()["note_id"]
    # The bootstrap admin follows the jobs of the shared notes it uploaded; a private note's are its participants'.
    wait_for_jobs(client, uploader, sum(note.visibility != "private" for note in CORPUS))
    deadline = time.monotonic() + 300
    while any(job.status != "done" for job in services.jobs.list_jobs(Viewer.administrator(), limit=500)):
        assert time.monotonic() < deadline, "the extraction of the private notes did not finish"
        time.sleep(0.2)

    # HR approves one entry of every community note and of two public notes (never sees a private draft).
    hr = callers["hr"].headers
    drafts = client.get("/api/practices", params={"status": "draft"}, headers=hr).json()["practices"]
    approve = {n.external_id for n in CORPUS if n.visibility == "community"} | {"leaks-pub-01", "leaks-pub-06"}
    for external_id in sorted(approve):
        mine = [d for d in drafts if {e["note_id"] for e in d["evidence"]} == {note_ids[external_id]}]
        assert mine, f"no draft of {external_id}"
        approved = client.post(f"/api/practices/{mine[0]['id']}/approve", headers=hr)
        assert approved.status_code == 200, approved.text

    scanner = Scanner(client, note_ids)
    # The mentee asks about her own mentoring: her questions and their answers are recorded (HR lists them).
    mentee = callers["mentee"]
    questions = []
    for question in ("Qui prépare en cachette une candidature au bureau des méthodes ?", "Où garder ma lettre ?"):
        asked = scanner.send(mentee, "POST", "/api/ask", body={"question": question})
        assert asked.status == 200, asked.text
        questions.append(asked.payload["question_id"])
    return World(services, client, scanner, callers, note_ids, logs, questions)


def report(world: World, config: pytest.Config) -> None:
    """The counts per role, written to ``.reports/leaks.json`` and printed at the end of the module."""
    tallies = world.scanner.tallies
    summary = {
        "queries": sum(t.queries for t in tallies.values()),
        "responses": sum(t.responses for t in tallies.values()),
        "leaks": sum(t.leaks for t in tallies.values()),
        "log_records": len(world.logs.records),
        "per_role": {role: vars(t) for role, t in sorted(tallies.items())},
    }
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"leak tally: {json.dumps(summary)}")


def test_the_canaries_are_each_in_their_own_note_only() -> None:
    counts = Counter(note.visibility for note in CORPUS)
    assert counts == {"public": 10, "community": 10, "private": 10}
    assert {n.community for n in CORPUS if n.visibility == "community"} == {"maintenance", "qualite"}
    for note in CORPUS:
        if note.visibility == "public":
            continue
        assert len(note.canaries) >= 5 and len(note.probes) == 3, note.external_id
        for canary in note.canaries:
            pattern = re.compile(canary_pattern(canary))
            homes = [o.external_id for o in CORPUS if pattern.search(fold(o.text + "\n".join(o.names)))]
            assert homes == [note.external_id], (canary, homes)


def test_entitled_callers_find_their_canaries(world: World) -> None:
    scanner, callers, ids = world.scanner, world.callers, world.note_ids

    def hits(caller: Caller, query: str) -> set[str]:
        found = scanner.send(caller, "GET", "/api/search", params={"q": query})
        assert found.status == 200, found.text
        return {hit["note_id"] for hit in found.payload["hits"] if fold(query) in fold(hit["text"] + hit["title"])}

    # The mentee finds her mentoring note's canaries in search and in the citations of an answer.
    mentee, prv01 = callers["mentee"], BY_ID["leaks-prv-01"]
    assert ids[prv01.external_id] in hits(mentee, "HIBISCUS-23")
    assert ids[prv01.external_id] in hits(mentee, "Archibald Ténèbre")
    question = {"question": "Où garder ma lettre de candidature au bureau des méthodes ?"}
    answer = scanner.send(mentee, "POST", "/api/ask", body=question)
    cited = [c for c in answer.payload["citations"] if c["note_id"] == ids[prv01.external_id]]
    assert cited and any("HIBISCUS-23" in c["quote"] for c in cited), answer.payload
    streamed = scanner.send(mentee, "POST", "/api/ask/stream", body={"question": "Who is the HIBISCUS-23 project for?"})
    citations = dict(streamed.payload)["citations"]
    assert any(c["note_id"] == ids[prv01.external_id] for c in citations), streamed.payload
    assert scanner.send(mentee, "GET", f"/api/notes/{prv01.external_id}").status == 200

    # Members find their community's canaries; the facilitator's public qualite circle made him a member.
    expected = {
        "employee_maintenance": ("maintenance",),
        "employee_qualite": ("qualite",),
        "facilitator": ("qualite",),
        "hr": ("maintenance", "qualite"),
    }
    for role, communities in expected.items():
        for note in CORPUS:
            if note.visibility == "community" and note.community in communities:
                codename = note.canaries[0]
                assert ids[note.external_id] in hits(callers[role], codename), (role, codename)
        approved = scanner.send(callers[role], "GET", "/api/practices", params={"status": "approved"}).payload
        sources = {e["note_id"] for p in approved["practices"] for e in p["evidence"]}
        assert {ids[n.external_id] for n in CORPUS if n.community in communities and n.visibility == "community"} <= (
            sources
        ), role

    # The facilitator finds the private session he led, and its drafts are his to see; HR never sees one.
    facilitator, prv02 = callers["facilitator"], BY_ID["leaks-prv-02"]
    assert ids[prv02.external_id] in hits(facilitator, "SALAMANDRE-64")
    drafts = scanner.send(facilitator, "GET", "/api/practices", params={"status": "draft"}).payload["practices"]
    assert any(e["note_id"] == ids[prv02.external_id] for d in drafts for e in d["evidence"])
    private = {ids[n.external_id] for n in CORPUS if n.visibility == "private"}
    hr_drafts = scanner.send(callers["hr"], "GET", "/api/practices", params={"status": "draft"}).payload["practices"]
    assert hr_drafts and not {e["note_id"] for d in hr_drafts for e in d["evidence"]} & private
    # Drafts of a private note stay with its mentor: the mentee reads the note, not its drafts.
    mentee_drafts = scanner.send(mentee, "GET", "/api/practices", params={"status": "draft"}).payload["practices"]
    assert mentee_drafts == []

    # Everyone signed in reads the public notes; the anonymous caller gets nothing.
    for caller in callers.values():
        found = scanner.send(caller, "GET", "/api/search", params={"q": "kit de joints la veille"})
        if caller.signed_in:
            assert ids["leaks-pub-01"] in {hit["note_id"] for hit in found.payload["hits"]}, caller.role
        else:
            assert found.status == 401
    assert not scanner.leaks, scanner.leaks


def probe_note(
    scanner: Scanner, caller: Caller, note: CorpusNote, note_id: str, entries: list[dict[str, Any]], heavy: bool
) -> None:
    """Requests aimed at one note the caller may not read; ``heavy`` adds the asks and experts (CPU-bound)."""
    codename, phone, phrase, person = note.canaries[:4]
    sentence, paraphrase, translation = note.probes
    scanner.send(caller, "GET", "/api/search", params={"q": f"{codename} {phone} {person} {note.title}", "k": 50})
    scanner.send(caller, "GET", "/api/search", params={"q": sentence, "mode": "lexical", "kind": note.kind})
    scanner.send(caller, "GET", "/api/search", params={"q": translation, "mode": "dense", "community": note.community})
    if heavy:
        scanner.send(caller, "POST", "/api/ask", body={"question": paraphrase})
        scanner.send(caller, "POST", "/api/ask/stream", body={"question": f"{codename} : {phrase} ?"})
        scanner.send(caller, "GET", "/api/experts", params={"q": translation, "k": 20})
    for identifier in (note_id, note.external_id):
        scanner.send(caller, "GET", f"/api/notes/{identifier}")
        scanner.send(caller, "DELETE", f"/api/notes/{identifier}")
    scanner.send(caller, "GET", "/api/practices", params={"note_id": note_id})
    for status in STATUSES:
        scanner.send(caller, "GET", "/api/practices", params={"note_id": note_id, "status": status})
    scanner.send(caller, "GET", "/api/audit", params={"target_id": note_id})
    for entry in entries:
        scanner.send(caller, "GET", f"/api/practices/{entry['id']}")
        scanner.send(caller, "GET", f"/api/practices/{entry['id']}/history")
        scanner.send(caller, "GET", "/api/practices", params={"group_id": entry["group_id"] or entry["id"]})
        if entry["status"] == "draft":
            scanner.send(caller, "POST", f"/api/practices/{entry['id']}/approve")
            scanner.send(caller, "PATCH", f"/api/practices/{entry['id']}", body={"tags": ["leak-probe"]})


def probe_lists(scanner: Scanner, caller: Caller, mentee_questions: list[str], tags: set[str]) -> None:
    """The listings, with every filter, and the question history of others."""
    for params in (
        {},
        {"limit": 500},
        {"community": "maintenance"},
        {"community": "qualite"},
        {"kind": "mentoring"},
        {"kind": "pair"},
        {"kind": "circle"},
        {"offset": 10},
    ):
        scanner.send(caller, "GET", "/api/notes", params=params)
    scanner.send(caller, "GET", "/api/practices")
    scanner.send(caller, "GET", "/api/practices", params={"due": "true"})
    for status in STATUSES:
        scanner.send(caller, "GET", "/api/practices", params={"status": status})
    for value in ("maintenance", "qualite"):
        scanner.send(caller, "GET", "/api/practices", params={"community": value})
    for value in ("mentoring", "pair", "circle"):
        scanner.send(caller, "GET", "/api/practices", params={"kind": value})
    for tag in sorted(tags):
        scanner.send(caller, "GET", "/api/practices", params={"tag": tag})
    for params in ({}, {"answered": "true"}, {"answered": "false"}, {"limit": 500}):
        scanner.send(caller, "GET", "/api/questions", params=params)
    scanner.send(caller, "GET", "/api/feedback")
    for params in ({}, {"action": "note.read"}, {"target_type": "note"}, {"limit": 1000}):
        scanner.send(caller, "GET", "/api/audit", params=params)
    scanner.send(caller, "GET", "/api/auth/me")
    scanner.send(caller, "GET", "/api/users")
    for question_id in mentee_questions:
        scanner.send(caller, "POST", f"/api/questions/{question_id}/feedback", body={"rating": -1, "comment": "x"})


@pytest.mark.slow
def test_no_response_carries_a_string_the_caller_may_not_read(world: World) -> None:
    scanner, ids = world.scanner, world.note_ids
    everything = world.services.practices.list_practices(Viewer.administrator())
    entries: dict[str, list[dict[str, Any]]] = {}
    for entry in everything:
        for evidence in entry.evidence:
            entries.setdefault(evidence.note_id, []).append(entry.as_json())
    tags = {tag for entry in everything for tag in entry.tags}
    # The mentee also rates her own answer: a comment HR reads, and another question on her note.
    rated = scanner.send(
        world.callers["mentee"],
        "POST",
        f"/api/questions/{world.mentee_questions[0]}/feedback",
        body={"rating": 1, "comment": "merci"},
    )
    assert rated.status == 201, rated.text
    for caller in world.callers.values():
        probe_lists(scanner, caller, [] if caller.role == "mentee" else world.mentee_questions, tags)
        forbidden = [n for n in CORPUS if n.visibility != "public" and not caller.may_read(n)]
        for rank, note in enumerate(forbidden):
            note_id = ids[note.external_id]
            # Asks and experts cost seconds each on 2 cores: every caller gets them on a rotating fifth of its notes.
            heavy = rank % 5 == len(scanner.tallies) % 5 and caller.signed_in
            probe_note(scanner, caller, note, note_id, entries.get(note_id, []), heavy)
    assert sum(t.queries for t in scanner.tallies.values()) > 1500
    assert {role for role, t in scanner.tallies.items() if t.responses} == set(world.callers)
    assert not scanner.leaks, "\n".join(map(str, scanner.leaks[:40]))


def test_the_jobs_list_names_only_notes_the_caller_may_read(world: World) -> None:
    for caller in world.callers.values():
        response = world.client.get("/api/jobs", params={"limit": 500}, headers=caller.headers)
        if not caller.signed_in:
            assert response.status_code == 401
            continue
        listed = {job["note_id"] for job in response.json()["jobs"]}
        readable = {world.note_ids[n.external_id] for n in CORPUS if caller.may_read(n)}
        # The uploader of the corpus also follows the jobs of the shared notes it uploaded, and only those.
        uploaded = {world.note_ids[n.external_id] for n in CORPUS if n.visibility != "private"}
        allowed = readable | uploaded if caller.role == "bootstrap_admin" else readable
        assert listed == allowed, caller.role


def test_the_logs_carry_no_note_text_and_no_canary(world: World) -> None:
    secrets = [
        (canary, note.external_id)
        for note in CORPUS
        if note.visibility != "public"
        for canary in (*note.canaries, *(note.sentences() if note.visibility == "private" else ()))
    ]
    patterns = [(re.compile(canary_pattern(canary)), canary, external_id) for canary, external_id in secrets]
    assert any(name == "retrieval.asking" for name, _ in world.logs.records), "no application log was captured"
    found = [
        (name, canary, external_id)
        for name, message in world.logs.records
        for pattern, canary, external_id in patterns
        if pattern.search(fold(message))
    ]
    assert not found, found
