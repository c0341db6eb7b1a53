"""Recall and precision of the personal-data detector on a gold set: ``python -m capture.privacy_evaluation GOLD``.

A gold line is ``{"text", "language", "participants": [names], "spans": [{"start", "end", "entity",
"participant"?}]}``. A gold span counts as found when a prediction of the same entity overlaps it, and a
prediction counts as correct when it overlaps a gold span of its entity: what matters for a reviewer and
for redaction is that the characters are covered, not where a recognizer put the span's edges.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from capture.privacy import ENTITIES, PiiDetector, PiiFinding, PresidioPiiDetector


@dataclass(frozen=True)
class GoldSpan:
    """An annotated span of personal data."""

    start: int
    end: int
    entity: str
    participant: bool = False


@dataclass(frozen=True)
class GoldExample:
    """A sentence from workplace notes, with the participants of its session and its annotated spans."""

    text: str
    language: str
    participants: tuple[str, ...]
    spans: tuple[GoldSpan, ...]


@dataclass(frozen=True)
class EntityScore:
    """How one entity type fared: gold spans found, predictions that were right."""

    entity: str
    gold: int
    predicted: int
    found: int
    correct: int

    @property
    def recall(self) -> float:
        """Share of the gold spans found (1.0 when there are none)."""
        return self.found / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        """Share of the predictions that were right (1.0 when there are none)."""
        return self.correct / self.predicted if self.predicted else 1.0


@dataclass(frozen=True)
class DetectorEvaluation:
    """Scores per entity type, and how often a found name was rightly told participant or third party."""

    scores: dict[str, EntityScore]
    persons_found: int
    participant_marks_right: int

    def as_json(self) -> dict[str, Any]:
        """The figures, rounded, as printed by the command."""
        return {
            "entities": {
                s.entity: {
                    "gold": s.gold,
                    "predicted": s.predicted,
                    "recall": round(s.recall, 3),
                    "precision": round(s.precision, 3),
                }
                for s in self.scores.values()
            },
            "participant_marking_accuracy": round(self.participant_marks_right / self.persons_found, 3)
            if self.persons_found
            else None,
        }


def load_gold(path: Path) -> list[GoldExample]:
    """Read a gold set, checking that every span's offsets fit its text."""
    examples: list[GoldExample] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        spans = tuple(
            GoldSpan(s["start"], s["end"], s["entity"], bool(s.get("participant", False))) for s in row["spans"]
        )
        for span, raw in zip(spans, row["spans"], strict=True):
            if span.entity not in ENTITIES or row["text"][span.start : span.end] != raw["text"]:
                raise ValueError(f"{path}:{number}: span {raw!r} does not fit its text")
        examples.append(GoldExample(row["text"], row.get("language", "fr"), tuple(row["participants"]), spans))
    return examples


def _overlaps(a: GoldSpan | PiiFinding, b: GoldSpan | PiiFinding) -> bool:
    return a.entity == b.entity and a.start < b.end and b.start < a.end


def evaluate_detector(gold_path: Path, detector: PiiDetector | None = None) -> DetectorEvaluation:
    """Run the detector (Presidio's by default) over a gold set; recall and precision per entity type."""
    detector = detector or PresidioPiiDetector()
    counts = {entity: [0, 0, 0, 0] for entity in ENTITIES}  # gold, predicted, found, correct
    persons_found = marks_right = 0
    for example in load_gold(gold_path):
        predicted = detector.scan([("text", example.text)], example.language, example.participants)
        for span in example.spans:
            counts[span.entity][0] += 1
            matches = [p for p in predicted if _overlaps(span, p)]
            if matches:
                counts[span.entity][2] += 1
            if matches and span.entity == "PERSON":
                persons_found += 1
                marks_right += all(p.participant == span.participant for p in matches)
        for finding in predicted:
            counts[finding.entity][1] += 1
            counts[finding.entity][3] += any(_overlaps(span, finding) for span in example.spans)
    scores = {entity: EntityScore(entity, *values) for entity, values in counts.items()}
    return DetectorEvaluation(scores, persons_found, marks_right)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the detector's figures on a gold set as JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("gold", type=Path, help="gold set in JSONL")
    arguments = parser.parse_args(argv)
    print(json.dumps(evaluate_detector(arguments.gold).as_json(), indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
