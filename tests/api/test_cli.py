"""The ``compagnon`` command line, run in-process on a temporary data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.cli import main

NOTE_FR = "# Cercle qualité\n\nSophie : on recalibre la caméra de vision chaque lundi avant la production.\n"
NOTE_EN = "# Quality pair\n\nSophie: we clean the vision camera lens at every shift change.\n"


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "data"
    monkeypatch.setenv("COMPAGNON_DATA_DIR", str(directory))
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ingest_search_show_delete(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    note = tmp_path / "cercle.txt"
    note.write_text(NOTE_FR, encoding="utf-8")
    code, out, _ = run(
        capsys,
        "ingest",
        str(note),
        "--kind",
        "circle",
        "--community",
        "qualite",
        "--date",
        "2026-02-02",
        "--participant",
        "Sophie Martin:facilitator",
        "--json",
    )
    assert code == 0
    note_id = json.loads(out)["results"][0]["note_id"]

    code, out, _ = run(capsys, "search", "how often is the vision camera calibrated", "--k", "3", "--json")
    assert code == 0
    hits = json.loads(out)["hits"]
    assert hits[0]["note_id"] == note_id
    assert hits[0]["speaker"] == "Sophie Martin"
    assert hits[0]["community"] == "qualite"

    code, out, _ = run(capsys, "notes", "show", note_id, "--json")
    assert json.loads(out)["participants"] == [{"name": "Sophie Martin", "role": "facilitator"}]
    code, out, _ = run(capsys, "notes", "list")
    assert note_id in out
    code, out, _ = run(capsys, "notes", "delete", note_id)
    assert code == 0
    code, _, err = run(capsys, "notes", "show", note_id)
    assert code == 2
    assert "note_not_found" in err


def test_import_reports_each_bad_line_and_imports_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "en.md").write_text(NOTE_EN, encoding="utf-8")
    lines = [
        {
            "id": "a",
            "path": "en.md",
            "kind": "pair",
            "community": "qualite",
            "date": "2026-01-05",
            "participants": [{"name": "Sophie Martin", "role": "pair"}],
        },
        {"id": "b", "text": NOTE_FR, "kind": "circle", "community": "qualite", "date": "2026-01-06"},
        {"id": "c", "path": "missing.pdf", "kind": "circle", "community": "qualite", "date": "2026-01-07"},
        {"id": "d", "path": "../../etc/passwd", "kind": "circle", "community": "qualite", "date": "2026-01-07"},
        {"id": "e", "text": NOTE_FR, "kind": "webinar", "community": "qualite", "date": "2026-01-07"},
    ]
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("\n".join(json.dumps(line) for line in lines) + "\n{not json\n", encoding="utf-8")

    code, out, _ = run(capsys, "import", str(manifest), "--json")
    report = json.loads(out)
    assert code == 1
    assert report["imported"] == 2
    assert report["unchanged"] == 0
    assert [(f["id"], f["error_code"]) for f in report["failed"]] == [
        ("c", "invalid_metadata"),
        ("d", "invalid_metadata"),
        ("e", "invalid_metadata"),
        (None, "invalid_manifest"),
    ]
    code, out, _ = run(capsys, "import", str(manifest), "--json")
    assert json.loads(out)["unchanged"] == 2


def test_a_bad_file_is_refused_with_its_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "photo.txt"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    code, out, _ = run(
        capsys, "ingest", str(image), "--kind", "circle", "--community", "q", "--date", "2026-01-01", "--json"
    )
    assert code == 1
    assert json.loads(out)["results"][0]["error_code"] == "unsupported_format"
    code, _, err = run(capsys, "ingest", str(image), "--kind", "circle", "--community", "q", "--date", "2026-13-01")
    assert code == 2
    assert "invalid_metadata" in err
