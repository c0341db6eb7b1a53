"""The answer evaluation: its metrics on tiny hand-made sets, the calibration set, and a clean exit without data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from retrieval.answer_evaluation import MemoEmbedder, calibration_questions, main, rates
from retrieval.embedders import Embedder

TURNS = [
    ("Anna", "Good morning everyone, shall we start with the budget?"),
    ("Ben", "The remote control prototype will use a rubber case so it survives being dropped."),
    ("Anna", "Why rubber rather than hard plastic?"),
    ("Ben", "Rubber absorbs the shock of a fall and it feels soft in the hand."),
    ("Carl", "Lunch is at noon in the canteen today."),
    ("Anna", "Let us meet again next Tuesday to review the marketing report."),
]
PARAGRAPHS = {
    "p-joint": (
        "Thermoformage",
        "Pour changer le joint du cadre de scellage, on passe la ligne en cadence réduite et on refroidit le cadre "
        "à la soufflette avant de retirer le joint avec une spatule en plastique.",
    ),
    "p-cafe": ("Café", "Le café est une boisson obtenue à partir des graines torréfiées du caféier."),
    "p-velo": ("Cyclisme", "Le Tour de France est une course cycliste par étapes créée en 1903."),
}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def tiny_data(root: Path) -> None:
    derived = root / "qmsum" / "derived"
    write_jsonl(
        derived / "test_turns.jsonl",
        [{"meeting_id": "M1", "turn": i, "speaker": s, "text": t} for i, (s, t) in enumerate(TURNS)],
    )
    write_jsonl(
        derived / "test_queries.jsonl",
        [
            {"qid": "M1#g0", "meeting_id": "M1", "type": "general", "query": "Summarize", "gold_turn_spans": []},
            {
                "qid": "M1#s0",
                "meeting_id": "M1",
                "type": "specific",
                "query": "Why did Ben choose a rubber case for the remote control?",
                "gold_turn_spans": [[1, 3]],
            },
        ],
    )
    beir = root / "piaf_fr" / "beir"
    write_jsonl(beir / "corpus.jsonl", [{"_id": k, "title": t, "text": x} for k, (t, x) in PARAGRAPHS.items()])
    write_jsonl(beir / "queries.jsonl", [{"_id": "q1", "text": "Comment change-t-on le joint du cadre de scellage ?"}])
    (beir / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tp-joint\t1\n", encoding="utf-8")


def test_the_rates_count_both_kinds_of_error() -> None:
    labelled = [(True, 0.5), (True, 0.1), (False, 0.05), (False, 0.3)]
    assert rates(labelled, 0.2) == {
        "answered_when_answerable": 0.5,
        "abstained_when_unanswerable": 0.5,
        "balanced": 0.5,
    }
    assert rates(labelled, 0.0)["answered_when_answerable"] == 1.0


def test_the_calibration_set_has_both_languages_and_both_labels() -> None:
    questions = calibration_questions()
    answerable = [q for q in questions if q["answerable"]]
    assert len(answerable) >= 40 and len(questions) - len(answerable) >= 25
    for label in (True, False):
        assert {q["language"] for q in questions if q["answerable"] is label} == {"fr", "en"}
    assert all(q["notes"] for q in answerable)


def test_the_memo_embeds_each_text_once(group_embedder: Embedder) -> None:
    memo = MemoEmbedder(group_embedder)
    first = memo.embed_documents(["un joint", "une spatule"])
    assert len(memo.memory) == 2
    again = memo.embed_documents(["une spatule", "un joint", "un joint"])
    assert len(memo.memory) == 2
    assert (again[1] == first[0]).all() and memo.embed_query("un joint").shape == (group_embedder.dimension,)


def test_the_evaluation_measures_citations_and_abstention(
    tmp_path: Path, group_embedder: Embedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny_data(tmp_path / "shared")
    monkeypatch.setenv("COMPAGNON_EVAL_DATA", str(tmp_path / "shared"))
    out = tmp_path / "answers.json"
    argv = ["--out", str(out), "--cache-dir", str(tmp_path / "cache"), "--demo-data", str(tmp_path / "none")]
    assert main(argv, embedder_factory=lambda: group_embedder) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    qmsum = report["qmsum"]
    assert (qmsum["meetings"], qmsum["queries"]) == (1, 1)
    assert qmsum["citation_precision"] > 0.5 and qmsum["gold_span_recall"] == 1.0
    piaf = report["piaf_fr"]
    assert (piaf["answerable"], piaf["unanswerable"]) == (1, 1)
    assert piaf["at_threshold"]["abstained_when_unanswerable"] == 1.0
    assert "demo" not in report
    printed = capsys.readouterr().out
    assert "QMSum specific" in printed and "demo calibration skipped" in printed
    # The turn vectors were cached: a second run reuses them.
    assert list((tmp_path / "cache").glob("*.npy"))


def test_no_data_is_said_and_is_not_an_error(
    tmp_path: Path, group_embedder: Embedder, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COMPAGNON_EVAL_DATA", str(tmp_path / "absent"))
    out = tmp_path / "answers.json"
    argv = ["--out", str(out), "--demo-data", str(tmp_path / "none")]
    assert main(argv, embedder_factory=lambda: group_embedder) == 0
    assert "evaluation data absent" in capsys.readouterr().out
    assert set(json.loads(out.read_text(encoding="utf-8"))) == {"data", "embedder", "threshold", "seconds"}
