"""Crash safety: an import SIGKILLed at random points, again and again, loses and duplicates nothing.

Each run of ``compagnon import --progress`` is killed a seeded random moment after a random acknowledgement
(or during its start-up), then retried. After each kill the records must hold every note acknowledged so
far; at the end, in a fresh process, all notes are there once, the stores agree without any repair, and each
note is found by searching its own token. ``make test-crash`` runs it on 1,000 notes with 20 kills.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import select

from retrieval.lock import open_records_readonly
from retrieval.records import NoteRecord
from retrieval.settings import RetrievalSettings

ROOT = Path(__file__).parents[2]
FULL_NOTES = int(os.environ.get("CRASH_NOTES", "0"))
FULL_KILLS = int(os.environ.get("CRASH_KILLS", "20"))
REPAIR_LOG = "start-up repair of "


def token(i: int) -> str:
    """The word only note ``i`` contains."""
    return f"qz{i:04d}vek"


def write_manifest(path: Path, count: int) -> Path:
    """A manifest of ``count`` small distinct notes, each with its own token."""
    with path.open("w", encoding="utf-8") as manifest:
        for i in range(count):
            text = f"# Réglage {i}\n\nKarim : pour le poste {i}, le réglage {token(i)} tient si on graisse la came.\n"
            line = {
                "id": f"crash-{i}",
                "text": text,
                "kind": "circle",
                "community": "maintenance",
                "date": "2026-02-01",
                "visibility": "public",
            }
            manifest.write(json.dumps(line, ensure_ascii=False) + "\n")
    return path


def probe(data_dir: str, count: int) -> None:
    """In a fresh process: the stores' state, their agreement and whether each note is found by its token."""
    from api.services import build_services
    from capture.settings import CaptureSettings
    from retrieval.access import Viewer

    services = build_services(RetrievalSettings(data_dir=Path(data_dir)), CaptureSettings(), reconcile=False)
    report = services.reconciler().check()
    with services.knowledge.sessions() as session:
        external = list(session.scalars(select(NoteRecord.external_id)))
    unfound = [
        i
        for i in range(count)
        if [hit.external_id for hit in services.searcher.search(token(i), Viewer.public(), k=1)] != [f"crash-{i}"]
    ]
    print(json.dumps({"report": report.as_json(), "external_ids": external, "unfound": unfound}))


@dataclass
class Figures:
    """What the crash campaign did and found."""

    notes: int
    kills: int = 0
    runs: int = 0
    acknowledged: set[str] = field(default_factory=set)
    lost: set[str] = field(default_factory=set)
    repaired_on_start: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def line(self, duplicated: int, orphans: int) -> str:
        """The figures as one line for the report."""
        repairs = ", ".join(f"{kind} {n}" for kind, n in sorted(self.repaired_on_start.items())) or "none"
        return (
            f"crash test: {self.notes} notes, {self.runs} runs, {self.kills} SIGKILLs, "
            f"{len(self.acknowledged)} acknowledged before the last run, {len(self.lost)} lost, "
            f"{duplicated} duplicated, {orphans} orphans at the end; repaired on start: {repairs}; "
            f"wall time {self.seconds:.0f} s"
        )


def _import(manifest: Path, data_dir: Path, out: Path, err: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "import", str(manifest), "--progress"],
            cwd=ROOT,
            env={**os.environ, "COMPAGNON_DATA_DIR": str(data_dir)},
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its parsing processes go with it when the test cleans up
        )


def _acks(out: Path) -> list[dict[str, object]]:
    acks = []
    for line in out.read_text(encoding="utf-8").splitlines():
        try:
            value = json.loads(line)
        except json.JSONDecodeError:  # the line being written when the process was killed
            continue
        if "line" in value:
            acks.append(value)
    return acks


