"""Property-based tests of the whole HTTP API from its OpenAPI schema: no generated request gets a 5xx.

Schemathesis reads ``/openapi.json`` from the real app over real services (SQLite, Chroma, the packaged
models), seeded with a few notes, their drafts, an approved entry, a question and spare records. Every
operation then gets generated requests (valid and invalid bodies, query and path parameters, multipart
uploads of random bytes, the schema's examples, the seeded ids) and bodies the framework cannot decode, as an
HR account, an employee, an admin and anonymously. Every answer must be under 500, and every error must have
the one shape ``{"error_code", "detail"}``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, CheckContext, GenerationMode, Response
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from api.accounts import Accounts
from api.app import create_app
from api.services import Services
from api.settings import ApiSettings
from capture.ingestion import NoteMetadata
from capture.review import PracticeFilters
from retrieval.access import VISIBILITIES, Viewer
from retrieval.notes import NOTE_KINDS, ROLES, Participant

AnyCase = Case[Any]
AnyOperation = APIOperation[Any, Any, Any, Any]
# Generated requests per operation and role; anonymous requests stop at the sign-in check, a few suffice.
EXAMPLES = {"hr": 20, "employee": 20, "admin": 20, "anonymous": 4}
CIRCLE = (
    "# Cercle maintenance\n\n"
    "## Ce qui a marché\n\n"
    "Karim : astuce, il faut toujours préparer le kit de joints complet la veille du changement.\n"
    "Julie : bonne pratique, vérifier le couple de serrage avec la clé dynamométrique avant de redémarrer.\n"
)
MENTORING = "# Mentorat\n\nKarim : il faut noter chaque réglage dans le carnet de bord avant de partir.\n"
SPARE = "# Retour d'expérience\n\nPaul : we always lock out the press before cleaning the dies.\n"


@dataclass(frozen=True)
class Seed:
    """The records the fixture made, offered to the generator as path parameters."""

    tokens: dict[str, str]
    note_ids: tuple[str, ...]
    spare_note_id: str
    practice_ids: tuple[str, ...]
    question_id: str
    spare_token_id: str

    def path_values(self, method: str, name: str) -> tuple[str, ...]:
        """Known values of a path parameter; what deletes or disables gets only the spare records.

        Revoking a role's own token or disabling its account would turn the rest of the run into 401s.
        """
        destructive = method in {"DELETE", "PUT"}
        known = {
            "note_id": (self.spare_note_id,) if destructive else (*self.note_ids, self.spare_note_id),
            "practice_id": self.practice_ids,
            "question_id": (self.question_id,),
            "token_id": (self.spare_token_id,),
            "login": ("spare",),
            "name": ("Paul Lemaire",) if destructive else ("Karim Benali", "Paul Lemaire"),
        }
        return known.get(name, ())


def ingest(services: Services, text: str, visibility: str, kind: str, *people: Participant) -> str:
    metadata = NoteMetadata(
        kind=kind, community="maintenance", session_date=dt.date(2026, 3, 2), participants=people, visibility=visibility
    )
    return services.ingestor.ingest_text(text, metadata).note_id


def seed(services: Services) -> Seed:
    """Three notes and their drafts (one approved), the accounts, a question, and a spare of each."""
    karim, julie = Participant("Karim Benali", "facilitator"), Participant("Julie Fabre", "member")
    note_ids = (
        ingest(services, CIRCLE, "public", "circle", karim, julie),
        ingest(services, MENTORING, "private", "mentoring", Participant("Karim Benali", "mentor")),
    )
    spare_note_id = ingest(services, SPARE, "community", "pair", Participant("Paul Lemaire", "pair"))
    assert services.jobs.drain() == 3
    accounts = Accounts(services.knowledge.sessions)
    tokens: dict[str, str] = {}
    for login, role, person in (("helene", "hr", None), ("julie", "employee", "Julie Fabre"), ("ada", "admin", None)):
        accounts.create_user(login, role, person=person, communities=("maintenance",))
        tokens[role] = accounts.issue_token(login).token
    accounts.create_user("spare", "employee")
    spare_token_id = accounts.issue_token("spare").id
    practices = services.practices.list_practices(Viewer.administrator(), PracticeFilters())
    assert len(practices) >= 3
    approved = next(p.id for p in practices if p.kind == "circle" and p.contributors[0].name == "Karim Benali")
    services.practices.approve(approved, accounts.viewer("helene"))
    asked = services.answer("Comment prépare-t-on un changement de joint ?", accounts.viewer("julie"))
    return Seed(tokens, note_ids, spare_note_id, tuple(p.id for p in practices), asked.question_id, spare_token_id)


class WithoutLifespan:
    """The app without its lifespan: the extraction worker stays off, so a run does not depend on its timing."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse the lifespan scope before reading it, which servers take as "no lifespan support"."""
        if scope["type"] == "lifespan":
            raise RuntimeError("no lifespan")
        await self.app(scope, receive, send)


@dataclass
class Fuzz:
    """The seeded app, its schema and the Authorization header of each role."""

    app: ASGIApp
    schema: schemathesis.BaseSchema
    headers: dict[str, dict[str, str]]


