"""``compagnon people erase`` and ``compagnon audit``, run in-process on a temporary data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main

NOTE = "# Mentorat\n\nSophie : on recalibre la caméra de vision chaque lundi avant la production.\n"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("COMPAGNON_DATA_DIR", str(directory))
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_erase_from_the_command_line_then_read_the_audit(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    note = tmp_path / "mentorat.md"
    note.write_text(NOTE, encoding="utf-8")
    code, out = run(
        capsys,
        "ingest",
        str(note),
        "--kind",
        "mentoring",
        "--community",
        "qualite",
        "--date",
        "2026-02-02",
        "--participant",
        "Sophie Martin:mentor",
        "--participant",
        "Paul Girard:mentee",
        "--json",
    )
    assert code == 0
    note_id = json.loads(out)["results"][0]["note_id"]

    code, out = run(capsys, "people", "erase", "Sophie Martin", "--json")
    assert code == 0
    pseudonym = json.loads(out)["pseudonym"]

    def reads() -> int:
        _, out = run(capsys, "audit", "--action", "note.read", "--json")
        return sum(e["target_id"] == note_id for e in json.loads(out)["entries"])

    before = reads()
    code, out = run(capsys, "notes", "show", note_id, "--json")
    assert code == 0 and "Sophie" not in out and f"{pseudonym} : on recalibre" in json.loads(out)["text"]
    assert reads() == before + 1  # the admin read a private note they did not take part in
    assert not any(b"Sophie" in p.read_bytes() for p in data_dir.rglob("*") if p.is_file())

    code, out = run(capsys, "audit", "--json")
    assert code == 0
    assert ("person.erased", pseudonym) in [(e["action"], e["target_id"]) for e in json.loads(out)["entries"]]
    code, out = run(capsys, "people", "erase", "Sophie Martin")
    assert code == 2