def _repairs(err: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    for line in err.read_text(encoding="utf-8", errors="replace").splitlines():
        if REPAIR_LOG in line:
            found.update(ast.literal_eval(line[line.index("{") :]))
    return found


def _stored(data_dir: Path) -> set[str]:
    if not (data_dir / "compagnon.sqlite3").exists():  # killed before it created the records
        return set()
    sessions = open_records_readonly(RetrievalSettings(data_dir=data_dir).resolved_database_url)
    try:
        with sessions() as session:
            return {str(i) for i in session.scalars(select(NoteRecord.id))}
    finally:
        sessions.kw["bind"].dispose()


def _kill_at_random(process: subprocess.Popen[bytes], out: Path, target: int, rng: random.Random) -> bool:
    """SIGKILL the process a random moment after its ``target``-th acknowledgement (0: during start-up)."""
    if target == 0:
        time.sleep(rng.uniform(0.5, 8.0))
    else:
        while len(_acks(out)) < target and process.poll() is None:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))
    if process.poll() is not None:
        return False
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # leftover parsing processes of the killed one
    return True


def run_campaign(tmp_path: Path, count: int, kills: int, seed: int) -> tuple[Figures, dict[str, object]]:
    """Kill and retry the import ``kills`` times, finish it, then probe the stores in a fresh process."""
    started = time.monotonic()
    rng = random.Random(seed)
    manifest = write_manifest(tmp_path / "manifest.jsonl", count)
    data_dir = tmp_path / "data"
    figures = Figures(notes=count)
    while figures.kills < kills:
        out, err = tmp_path / f"run{figures.runs}.out", tmp_path / f"run{figures.runs}.err"
        process = _import(manifest, data_dir, out, err)
        figures.runs += 1
        stored_before = len(figures.acknowledged)
        spread = max(1, 2 * (count - stored_before) // (kills - figures.kills + 1))
        target = 0 if rng.random() < 0.15 else min(count, stored_before + rng.randint(1, spread))
        killed = _kill_at_random(process, out, target, rng)
        if not killed:
            assert process.wait(timeout=60) == 0, err.read_text()
        figures.kills += killed
        figures.repaired_on_start.update(_repairs(err))
        figures.acknowledged |= {str(a["note_id"]) for a in _acks(out) if a["status"] != "failed"}
        assert not [a for a in _acks(out) if a["status"] == "failed"]
        figures.lost |= figures.acknowledged - _stored(data_dir)
    out, err = tmp_path / "final.out", tmp_path / "final.err"
    final = _import(manifest, data_dir, out, err)
    figures.runs += 1
    assert final.wait(timeout=3600) == 0, err.read_text()
    figures.repaired_on_start.update(_repairs(err))
    summary = json.loads(out.read_text(encoding="utf-8").splitlines()[-1])
    assert summary["imported"] + summary["unchanged"] == count and summary["failed"] == []
    probed = subprocess.run(
        [sys.executable, "-c", f"from tests.reliability.test_crash import probe; probe({str(data_dir)!r}, {count})"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
        check=True,
    )
    figures.seconds = time.monotonic() - started
    return figures, json.loads(probed.stdout.splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("count", "kills"),
    [
        (120, 5),
        pytest.param(
            FULL_NOTES or 1000,
            FULL_KILLS,
            marks=pytest.mark.skipif(not FULL_NOTES, reason="the full campaign runs with make test-crash"),
        ),
    ],
)
def test_an_import_killed_at_random_points_loses_and_duplicates_nothing(tmp_path: Path, count: int, kills: int) -> None:
    figures, probed = run_campaign(tmp_path, count, kills, seed=count * 31 + kills)

    report = probed["report"]
    assert isinstance(report, dict)
    external_ids = probed["external_ids"]
    assert isinstance(external_ids, list)
    duplicated = len(external_ids) - len(set(external_ids))
    orphans = sum(report["disagreements"].values())
    print("\n" + figures.line(duplicated, orphans))
    assert figures.kills == kills
    assert not figures.lost
    assert sorted(external_ids) == sorted(f"crash-{i}" for i in range(count))
    assert report["consistent"], report["disagreements"]
    assert report["counts"] == {"notes": count, "chunks": count, "vectors": count}
    assert probed["unfound"] == []
