"""Drafting best practices with an LLM through LangChain: structured output, one repair, guards outside the model.

The note goes into the prompt between ``<note id="...">`` and ``</note>``; any such tag written inside the note
is neutralised first, so the note cannot close its own block. The model answers by calling one tool whose
arguments follow ``ExtractedPractices``: there is no status field in it, so a draft can never approve itself.
Output that does not validate is sent back once with the validation error; a second failure, a time-out or an
unreachable provider is recorded in ``ExtractionResult.failures`` as ``"<code>: <detail>"`` with a stable code
(``FailureCode``), never dropped silently. Every draft is then checked outside the model: HTML tags are
stripped, links, leftover markup or instruction-like text refuse the draft, quotes that read as instructions
are dropped, contributors are matched to the note's participants, and ``verify_draft`` keeps only the evidence
found in the note.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, Literal, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from capture.extraction.drafts import Evidence, ExtractionResult, NoteSource, PracticeDraft, verify_draft
from capture.language import LANGUAGES
from prompts import Prompt, load_prompt
from retrieval.llm import describe_invalid_output, produced_text, provider_failure_code
from retrieval.notes import Participant
from retrieval.sanitising import looks_like_instruction

PROMPT_NAME = "extraction/draft_practices"
MAX_ATTEMPTS = 2  # the first answer and one repair

Line = Annotated[str, StringConstraints(max_length=500)]


def _without_size_limits(schema: dict[str, Any]) -> None:
    """Keep length bounds out of the schema sent to the model: validation checks them.

    llama.cpp turns a ``maxLength`` of 2000 into a grammar nested 2000 deep, which it fails to parse (and its
    server then drops the connection).
    """
    for node in schema.get("properties", {}).values():
        for constrained in (node, node.get("items", {})):
            constrained.pop("maxLength", None)
            constrained.pop("maxItems", None)


class FailureCode(StrEnum):
    """Stable codes opening each failure an LLM extraction records (the provider ones equal ``ProviderFailure``'s)."""

    TIMEOUT = "llm_timeout"
    UNAVAILABLE = "llm_unavailable"
    REQUEST_REJECTED = "llm_request_rejected"
    CONTEXT_OVERFLOW = "llm_context_overflow"
    INVALID_OUTPUT = "llm_invalid_output"
    NOT_PLAIN_TEXT = "draft_not_plain_text"
    INSTRUCTION_LIKE = "draft_instruction_like"
    UNVERIFIED = "draft_unverified"


class QuotedClaim(BaseModel):
    """One claim of a practice and the exact words of the note that support it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_without_size_limits)

    claim: Literal["practice", "step", "context", "why", "pitfall"] = Field(description="What the quote supports.")
    quote: str = Field(min_length=1, max_length=1000, description="The exact words of the note, copied verbatim.")


class DraftedPractice(BaseModel):
    """A best practice found in the note, with the quotes that support it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_without_size_limits)

    title: str = Field(min_length=1, max_length=200, description="A short title, on one line.")
    practice: str = Field(min_length=1, max_length=2000, description="The practice, worded as an instruction.")
    steps: list[Line] = Field(default_factory=list, max_length=20, description="Its steps, if the note gives them.")
    context: str = Field(default="", max_length=1000, description="When, in which situation it applies.")
    why: str = Field(default="", max_length=1000, description="Why it works, according to the note.")
    pitfalls: list[Line] = Field(default_factory=list, max_length=20, description="Traps or mistakes to avoid.")
    tags: list[Annotated[str, StringConstraints(max_length=60)]] = Field(
        default_factory=list, max_length=10, description="Three to five keywords."
    )
    contributors: list[Annotated[str, StringConstraints(max_length=200)]] = Field(
        default_factory=list, max_length=20, description="Full names of the participants who brought it."
    )
    evidence: list[QuotedClaim] = Field(
        min_length=1, max_length=40, description="For each claim, the exact quote of the note that supports it."
    )


