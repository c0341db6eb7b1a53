"""Grounded answers: sources, citations, the ``Answerer`` seam, the offline extractive engine and the LLM engine.

Every claim of an answer cites a verbatim span of a note the viewer may read (``note.text[start:end] ==
quote``); when the evidence is weak the answer abstains, in the question's language, with no citation.

- ``ExtractiveAnswerer`` (offline, ``offline:extractive-v1``): the sources cut into sentences, each scored by
  its multilingual USE cosine to the question (USE cosines are thresholdable), the best few kept without
  redundancy, each cited; an approved practice is stated in its approved wording and cited to its evidence.
- ``LLMAnswerer`` (``llm:<model>``): the sources numbered and delimited as data in a versioned prompt, the
  answer returned through function calling, every ``[n]`` checked against the sources given (one repair,
  then invalid claims are dropped); no valid claim left, or a provider error, falls back to the extractive
  answer, and ``Answer.fallback`` says why.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, cast

import numpy as np
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field

from prompts import Prompt, load_prompt
from retrieval.embedders import Embedder, Vectors
from retrieval.llm import describe_invalid_output, produced_text, provider_failure_code
from retrieval.sanitising import is_foreign_language, looks_like_instruction, plain_text

__all__ = [
    "ANSWER_LANGUAGES",
    "EXTRACTIVE_ENGINE",
    "Answer",
    "Answerer",
    "Citation",
    "Claim",
    "ExtractiveAnswerer",
    "GroundedAnswer",
    "LLMAnswerer",
    "Source",
    "Weighing",
    "answer_language",
    "split_sentences",
]

logger = logging.getLogger(__name__)

ANSWER_LANGUAGES = ("fr", "en")
EXTRACTIVE_ENGINE = "offline:extractive-v1"
PROMPT_NAME = "answers/answer_question"
MAX_ATTEMPTS = 2  # the first answer and one repair
# Calibrated on retrieval/calibration/demo_questions.jsonl (41 answerable and 25 unanswerable questions over the demo
# corpus, FR and EN, admin scope, real hybrid search): answerable scored >= 0.253 but one, unanswerable <= 0.221;
# 0.24 answers 40/41 and abstains on 25/25. It catches off-topic questions, not a fact missing from a topic the notes
# cover: on piaf_fr with the gold paragraph removed it abstains on 33% only (see retrieval/answer_evaluation.py).
# RetrievalSettings.answer_threshold defaults to the same value.
DEFAULT_THRESHOLD = 0.24

SourceKind = Literal["practice", "chunk"]

_LEAD = {"fr": "D'après les notes que vous pouvez consulter :", "en": "From the notes you can read:"}
_FOREIGN = {"fr": "(extraits en anglais)", "en": "(excerpts in French)"}
_ABSTAIN = {
    "fr": (
        "Je ne sais pas : les notes que vous pouvez consulter n'en parlent pas assez pour répondre. "
        "Reformulez la question ou posez-la à un collègue."
    ),
    "en": (
        "I don't know: the notes you can read do not say enough to answer. Rephrase the question or ask a colleague."
    ),
}
_SENTENCE_END = re.compile(r"(?<=[.?!…])\s+")
_LEADING_MARK = re.compile(r"^(?:[-*•·]\s+|\d{1,2}[.)]\s+|#+\s+|>\s*)+")
_SPEAKER_LABEL = re.compile(r"^[A-ZÀ-Ý][\w'’.-]*(?: [A-ZÀ-Ý][\w'’.-]*){0,2}\s?(?::|—|–)\s+")
_MIN_WORDS = 4


def answer_language(language: str) -> str:
    """The language an answer is framed in: English for ``en``, French otherwise (the product's default)."""
    return "en" if language.lower().startswith("en") else "fr"


@dataclass(frozen=True)
class Source:
    """A passage an answer may cite: an approved practice (by its first evidence span) or a note chunk."""

    n: int
    kind: SourceKind
    note_id: str
    external_id: str | None
    entry_id: str | None
    chunk_id: str | None
    title: str
    text: str
    start: int
    end: int
    score: float
    language: str
    speaker: str | None = None
    session_date: dt.date | None = None
    community: str = ""
    kind_of_note: str = ""
    # A practice's approved wording (title and statement); empty for a chunk.
    statement: str = ""

    def as_record(self) -> dict[str, Any]:
        """What a question record keeps of the source: ids and offsets, never the text."""
        return {
            "n": self.n,
            "kind": self.kind,
            "note_id": self.note_id,
            "entry_id": self.entry_id,
            "chunk_id": self.chunk_id,
            "start": self.start,
            "end": self.end,
        }

    def as_json(self) -> dict[str, Any]:
        """The source as JSON, text included (for whoever may read it)."""
        return {
            **self.as_record(),
            "external_id": self.external_id,
            "title": self.title,
            "text": self.text,
            "score": round(self.score, 6),
            "language": self.language,
            "speaker": self.speaker,
            "session_date": self.session_date.isoformat() if self.session_date else None,
            "community": self.community,
            "kind_of_note": self.kind_of_note,
        }


@dataclass(frozen=True)
class Citation:
    """A cited span: ``quote`` is exactly ``note.text[start:end]``; ``n`` is the marker the claims use."""

    n: int
    source: int
    kind: SourceKind
    note_id: str
    external_id: str | None
    entry_id: str | None
    chunk_id: str | None
    quote: str
    start: int
    end: int
    title: str
    language: str
    speaker: str | None = None
    session_date: dt.date | None = None

    def as_json(self) -> dict[str, Any]:
        """The citation as JSON."""
        return {
            "n": self.n,
            "source": self.source,
            "kind": self.kind,
            "note_id": self.note_id,
            "external_id": self.external_id,
            "entry_id": self.entry_id,
            "chunk_id": self.chunk_id,
            "quote": self.quote,
            "start": self.start,
            "end": self.end,
            "title": self.title,
            "language": self.language,
            "speaker": self.speaker,
            "session_date": self.session_date.isoformat() if self.session_date else None,
        }


@dataclass(frozen=True)
class Claim:
    """One statement of an answer and the citation markers that support it; usable on its own (streamed)."""

    text: str
    citations: tuple[int, ...]

    def render(self) -> str:
        """The claim with its markers, e.g. ``Passer en cadence réduite. [1]``."""
        return " ".join([self.text, *(f"[{n}]" for n in self.citations)])


@dataclass(frozen=True)
class Answer:
    """An answer: its claims and citations, or an abstention, with the engine that produced it."""

    claims: tuple[Claim, ...]
    text: str
    language: str
    abstained: bool
    citations: tuple[Citation, ...]
    engine: str
    confidence: float
    lead: str = ""
    # Why the configured LLM was not the one answering (a stable code), when it fell back to the extractive engine.
    fallback: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The answer as JSON (``answer`` is the rendered text)."""
        return {
            "answer": self.text,
            "lead": self.lead,
            "claims": [{"text": c.text, "citations": list(c.citations)} for c in self.claims],
            "language": self.language,
            "abstained": self.abstained,
            "engine": self.engine,
            "confidence": round(self.confidence, 4),
            "fallback": self.fallback,
            "citations": [c.as_json() for c in self.citations],
        }


class Answerer(Protocol):
    """Answers a question from numbered sources, in the question's language, or abstains."""

    name: str

    def answer(self, question: str, language: str, sources: Sequence[Source]) -> Answer:
        """The answer to ``question`` grounded in ``sources`` only."""
        ...


def split_sentences(text: str, offset: int = 0) -> list[tuple[int, int]]:
    """Spans ``(start, end)`` of the sentences of ``text`` (shifted by ``offset``), list marks and speaker labels trimmed.

    A line is never joined to the next (list items and speaker turns end at the line break); within a
    line, a sentence ends at ``.?!…`` followed by a space.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    for line in text.splitlines(keepends=True):
        line_start, position = position, position + len(line)
        body = line.rstrip()
        first = len(body) - len(body.lstrip())
        for pattern in (_LEADING_MARK, _SPEAKER_LABEL):
            match = pattern.match(body, first)
            if match:
                first = match.end()
        cursor = first
        for stop in [*(m.start() for m in _SENTENCE_END.finditer(body, first)), len(body)]:
            piece = body[cursor:stop]
            if piece.strip():
                begin = cursor + len(piece) - len(piece.lstrip())
                spans.append((offset + line_start + begin, offset + line_start + cursor + len(piece.rstrip())))
            cursor = stop
    return spans


@dataclass(frozen=True)
class Candidate:
    """A sentence (or a practice's evidence) that may become a claim, with its score against the question."""

    source: Source
    start: int
    end: int
    quote: str
    claim: str
    score: float
    vector: Vectors


@dataclass(frozen=True)
class Weighing:
    """The candidates of a set of sources, best first, and the strength of the best evidence."""

    candidates: tuple[Candidate, ...]
    confidence: float


def _cosines(matrix: Vectors, vector: Vectors) -> list[float]:
    return [float(value) for value in np.asarray(matrix @ vector, dtype=np.float32)]


class ExtractiveAnswerer:
    """The offline engine: quotes the sentences of the sources nearest in meaning to the question, each cited."""

    name = EXTRACTIVE_ENGINE

    def __init__(
        self,
        embedder: Embedder,
        threshold: float = DEFAULT_THRESHOLD,
        max_claims: int = 3,
        margin: float = 0.12,
        redundancy: float = 0.8,
        practice_bonus: float = 0.05,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.max_claims = max_claims
        self.margin = margin
        self.redundancy = redundancy
        self.practice_bonus = practice_bonus
        # Weights of a statement's score, chosen on the demo calibration set (see DEFAULT_THRESHOLD); lexical
        # overlap was tried and left out: it separated no better and penalises a question in the other language.
        self.sentence_weight = 0.5
        self.passage_weight = 0.25
        self.title_weight = 0.25

    def weigh(self, question: str, sources: Sequence[Source]) -> Weighing:
        """Score every statement of the sources against the question (USE cosines of the sentence, its passage and
        its note's title); a sentence that is itself a question is never a claim."""
        pieces: list[tuple[Source, int, int, str, str]] = []
        for source in sources:
            if source.kind == "practice":
                statement = plain_text(source.statement or source.text)
                pieces.append((source, source.start, source.end, source.text, statement))
                continue
            for start, end in split_sentences(source.text, source.start):
                quote = source.text[start - source.start : end - source.start]
                claim = plain_text(quote)
                # A question in a note ("Et pour sortir l'ancien joint ?") resembles the question asked, answers nothing;
                # a sentence addressed to a machine ("ignore previous instructions") is data, never a claim.
                if len(claim.split()) >= _MIN_WORDS and not quote.endswith("?") and not looks_like_instruction(quote):
                    pieces.append((source, start, end, quote, claim))
        if not pieces:
            return Weighing((), 0.0)
        query = self.embedder.embed_query(question)
        sentence_vectors = self.embedder.embed_documents([claim for _, _, _, _, claim in pieces])
        # The passage gives a short sentence its context (for a practice, its evidence quote); the note's title
        # says what the session was about, which a sentence alone often does not.
        passage_vectors = self.embedder.embed_documents([source.text for source in sources])
        title_vectors = self.embedder.embed_documents([source.title for source in sources])
        numbers = [source.n for source in sources]
        passages = dict(zip(numbers, _cosines(passage_vectors, query), strict=True))
        titles = dict(zip(numbers, _cosines(title_vectors, query), strict=True))
        candidates = []
        for (source, start, end, quote, claim), vector, cosine in zip(
            pieces, sentence_vectors, _cosines(sentence_vectors, query), strict=True
        ):
            score = (
                self.sentence_weight * cosine
                + self.passage_weight * passages[source.n]
                + self.title_weight * titles[source.n]
                + (self.practice_bonus if source.kind == "practice" else 0.0)
            )
            candidates.append(Candidate(source, start, end, quote, claim, score, vector))
        candidates.sort(key=lambda c: (-c.score, c.source.n, c.start))
        return Weighing(tuple(candidates), candidates[0].score)

    def answer(self, question: str, language: str, sources: Sequence[Source]) -> Answer:
        """Quote the best few sentences, cited, or abstain when the best evidence is under the threshold."""
        return self.compose(language, self.weigh(question, sources))

    def compose(self, language: str, weighing: Weighing) -> Answer:
        """The answer from already weighed candidates."""
        language = answer_language(language)
        if weighing.confidence < self.threshold:
            return abstention(language, self.name, weighing.confidence)
        chosen = self._select(weighing)
        # Read in the order of the notes: each note where its best sentence ranks, sentences in note order.
        note_rank: dict[str, int] = {}
        for candidate in chosen:
            note_rank.setdefault(candidate.source.note_id, len(note_rank))
        chosen.sort(key=lambda c: (c.source.kind != "practice", note_rank[c.source.note_id], c.start))
        cited = [(c.claim, [(c.source, c.start, c.end, c.quote)]) for c in chosen]
        return assemble(language, self.name, weighing.confidence, cited)

    def _select(self, weighing: Weighing) -> list[Candidate]:
        """Up to ``max_claims`` strong candidates, skipping those that repeat one already chosen (MMR-like)."""
        floor = max(self.threshold, weighing.confidence - self.margin)
        chosen: list[Candidate] = []
        for candidate in weighing.candidates:
            if candidate.score < floor or len(chosen) == self.max_claims:
                break
            if any(float(candidate.vector @ other.vector) >= self.redundancy for other in chosen):
                continue
            if any(_overlaps(candidate, other) for other in chosen):
                continue
            chosen.append(candidate)
        return chosen


def _overlaps(one: Candidate, other: Candidate) -> bool:
    return one.source.note_id == other.source.note_id and one.start < other.end and other.start < one.end


def abstention(language: str, engine: str, confidence: float, fallback: str | None = None) -> Answer:
    """The honest "I don't know" in the question's language: no claim, no citation."""
    language = answer_language(language)
    text = _ABSTAIN[language]
    return Answer((), text, language, True, (), engine, confidence, fallback=fallback)


def assemble(
    language: str,
    engine: str,
    confidence: float,
    cited: Sequence[tuple[str, Sequence[tuple[Source, int, int, str]]]],
    fallback: str | None = None,
) -> Answer:
    """Number the cited spans in order of first use and render the claims with their markers."""
    citations: list[Citation] = []
    by_span: dict[tuple[str, int, int], int] = {}
    claims: list[Claim] = []
    for text, spans in cited:
        markers: list[int] = []
        for source, start, end, quote in spans:
            key = (source.note_id, start, end)
            if key not in by_span:
                by_span[key] = len(citations) + 1
                citations.append(
                    Citation(
                        n=by_span[key],
                        source=source.n,
                        kind=source.kind,
                        note_id=source.note_id,
                        external_id=source.external_id,
                        entry_id=source.entry_id,
                        chunk_id=source.chunk_id,
                        quote=quote,
                        start=start,
                        end=end,
                        title=source.title,
                        language=source.language,
                        speaker=source.speaker,
                        session_date=source.session_date,
                    )
                )
            if by_span[key] not in markers:
                markers.append(by_span[key])
        claims.append(Claim(text, tuple(markers)))
    if not claims:
        return abstention(language, engine, confidence, fallback)
    foreign = "en" if language == "fr" else "fr"
    lead = _LEAD[language]
    if any(citation.language == foreign for citation in citations):
        lead = f"{lead.rstrip(' :')} {_FOREIGN[language]}" + (" :" if language == "fr" else ":")
    text = "\n".join([lead, *(f"- {claim.render()}" for claim in claims)])
    return Answer(tuple(claims), text, language, False, tuple(citations), engine, confidence, lead, fallback)


# --- the LLM engine -----------------------------------------------------------------------------------------------


class DraftedClaim(BaseModel):
    """One statement of the answer and the numbers of the sources that support it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="One short statement, in the question's language, plain text.")
    sources: list[int] = Field(description="The numbers of the sources that support it (at least one).")


class GroundedAnswer(BaseModel):
    """The answer to the question from the numbered sources only; no claim when they do not answer it."""

    model_config = ConfigDict(extra="forbid")

    answerable: bool = Field(description="Whether the sources answer the question.")
    claims: list[DraftedClaim] = Field(description="The statements of the answer, each with its sources; [] if none.")


_SOURCE_TAG = re.compile(r"<(?=\s*/?\s*sources?\b)", re.IGNORECASE)
_MAX_CLAIM_CHARS = 600


def neutralise_source_tags(text: str) -> str:
    """The text with every ``<source``/``</source`` tag escaped, so a passage can neither close nor open a block."""
    return _SOURCE_TAG.sub("&lt;", text)


def _one_line(value: str, limit: int = 200) -> str:
    return neutralise_source_tags(" ".join(value.split()))[:limit]


def claim_problems(answer: GroundedAnswer, count: int) -> list[str]:
    """What is wrong with the claims' citations, given ``count`` numbered sources (empty when all is well)."""
    problems = []
    for index, claim in enumerate(answer.claims):
        if not claim.sources:
            problems.append(f"claims.{index}: cites no source; every claim needs at least one source number")
        unknown = sorted({n for n in claim.sources if not 1 <= n <= count})
        if unknown:
            problems.append(
                f"claims.{index}: cites {', '.join(map(str, unknown))}, not among the sources given (1 to {count})"
            )
    if answer.answerable and not answer.claims:
        problems.append("answerable is true but there is no claim")
    return problems


@dataclass
class _Attempt:
    """The outcome of asking the model: a validated answer, or the code and detail of why there is none."""

    answer: GroundedAnswer | None = None
    failure: str | None = None
    problems: list[str] = field(default_factory=list)


class LLMAnswerer:
    """Answers with a LangChain chat model from numbered, delimited sources; checks every citation it returns."""

    def __init__(
        self,
        chat_model: BaseChatModel,
        model_name: str,
        fallback: ExtractiveAnswerer,
        max_source_chars: int = 1500,
    ) -> None:
        self.name = f"llm:{model_name}"
        self.fallback = fallback
        self.max_source_chars = max_source_chars
        self.prompts: dict[str, Prompt] = {lang: load_prompt(PROMPT_NAME, lang) for lang in ANSWER_LANGUAGES}
        self._structured = chat_model.with_structured_output(
            GroundedAnswer, method="function_calling", include_raw=True
        )

    def messages_for(self, question: str, language: str, sources: Sequence[Source]) -> list[BaseMessage]:
        """The system and user messages: the question, then each source between ``<source n=..>`` tags."""
        prompt = self.prompts[answer_language(language)]
        blocks = []
        for source in sources:
            body = source.statement + "\n" + source.text if source.statement else source.text
            header = f'<source n="{source.n}" title="{_one_line(source.title).replace(chr(34), chr(39))}">'
            blocks.append(f"{header}\n{neutralise_source_tags(body[: self.max_source_chars])}\n</source>")
        user = prompt.render_user(
            question=neutralise_source_tags(" ".join(question.split())),
            count=str(len(sources)),
            sources="\n\n".join(blocks),
        )
        return [SystemMessage(prompt.system), HumanMessage(user)]

    def answer(self, question: str, language: str, sources: Sequence[Source]) -> Answer:
        """The model's cited answer; abstains on weak evidence; falls back to the extractive answer on failure."""
        weighing = self.fallback.weigh(question, sources)
        if weighing.confidence < self.fallback.threshold:
            # Nothing worth a model call: the same calibrated abstention as the offline engine.
            return abstention(language, self.name, weighing.confidence)
        prompt = self.prompts[answer_language(language)]
        attempt = self._ask(prompt, self.messages_for(question, language, sources), len(sources))
        if attempt.answer is None:
            logger.warning("LLM answer failed, extractive fallback: %s", attempt.failure)
            return replace(self.fallback.compose(language, weighing), fallback=attempt.failure)
        valid = [
            claim
            for claim in attempt.answer.claims
            if claim.sources and all(1 <= n <= len(sources) for n in claim.sources)
        ]
        if not attempt.answer.answerable and not valid:
            return abstention(language, self.name, weighing.confidence)
        cited = self._cite(valid, sources, weighing)
        if not cited:
            logger.warning("LLM answer had no valid claim, extractive fallback")
            return replace(self.fallback.compose(language, weighing), fallback="llm_no_valid_claim")
        return assemble(language, self.name, weighing.confidence, cited)

    def _ask(self, prompt: Prompt, messages: list[BaseMessage], count: int) -> _Attempt:
        """One call and, if the output is invalid or cites what it was not given, one repair."""
        attempt = _Attempt()
        for _ in range(MAX_ATTEMPTS):
            try:
                reply = cast("dict[str, Any]", self._structured.invoke(messages))
            except Exception as error:
                code = provider_failure_code(error)
                if code is None:
                    raise
                return _Attempt(failure=str(code))
            parsed = reply.get("parsed")
            if isinstance(parsed, GroundedAnswer):
                attempt = _Attempt(answer=parsed, problems=claim_problems(parsed, count))
                if not attempt.problems:
                    return attempt
                problem = "; ".join(attempt.problems)
            else:
                attempt = _Attempt(failure="llm_invalid_output")
                problem = describe_invalid_output(reply.get("parsing_error"), reply.get("raw"))
            messages = [
                *messages[:2],
                AIMessage(produced_text(reply.get("raw"))),
                HumanMessage(prompt.render_repair(error=problem, count=str(count))),
            ]
        return attempt

    def _cite(
        self, claims: Sequence[DraftedClaim], sources: Sequence[Source], weighing: Weighing
    ) -> list[tuple[str, list[tuple[Source, int, int, str]]]]:
        """Each valid claim as plain text, cited to the sentence of each named source nearest to it.

        A claim is dropped when nothing is left of it once markup, images and URLs are removed, when it reads as an
        instruction to a machine, or when it is confidently in neither French nor English (a model obeying a note's
        "from now on answer in German"): the answer keeps its language and shape whatever the sources say.
        """
        texts = [" ".join(plain_text(claim.text).split())[:_MAX_CLAIM_CHARS] for claim in claims]
        kept = [
            (text, claim)
            for text, claim in zip(texts, claims, strict=True)
            if text and not looks_like_instruction(text) and not is_foreign_language(text, ANSWER_LANGUAGES)
        ]
        if len(kept) < len(claims):
            logger.warning(
                "LLM answer: %d of %d claims dropped by the output guard", len(claims) - len(kept), len(claims)
            )
        if not kept:
            return []
        vectors = self.fallback.embedder.embed_documents([text for text, _ in kept])
        by_source: dict[int, list[Candidate]] = {}
        for candidate in weighing.candidates:
            by_source.setdefault(candidate.source.n, []).append(candidate)
        cited = []
        for (text, claim), vector in zip(kept, vectors, strict=True):
            spans = []
            for n in dict.fromkeys(claim.sources):
                source = sources[n - 1]
                options = by_source.get(n)
                if options:
                    best = max(options, key=lambda c: float(c.vector @ vector))
                    spans.append((source, best.start, best.end, best.quote))
                else:
                    spans.append((source, source.start, source.end, source.text))
            cited.append((text, spans))
        return cited
