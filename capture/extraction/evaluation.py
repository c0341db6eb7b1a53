"""Measuring the offline extractor: NASA lessons against their written recommendations, and demo evidence.

Run ``python -m capture.extraction.evaluation [--limit N] [--out PATH]`` from the repository (default: the
first 300 usable lessons; ``--limit 0`` takes all). The data folder is ``../shared/data`` unless
``COMPAGNON_EVAL_DATA`` names another; absent data is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from capture.chunking import chunk_blocks
from capture.extraction.drafts import NoteSource, PracticeExtractor, verify_draft
from capture.extraction.offline import CueExtractor
from capture.parsing import Block, parse_document, parse_lines
from retrieval.embedders import Embedder, Vectors
from retrieval.lexical import fold
from retrieval.notes import ChunkView, Participant
from retrieval.sanitising import looks_like_instruction

DEMO_MANIFEST = Path(__file__).resolve().parents[2] / "api" / "demo" / "manifest.jsonl"
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
_FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[\"“(]?[A-Z0-9])")


def rouge_tokens(text: str) -> list[str]:
    """Words of a text, lower-cased and without accents, as ROUGE compares them."""
    return _TOKEN.findall(fold(text))


def lcs_length(left: Sequence[str], right: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, Hyyrö 2004)."""
    if not left or not right:
        return 0
    masks: dict[str, int] = {}
    for position, token in enumerate(left):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(left)) - 1
    row = full
    # Each zero bit of ``row`` marks one more matched token; Python's big integers hold a whole row.
    for token in right:
        matched = row & masks.get(token, 0)
        row = ((row + matched) | (row - matched)) & full
    return len(left) - row.bit_count()


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 (LCS-based, beta = 1) of a candidate against a reference, on folded word tokens."""
    produced, expected = rouge_tokens(candidate), rouge_tokens(reference)
    common = lcs_length(produced, expected)
    if common == 0:
        return 0.0
    precision, recall = common / len(produced), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def lead_sentence(text: str) -> str:
    """The first sentence of a text."""
    return _FIRST_SENTENCE.split(text.strip(), maxsplit=1)[0]


def note_from_blocks(
    note_id: str,
    blocks: Sequence[Block],
    kind: str,
    language: str,
    participants: Sequence[Participant] = (),
    title: str = "",
    community: str = "evaluation",
) -> NoteSource:
    """A NoteSource built the way ingestion builds a note: chunked along its structure, exact offsets."""
    chunked = chunk_blocks(blocks, participants)
    chunks = tuple(
        ChunkView(f"{note_id}:{i}", i, c.start, c.end, c.kind, c.speaker, c.section, c.text)
        for i, c in enumerate(chunked.chunks)
    )
    return NoteSource(note_id, note_id, title, kind, community, language, chunked.text, chunks, tuple(participants))


def extracted_text(extractor: PracticeExtractor, note: NoteSource) -> tuple[str, int]:
    """The best draft's practice and steps (empty when nothing was drafted), and the number of drafts."""
    drafts = extractor.extract(note).drafts
    if not drafts:
        return "", 0
    best = drafts[0]
    return " ".join([best.practice, *best.steps]), len(drafts)


@dataclass(frozen=True)
class Lesson:
    """A NASA lesson: what happened, what was learned, and the recommendation written for it."""

    number: str
    event: str
    lesson: str
    recommendation: str


def read_lessons(path: Path, limit: int | None) -> list[Lesson]:
    """Lessons with a lesson text and a recommendation, in file order, the first ``limit`` of them."""
    lessons: list[Lesson] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            lesson = Lesson(
                str(row["lesson_number"]),
                str(row.get("driving_event_text") or ""),
                str(row.get("lesson_text") or ""),
                str(row.get("recommendation_text") or ""),
            )
            if lesson.lesson.strip() and lesson.recommendation.strip():
                lessons.append(lesson)
            if limit is not None and len(lessons) >= limit:
                break
    return lessons