class ExtractedPractices(BaseModel):
    """The best practices found in the note; an empty list when it holds none."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_without_size_limits)

    practices: list[DraftedPractice] = Field(max_length=20, description="The best practices, or [] when none.")


_DELIMITER = re.compile(r"<(?=\s*/?\s*note\b)", re.IGNORECASE)


def neutralise_delimiter(text: str) -> str:
    """The text with every ``<note``/``</note`` tag escaped, so that it can neither close nor open a note block."""
    return _DELIMITER.sub("&lt;", text)


def _metadata(value: str, limit: int = 200) -> str:
    """A metadata value put in the prompt: one line, no delimiter, bounded."""
    return neutralise_delimiter(" ".join(value.split()))[:limit]


def note_windows(text: str, max_chars: int) -> list[str]:
    """The note cut into consecutive pieces of at most ``max_chars``, at a line break or a space when possible."""
    windows: list[str] = []
    rest = text
    while len(rest) > max_chars:
        cut = rest.rfind("\n", max_chars // 2, max_chars)
        if cut == -1:
            cut = rest.rfind(" ", max_chars // 2, max_chars)
        if cut == -1:
            cut = max_chars
        windows.append(rest[:cut])
        rest = rest[cut:]
    windows.append(rest)
    return [window for window in windows if window.strip()]


_ELEMENT_WITH_CODE = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)
_LINK = re.compile(
    r"(?:https?|ftp|file)://|\b(?:javascript|vbscript|mailto):|\bdata:[\w.+-]+/|\bwww\.\w|\]\(|!\[",
    re.IGNORECASE,
)
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?]|&(?:#\d+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _Refused(Exception):
    """A drafted practice that the guard refuses whole."""

    def __init__(self, code: FailureCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def _plain(field: str, value: str, flags: list[str]) -> str:
    """The value as plain text: tags stripped (and flagged); links, leftover markup or instructions refuse it."""
    stripped = _TAG.sub(" ", _ELEMENT_WITH_CODE.sub(" ", value))
    if stripped != value:
        flags.append(f"markup_stripped:{field}")
    text = " ".join(_CONTROL.sub(" ", stripped).split())
    if _LINK.search(text) or _MARKUP.search(text):
        raise _Refused(FailureCode.NOT_PLAIN_TEXT, f"{field} holds a link or markup")
    if looks_like_instruction(text):
        raise _Refused(FailureCode.INSTRUCTION_LIKE, f"{field} reads as an instruction to a machine")
    return text


def _label(title: str) -> str:
    """A refused draft's title as it is named in a failure: no tags, one line, bounded."""
    return " ".join(_TAG.sub(" ", _ELEMENT_WITH_CODE.sub(" ", title)).split())[:80]


