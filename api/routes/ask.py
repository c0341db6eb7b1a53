"""Ask: a grounded answer with citations (whole, or streamed as server-sent events), feedback, question history."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from api.deps import ServicesDep, ViewerDep
from api.errors import ApiError, ErrorCode

router = APIRouter(prefix="/api", tags=["ask"])


class Question(BaseModel):
    """A question from the chat."""

    question: str = Field(min_length=1, max_length=2000, examples=["Comment prépare-t-on un changement de joint ?"])


class Feedback(BaseModel):
    """A rating of an answer: +1 (thumbs up) or -1 (thumbs down), with an optional comment."""

    rating: int = Field(ge=-1, le=1, examples=[1])
    comment: str = Field(default="", max_length=4000)


@router.post("/ask", summary="Ask a question: a cited answer (or an honest abstention), experts and peers")
def ask(body: Question, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """The answer in the question's language from what the caller may see, every claim cited."""
    asked = services.answer(body.question, viewer)
    suggestions = services.suggest_after(body.question, asked, viewer)
    return {**asked.as_json(), **suggestions.as_json()}


@router.post(
    "/ask/stream",
    response_class=EventSourceResponse,
    summary="Ask, streamed: `answer` (question id, language, engine), one `claim` event per cited sentence, "
    "`sources` (the cited passages), `citations`, `suggestions` (experts and peers), then `done`",
)
def ask_stream(body: Question, services: ServicesDep, viewer: ViewerDep) -> Iterator[ServerSentEvent]:
    """The answer is verified before the first byte (citations are checked whole), then sent claim by claim."""
    asked = services.answer(body.question, viewer)
    answer = asked.answer
    yield ServerSentEvent(
        event="answer",
        data={
            "question_id": asked.question_id,
            "language": answer.language,
            "abstained": answer.abstained,
            "engine": answer.engine,
        },
    )
    for claim in answer.claims:
        yield ServerSentEvent(event="claim", data={"text": claim.text, "citations": list(claim.citations)})
    cited = {citation.source for citation in answer.citations}
    yield ServerSentEvent(event="sources", data=[source.as_json() for source in asked.sources if source.n in cited])
    yield ServerSentEvent(event="citations", data=[citation.as_json() for citation in answer.citations])
    yield ServerSentEvent(event="suggestions", data=services.suggest_after(body.question, asked, viewer).as_json())
    yield ServerSentEvent(event="done", data={"question_id": asked.question_id})


@router.post("/questions/{question_id}/feedback", status_code=201, summary="Rate an answer (thumbs up or down)")
def rate_answer(question_id: str, body: Feedback, services: ServicesDep, viewer: ViewerDep) -> dict[str, Any]:
    """Stored with the question and its sources; HR sees it."""
    return services.asker.feedback(question_id, viewer, body.rating, body.comment).as_json()


@router.get("/questions", summary="Questions asked, newest first (HR); `answered=false` lists the knowledge gaps")
def list_questions(
    services: ServicesDep,
    viewer: ViewerDep,
    answered: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Each question with its language, whether it was answered, and the sources that grounded it."""
    return {"questions": [q.as_json() for q in services.asker.list_questions(viewer, answered=answered, limit=limit)]}


@router.get("/questions/mine", summary="The caller's own questions, newest first, with their answers")
def own_questions(
    services: ServicesDep, viewer: ViewerDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> dict[str, Any]:
    """The chat history: an answer quoting a note the caller may no longer read comes back empty."""
    return {"questions": [q.as_json() for q in services.asker.own_questions(viewer, limit=limit)]}


@router.get("/feedback", summary="Ratings and comments on answers, newest first (HR)")
def list_feedback(
    services: ServicesDep, viewer: ViewerDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> dict[str, Any]:
    """Each rating with its question."""
    return {"feedback": [f.as_json() for f in services.asker.list_feedback(viewer, limit=limit)]}


@router.get("/experts", summary="The colleagues who know (with their evidence) and those facing the same question")
def experts(
    services: ServicesDep,
    viewer: ViewerDep,
    q: Annotated[str, Query(min_length=1, max_length=2000)],
    k: Annotated[int, Query(ge=1, le=20)] = 5,
) -> dict[str, Any]:
    """Experts scored from the evidence the caller may see; peers with the reason."""
    return services.suggest(q, viewer, k=k).as_json()


@router.put("/people/{name}/suggestions", summary="Opt a person in or out of expert and peer suggestions")
def set_suggestions(
    name: str,
    services: ServicesDep,
    viewer: ViewerDep,
    opted_out: Annotated[bool, Body(embed=True)],
) -> dict[str, Any]:
    """An opted-out person is never suggested as an expert or a peer (the person themself, or an admin)."""
    if not (viewer.may_manage_accounts or viewer.person_name == name):
        raise ApiError(ErrorCode.FORBIDDEN, "only the person themself or an admin changes their suggestions")
    services.finder.set_opt_out(name, opted_out)
    return {"name": name, "opted_out": opted_out}