@pytest.fixture
def fuzz(make_services: Callable[..., Services]) -> Fuzz:
    services = make_services()
    known = seed(services)
    settings = ApiSettings(ask_rate_limit=100_000, login_rate_limit=100_000)
    app = WithoutLifespan(create_app(settings, services))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)

    @schema.hook
    def before_generate_path_parameters(context: schemathesis.HookContext, strategy: Any) -> Any:
        """Also the ids of seeded records, besides random ones (which must get a 404)."""
        operation = context.operation
        assert operation is not None
        values = {p.name: known.path_values(operation.method.upper(), p.name) for p in operation.path_parameters}
        if not all(values.values()):
            return strategy
        return st.one_of(strategy, st.fixed_dictionaries({name: st.sampled_from(v) for name, v in values.items()}))

    headers = {role: {"Authorization": f"Bearer {token}"} for role, token in known.tokens.items()}
    return Fuzz(app, schema, {**headers, "anonymous": {}})


def valid_uploads(operation: AnyOperation) -> list[st.SearchStrategy[AnyCase]]:
    """Uploads with valid metadata, so that random documents (bytes, text) get past the metadata to the parsers."""
    people = st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(("Karim Benali", "Julie Fabre")), "role": st.sampled_from(ROLES)}
        ),
        max_size=2,
    )
    metadata = st.fixed_dictionaries(
        {
            "kind": st.sampled_from(NOTE_KINDS),
            "community": st.sampled_from(("maintenance", "qualité")),
            "date": st.dates(dt.date(2000, 1, 1), dt.date(2030, 12, 31)).map(dt.date.isoformat),
            "visibility": st.sampled_from(VISIBILITIES),
        }
    )
    document = st.binary(max_size=2000) | st.text(min_size=1, max_size=2000).map(str.encode)
    forms = st.builds(lambda m, p, f: {**m, "participants": json.dumps(p), "file": f}, metadata, people, document)
    texts = st.builds(lambda m, p, t: {**m, "participants": p, "text": t}, metadata, people, st.text(min_size=1))
    return [
        forms.flatmap(lambda body: operation.as_strategy(body=body, media_type="multipart/form-data")),
        texts.flatmap(lambda body: operation.as_strategy(body=body, media_type="application/json")),
    ]


def one_error_shape(ctx: CheckContext, response: Response, case: AnyCase) -> bool | None:
    """Every error answer is ``{"error_code", "detail"}``, both strings."""
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body, dict) and set(body) == {"error_code", "detail"}, body
        assert isinstance(body["error_code"], str) and isinstance(body["detail"], str), body
    return None


def fuzz_operation(strategy: st.SearchStrategy[AnyCase], headers: dict[str, str], examples: int) -> int:
    """Send up to ``examples`` generated requests with these headers; the number sent."""
    sent = 0

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: AnyCase) -> None:
        nonlocal sent
        sent += 1
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error, one_error_shape], headers=headers)

    run()
    return sent


# Bodies the framework cannot even decode: the parser's own 400 must become a 422, never a 500.
BROKEN_BODIES = (("application/json", b"\xff\xfe{"), ("multipart/form-data", b"--x\r\nnot a part"))


def broken_bodies(fuzz: Fuzz, operations: list[AnyOperation]) -> list[str]:
    """Send every operation that takes a body a JSON body that is not UTF-8 and a multipart form with no boundary."""
    problems = []
    client = TestClient(fuzz.app)
    for operation in operations:
        path = re.sub(r"\{[^}]+\}", "x", operation.path)
        for role, headers in fuzz.headers.items():
            for content_type, content in BROKEN_BODIES:
                sent = {**headers, "Content-Type": content_type}
                response = client.request(operation.method.upper(), path, content=content, headers=sent)
                body = response.json()
                if response.status_code >= 500 or set(body) != {"error_code", "detail"}:
                    problems.append(f"{operation.label} as {role} with a broken {content_type}: {response.text}")
    client.close()
    return problems


@pytest.mark.slow
def test_no_generated_request_gets_a_server_error(fuzz: Fuzz) -> None:
    sent: Counter[str] = Counter()
    problems: list[str] = []
    operations = []
    for result in fuzz.schema.get_all_operations():
        assert isinstance(result, Ok), result.err()
        operations.append(result.ok())
    for operation in operations:
        strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
        strategies += fuzz.schema.get_strategies_from_examples(operation)
        if operation.label == "POST /api/notes":
            strategies += valid_uploads(operation)
        for role, headers in fuzz.headers.items():
            try:
                sent[role] += fuzz_operation(st.one_of(strategies), headers, EXAMPLES[role])
            except (Exception, BaseExceptionGroup) as exc:
                problems.append(f"{operation.label} as {role}: {exc}")
    with_body = [operation for operation in operations if len(operation.body)]
    problems += broken_bodies(fuzz, with_body)
    print(
        f"{len(operations)} operations, {sum(sent.values())} generated requests {dict(sent)}, {len(with_body)} with a body"
    )
    assert len(operations) >= 30
    assert not problems, "\n\n".join(problems)