def _fold_name(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", re.sub(r"\(.*?\)", " ", name))
    letters = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s'-]", " ", letters.casefold()).split())


def match_participant(name: str, participants: Sequence[Participant]) -> Participant | None:
    """The participant a model named, by full name or, when it is unambiguous, by first name."""
    key = _fold_name(name)
    if not key:
        return None
    for participant in participants:
        if _fold_name(participant.name) == key:
            return participant
    by_first = [p for p in participants if _fold_name(p.name).split()[:1] == [key]]
    return by_first[0] if len(by_first) == 1 else None


class LLMExtractor:
    """Drafts best-practice entries with a LangChain chat model that can call tools."""

    def __init__(self, chat_model: BaseChatModel, model_name: str, max_note_chars: int = 12_000) -> None:
        self.name = f"llm:{model_name}"
        self.max_note_chars = max_note_chars
        self.prompts: dict[str, Prompt] = {language: load_prompt(PROMPT_NAME, language) for language in LANGUAGES}
        self._structured = chat_model.with_structured_output(
            ExtractedPractices, method="function_calling", include_raw=True
        )

    def prompt_for(self, note: NoteSource) -> Prompt:
        """The prompt in the note's language (French for mixed or other notes)."""
        return self.prompts.get(note.language, self.prompts["fr"])

    def messages_for(self, note: NoteSource, window: str) -> list[BaseMessage]:
        """The system and user messages asking for the practices of one piece of a note."""
        prompt = self.prompt_for(note)
        participants = "\n".join(f"- {_metadata(p.name, 100)} ({_metadata(p.role, 40)})" for p in note.participants)
        user = prompt.render_user(
            note_id=re.sub(r"[^\w.:-]", "_", note.note_id),
            title=_metadata(note.title),
            kind=_metadata(note.kind, 40),
            community=_metadata(note.community, 100),
            participants=participants or "-",
            note=neutralise_delimiter(window),
        )
        return [SystemMessage(prompt.system), HumanMessage(user)]

    def extract(self, note: NoteSource) -> ExtractionResult:
        """Draft the entries of one note; failures are recorded with a stable code, never dropped."""
        prompt = self.prompt_for(note)
        drafts: list[PracticeDraft] = []
        failures: list[str] = []
        for window in note_windows(note.text, self.max_note_chars):
            answer, failure = self._ask(prompt, self.messages_for(note, window))
            if answer is None:
                failures.append(failure)
                continue
            for item in answer.practices:
                try:
                    draft = self._to_draft(item, note, prompt)
                except _Refused as refused:
                    failures.append(f"{refused.code}: {_label(item.title)!r}: {refused}")
                    continue
                verified = verify_draft(draft, note)
                if verified is None:
                    failures.append(
                        f"{FailureCode.UNVERIFIED}: {draft.title!r}: no quote of its practice was found in the note"
                    )
                else:
                    drafts.append(verified)
        return ExtractionResult(drafts=tuple(drafts), failures=tuple(failures))

    def _ask(self, prompt: Prompt, messages: list[BaseMessage]) -> tuple[ExtractedPractices | None, str]:
        """The validated answer, after one repair if needed; else None and the failure to record."""
        problem = ""
        for _ in range(MAX_ATTEMPTS):
            try:
                reply = cast("dict[str, Any]", self._structured.invoke(messages))
            except Exception as error:
                code = provider_failure_code(error)
                if code is None:
                    raise
                return None, f"{code}: {type(error).__name__}: {' '.join(str(error).split())[:300]}"
            parsed = reply.get("parsed")
            if isinstance(parsed, ExtractedPractices):
                return parsed, ""
            problem = describe_invalid_output(reply.get("parsing_error"), reply.get("raw"))
            messages = [
                *messages[:2],
                AIMessage(produced_text(reply.get("raw"))),
                HumanMessage(prompt.render_repair(error=problem)),
            ]
        return None, f"{FailureCode.INVALID_OUTPUT}: {MAX_ATTEMPTS} answers failed validation; last: {problem[:500]}"

    def _to_draft(self, item: DraftedPractice, note: NoteSource, prompt: Prompt) -> PracticeDraft:
        """A draft from the model's output, made plain text, with suspicious quotes dropped and names matched."""
        flags: list[str] = []
        title = _plain("title", item.title, flags)
        practice = _plain("practice", item.practice, flags)
        if not title or not practice:
            raise _Refused(FailureCode.NOT_PLAIN_TEXT, "no text left in its title or practice once markup is removed")
        evidence: list[Evidence] = []
        for quoted in item.evidence:
            if looks_like_instruction(quoted.quote):
                flags.append(f"dropped_instruction_evidence:{quoted.claim}")
            else:
                evidence.append(Evidence(claim=quoted.claim, quote=quoted.quote))
        contributors: list[Participant] = []
        for name in item.contributors:
            # An unknown name goes through as a role-less participant, so that verify_draft drops and flags it.
            known = match_participant(name, note.participants)
            contributors.append(known or Participant(_metadata(name, 60), ""))
        return PracticeDraft(
            title=title,
            practice=practice,
            steps=tuple(text for step in item.steps if (text := _plain("steps", step, flags))),
            context=_plain("context", item.context, flags),
            rationale=_plain("why", item.why, flags),
            pitfalls=tuple(text for pitfall in item.pitfalls if (text := _plain("pitfalls", pitfall, flags))),
            tags=tuple(dict.fromkeys(text for tag in item.tags if (text := _plain("tags", tag, flags)))),
            contributors=tuple(contributors),
            evidence=tuple(evidence),
            language=prompt.language,
            extracted_by=self.name,
            prompt_version=prompt.version,
            flags=tuple(dict.fromkeys(flags)),
        )
