"""Restarts: counts and search results are the same after a clean restart and after a SIGKILL of a writer.

Below and above 1,000 vectors: Chroma persists its HNSW index only past a sync threshold and replays its
log into it on start (an upstream bug once lost the index on restart above about 1,000). Each phase runs in
its own process: one writes and exits cleanly, the next checks, writes more and is killed before Chroma
flushes, the last checks again. The start-up times (opening the services, then the first query, which loads
the index and replays the un-flushed log) are printed for the report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from retrieval.settings import RetrievalSettings

ROOT = Path(__file__).parents[2]
TURNS = 10
QUERIES = (
    "graisser la came avant le démarrage",
    "réglage du poste de thermoformage",
    "changer le joint sans arrêter la ligne",
    "the camera rejects too many trays",
    "rw0042k",
    "rw0007k",
)
PEOPLE = ("Karim", "Sophie", "Lucas", "Emma", "Nadia")
TOPICS = ("la came", "le joint", "la caméra", "le convoyeur", "la bobine", "le vérin", "la soudure")


def note_text(n: int) -> str:
    """Note ``n``: ``TURNS`` speaker turns (one chunk each), its first with a token of its own."""
    turns = [
        f"{PEOPLE[(n + t) % len(PEOPLE)]} : sur le poste {n}, pour {TOPICS[(n * 3 + t) % len(TOPICS)]}, "
        f"on vérifie le réglage {t} avant le démarrage{f' (repère rw{n:04d}k)' if t == 0 else ''}."
        for t in range(TURNS)
    ]
    return f"# Poste {n}\n\n" + "\n\n".join(turns) + "\n"


def _write(services: Any, start: int, count: int) -> None:
    import datetime as dt

    from capture.ingestion import NoteMetadata

    for n in range(start, start + count):
        metadata = NoteMetadata(
            kind="circle",
            community="maintenance",
            session_date=dt.date(2026, 1, 1) + dt.timedelta(days=n % 300),
            visibility="public",
            external_id=f"restart-{n}",
        )
        services.ingestor.ingest_text(note_text(n), metadata)


def _snapshot(services: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    from retrieval.access import Viewer
    from retrieval.records import ChunkRecord, NoteRecord

    with services.knowledge.sessions() as session:
        notes = session.scalar(select(func.count()).select_from(NoteRecord))
        chunks = session.scalar(select(func.count()).select_from(ChunkRecord))
    results = {
        f"{mode}:{query}": [hit.chunk_id for hit in services.searcher.search(query, Viewer.public(), k=10, mode=mode)]
        for query in QUERIES
        for mode in ("dense", "hybrid", "lexical")
    }
    store = services.knowledge.store
    return {"notes": notes, "chunks": chunks, "vectors": store.count(), "ids": len(store.all_ids()), "results": results}


def phase(data_dir: str, write_from: int, write_count: int, then: str) -> None:
    """One process's life: open (timed), snapshot, write, snapshot again; then exit cleanly or wait to be killed."""
    from api.services import build_services
    from capture.settings import CaptureSettings
    from retrieval.access import Viewer

    started = time.perf_counter()
    services = build_services(RetrievalSettings(data_dir=Path(data_dir)), CaptureSettings())
    opened = time.perf_counter() - started
    services.searcher.search(QUERIES[0], Viewer.public(), k=1, mode="dense")
    first_query = time.perf_counter() - started - opened
    before = _snapshot(services)
    _write(services, write_from, write_count)
    after = _snapshot(services)
    repaired = services.startup_repair.disagreements() if services.startup_repair is not None else None
    report = {"open_s": opened, "first_query_s": first_query, "repaired": repaired, "before": before, "after": after}
    print(json.dumps(report), flush=True)
    if then == "wait":
        sys.stdin.read()  # until the test kills this process, before anything is flushed
    services.close()


def _start(data_dir: Path, write_from: int, write_count: int, then: str) -> subprocess.Popen[str]:
    code = (
        "from tests.reliability.test_restart import phase; "
        f"phase({str(data_dir)!r}, {write_from}, {write_count}, {then!r})"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "COMPAGNON_DATA_DIR": str(data_dir)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _report(process: subprocess.Popen[str]) -> dict[str, Any]:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, f"the phase process exited with {process.wait(timeout=60)}"
    report: dict[str, Any] = json.loads(line)
    return report


@pytest.mark.slow
@pytest.mark.parametrize(
    "chunks",
    [
        300,
        pytest.param(
            int(os.environ.get("RESTART_CHUNKS", "1500")),
            marks=pytest.mark.skipif(
                "RESTART_CHUNKS" not in os.environ, reason="above the sync threshold: make test-crash"
            ),
        ),
    ],
)
def test_counts_and_results_survive_a_clean_restart_and_a_kill(tmp_path: Path, chunks: int) -> None:
    data_dir = tmp_path / "data"
    notes = chunks // TURNS

    writer = _start(data_dir, 0, notes, "exit")
    written = _report(writer)
    stdout, _ = writer.communicate(timeout=600)
    assert writer.returncode == 0 and not stdout
    assert written["after"]["chunks"] == chunks and written["after"]["vectors"] == chunks

    restarted = _start(data_dir, notes, notes // 2, "wait")  # writes half as much again, then is killed
    checked = _report(restarted)
    restarted.send_signal(signal.SIGKILL)
    restarted.communicate(timeout=60)
    assert checked["before"] == written["after"]  # after the clean restart
    assert not any(checked["repaired"].values())  # Chroma kept everything: nothing was embedded again

    recovered = _start(data_dir, 0, 0, "exit")
    after_kill = _report(recovered)
    recovered.communicate(timeout=600)
    assert recovered.returncode == 0
    assert after_kill["before"] == checked["after"]  # after the kill
    assert not any(after_kill["repaired"].values())
    total = chunks + (notes // 2) * TURNS
    assert after_kill["before"]["chunks"] == total and after_kill["before"]["ids"] == total
    assert all(after_kill["before"]["results"].values())
    print(
        f"\nrestart with {chunks} then {total} chunks: open {written['open_s']:.2f} s empty, "
        f"{checked['open_s']:.2f} s + first query {checked['first_query_s']:.2f} s after a clean restart, "
        f"{after_kill['open_s']:.2f} s + first query {after_kill['first_query_s']:.2f} s after a kill "
        f"with {total - chunks} vectors written since"
    )