class _RecordingEmbedder:
    """Notes which texts an extractor asks for, answering with zero vectors (a dry run for batching)."""

    name = "recording"

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension
        self.texts: list[str] = []

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Record the texts."""
        self.texts.extend(texts)
        return np.zeros((len(texts), self.dimension), dtype=np.float32)

    def embed_query(self, text: str) -> Vectors:
        """Record the text."""
        self.texts.append(text)
        return np.zeros(self.dimension, dtype=np.float32)


class _CachedEmbedder:
    """Serves vectors computed ahead in large batches: the encoder's cost per call dwarfs its cost per text."""

    def __init__(self, inner: Embedder, batch_size: int = 256) -> None:
        self.name = inner.name
        self.dimension = inner.dimension
        self._inner = inner
        self._batch_size = batch_size
        self._vectors: dict[str, Vectors] = {}

    def prefetch(self, texts: Sequence[str]) -> None:
        """Embed the texts not seen yet, in batches."""
        missing = list(dict.fromkeys(text for text in texts if text not in self._vectors))
        for start in range(0, len(missing), self._batch_size):
            batch = missing[start : start + self._batch_size]
            for text, vector in zip(batch, self._inner.embed_documents(batch), strict=True):
                self._vectors[text] = vector

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        """Vectors of the texts, from the cache."""
        self.prefetch(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.asarray(np.stack([self._vectors[text] for text in texts]), dtype=np.float32)

    def embed_query(self, text: str) -> Vectors:
        """The vector of one text, from the cache."""
        return np.asarray(self.embed_documents([text])[0], dtype=np.float32)


def _cosines(embedder: _CachedEmbedder, candidates: Sequence[str], references: Sequence[str]) -> list[float]:
    """Cosine of each candidate with its reference; an empty candidate scores 0."""
    vectors = embedder.embed_documents([text or " " for text in candidates])
    expected = embedder.embed_documents(references)
    scores = np.sum(vectors * expected, axis=1)
    return [float(score) if text else 0.0 for score, text in zip(scores, candidates, strict=True)]


def lesson_note(lesson: Lesson, sectioned: bool) -> NoteSource:
    """The lesson as a note: its driving event then its lesson, under the headings of its LLIS page or as plain text."""
    if sectioned:
        blocks = parse_lines(
            f"## Driving event\n\n{lesson.event}\n\n## Lesson learned\n\n{lesson.lesson}", markdown=True
        )
    else:
        blocks = parse_lines(f"{lesson.event}\n\n{lesson.lesson}", markdown=False)
    return note_from_blocks(f"llis-{lesson.number}", blocks, "other", "en")


SECTIONED_USE = "cues-v1 + USE, note with headings"
PLAIN_USE = "cues-v1 + USE, plain text"
SECTIONED_BARE = "cues-v1 no embedder, with headings"


def evaluate_lessons(lessons: Sequence[Lesson], embedder: Embedder) -> dict[str, Any]:
    """ROUGE-L F1, cosine and coverage of the extractor and of two baselines against the recommendations.

    The extractor reads each lesson with the headings of its LLIS page ("Driving event", "Lesson learned"),
    and without them, where only cue phrases can find a practice. Every system is also scored on the
    lessons the plain-text run drafted for ("cue subset"), so that systems that always answer are compared
    on the same ground.
    """
    cached = _CachedEmbedder(embedder)
    references = [lesson.recommendation for lesson in lessons]
    outputs: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    for name, sectioned, embedded in (
        (SECTIONED_USE, True, True),
        (PLAIN_USE, False, True),
        (SECTIONED_BARE, True, False),
    ):
        started = time.perf_counter()
        notes = [lesson_note(lesson, sectioned) for lesson in lessons]
        extractor = CueExtractor()
        if embedded:
            # A dry run asks for exactly the texts the real run embeds (what to embed is decided before any
            # vector is read), so they can be encoded in a few large batches.
            recorder = _RecordingEmbedder(embedder.dimension)
            for note in notes:
                CueExtractor(embedder=recorder).extract(note)
            cached.prefetch(recorder.texts)
            extractor = CueExtractor(embedder=cached)
        outputs[name] = [extracted_text(extractor, note)[0] for note in notes]
        seconds[name] = time.perf_counter() - started
    outputs["lead (first sentence of the lesson)"] = [lead_sentence(lesson.lesson) for lesson in lessons]
    outputs["whole lesson text"] = [lesson.lesson for lesson in lessons]
    cue_subset = [index for index, text in enumerate(outputs[PLAIN_USE]) if text]
    cached.prefetch([text for texts in outputs.values() for text in texts if text] + references)
    systems: dict[str, Any] = {}
    for name, texts in outputs.items():
        rouge = [rouge_l(text, reference) for text, reference in zip(texts, references, strict=True)]
        cosines = _cosines(cached, texts, references)
        systems[name] = {
            "rouge_l_f1": _mean(rouge),
            "cosine": _mean(cosines),
            "coverage": _mean([1.0 if text else 0.0 for text in texts]),
            "rouge_l_f1_cue_subset": _mean([rouge[i] for i in cue_subset]),
            "cosine_cue_subset": _mean([cosines[i] for i in cue_subset]),
            "mean_words": round(float(np.mean([len(rouge_tokens(text)) for text in texts])), 1),
            "seconds": round(seconds.get(name, 0.0), 1),
        }
    return {"lessons": len(lessons), "cue_subset": len(cue_subset), "systems": systems}


def _mean(values: Sequence[float]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0


def demo_notes(manifest: Path) -> list[NoteSource]:
    """The demo corpus as NoteSources, parsed and chunked as ingestion would."""
    from capture.language import detect_note_language
    from capture.sniffing import sniff

    notes: list[NoteSource] = []
    for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        entry = json.loads(line)
        people = tuple(Participant(str(p["name"]), str(p["role"])) for p in entry.get("participants") or ())
        if isinstance(entry.get("text"), str):
            blocks = parse_lines(entry["text"], markdown=True)
        else:
            data = (manifest.parent / str(entry["path"])).read_bytes()
            blocks = parse_document(data, sniff(data))
        note_id = str(entry.get("id") or f"demo-{number}")
        language = entry.get("language") or detect_note_language([block.text for block in blocks])
        notes.append(
            note_from_blocks(note_id, blocks, str(entry.get("kind", "other")), language, people, entry.get("title", ""))
        )
    return notes


def evaluate_demo(notes: Sequence[NoteSource], extractor: PracticeExtractor) -> dict[str, Any]:
    """Evidence precision (quotes found verbatim at their offsets), verification and coverage on the demo notes."""
    quotes = exact = kept = drafted = notes_with_drafts = instruction_like = 0
    for note in notes:
        drafts = extractor.extract(note).drafts
        notes_with_drafts += bool(drafts)
        for draft in drafts:
            drafted += 1
            quotes += len(draft.evidence)
            exact += sum(1 for e in draft.evidence if note.text[e.start : e.end] == e.quote)
            verified = verify_draft(draft, note)
            kept += verified is not None and set(verified.evidence) == set(draft.evidence)
            instruction_like += any(looks_like_instruction(e.quote) for e in draft.evidence)
    return {
        "notes": len(notes),
        "drafts": drafted,
        "share_of_notes_with_drafts": round(notes_with_drafts / max(len(notes), 1), 4),
        "evidence_quotes": quotes,
        "evidence_precision": round(exact / max(quotes, 1), 4),
        "drafts_verified_unchanged": round(kept / max(drafted, 1), 4),
        "drafts_with_instruction_like_evidence": instruction_like,
    }


def _data_folder() -> Path:
    return Path(os.environ.get("COMPAGNON_EVAL_DATA") or "../shared/data")


def _print_table(lessons: dict[str, Any], subset: str) -> None:
    print(f"NASA LLIS, {lessons['lessons']} lessons ({subset}); reference: the written recommendation")
    print(f"(cue subset: the {lessons['cue_subset']} lessons where cues alone found a practice in the plain text)")
    header = (
        f"{'system':38} {'ROUGE-L':>8} {'cosine':>7} {'coverage':>8} {'ROUGE-L':>8} {'cosine':>7} {'words':>6} {'s':>5}"
    )
    print(header)
    print(f"{'':38} {'all':>8} {'all':>7} {'':8} {'cue sub':>8} {'cue sub':>7}")
    for name, row in lessons["systems"].items():
        print(
            f"{name:38} {row['rouge_l_f1']:>8.3f} {row['cosine']:>7.3f} {row['coverage']:>8.1%}"
            f" {row['rouge_l_f1_cue_subset']:>8.3f} {row['cosine_cue_subset']:>7.3f}"
            f" {row['mean_words']:>6.0f} {row['seconds']:>5.0f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluation, print the table and write the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    # The first 300 usable lessons (file order) keep a run near two minutes on two shared cores.
    parser.add_argument("--limit", type=int, default=300, help="first N usable lessons (default 300; 0: all)")
    parser.add_argument("--out", type=Path, default=Path(".reports/extraction.json"), help="where the JSON goes")
    parser.add_argument("--demo", type=Path, default=DEMO_MANIFEST, help="the demo corpus manifest")
    args = parser.parse_args(argv)
    for name, value in (("HF_HUB_OFFLINE", "1"), ("DO_NOT_TRACK", "1"), ("ANONYMIZED_TELEMETRY", "False")):
        os.environ.setdefault(name, value)

    report: dict[str, Any] = {}
    lessons_path = _data_folder() / "nasa_llis" / "lessons.jsonl"
    demo_manifest: Path = args.demo
    if not lessons_path.exists() and not demo_manifest.exists():
        print(f"no evaluation data: {lessons_path} and {demo_manifest} are absent")
        return 0
    from retrieval.embedders import UniversalSentenceEncoderEmbedder

    embedder = UniversalSentenceEncoderEmbedder(threads=2)
    if lessons_path.exists():
        lessons = read_lessons(lessons_path, args.limit or None)
        subset = f"the first {args.limit} usable" if args.limit else "all usable"
        report["nasa_llis"] = {"subset": subset, **evaluate_lessons(lessons, embedder)}
        _print_table(report["nasa_llis"], subset)
    else:
        print(f"NASA lessons absent ({lessons_path}): skipped")
    if demo_manifest.exists():
        report["demo"] = evaluate_demo(demo_notes(demo_manifest), CueExtractor(embedder=embedder))
        print("demo corpus:", ", ".join(f"{key} {value}" for key, value in report["demo"].items()))
    else:
        print(f"demo corpus absent ({demo_manifest}): skipped")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"report written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
