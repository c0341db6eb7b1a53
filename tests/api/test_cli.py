"""The ``compagnon`` command line, run in-process on a temporary data directory."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from api.accounts import Accounts
from api.cli import main
from retrieval.database import open_database
from retrieval.settings import RetrievalSettings

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


def test_accounts_from_the_command_line_and_acting_as_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    public, private = tmp_path / "public.txt", tmp_path / "private.txt"
    public.write_text(NOTE_FR, encoding="utf-8")
    private.write_text("# Mentorat\n\nSophie : Nadia hésite à changer d'équipe.\n", encoding="utf-8")
    common = ("--community", "qualite", "--date", "2026-02-02")
    run(capsys, "ingest", str(public), "--kind", "circle", "--visibility", "public", *common, "--json")
    code, out, _ = run(
        capsys,
        "ingest",
        str(private),
        "--kind",
        "mentoring",
        "--participant",
        "Sophie Martin:mentor",
        *common,
        "--json",
    )
    secret = json.loads(out)["results"][0]["note_id"]

    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
    code, out, _ = run(
        capsys, "users", "create", "sophie", "--role", "facilitator", "--person", "Sophie Martin", "--password-stdin"
    )
    assert (code, out.strip()) == (0, "created sophie (facilitator)")
    run(capsys, "users", "create", "bob", "--role", "employee", "--community", "logistique")
    code, out, _ = run(capsys, "users", "list", "--json")
    assert [(u["login"], u["role"], u["has_password"]) for u in json.loads(out)["users"]] == [
        ("bob", "employee", False),
        ("sophie", "facilitator", True),
    ]
    assert "argon2" not in out
    code, out, err = run(capsys, "users", "token", "bob", "--name", "cli")
    assert code == 0 and "shown once" in err
    accounts = Accounts(open_database(RetrievalSettings().resolved_database_url))
    assert accounts.token_viewer(out.strip()).label == "bob"
    assert accounts.verify_password("sophie", "a long enough password").role == "facilitator"

    def notes_seen(login: str) -> set[str]:
        code, out, _ = run(capsys, "--as", login, "notes", "list", "--json")
        assert code == 0
        return {note["visibility"] for note in json.loads(out)["notes"]}

    assert notes_seen("sophie") == {"public", "private"}
    assert notes_seen("bob") == {"public"}
    code, _, err = run(capsys, "--as", "bob", "notes", "show", secret)
    assert (code, "note_not_found" in err) == (2, True)
    code, _, err = run(capsys, "--as", "bob", "ingest", str(public), "--kind", "circle", *common)
    assert (code, "forbidden" in err) == (2, True)
    code, _, err = run(capsys, "--as", "sophie", "users", "list")
    assert (code, "forbidden" in err) == (2, True)

    assert run(capsys, "users", "disable", "bob")[0] == 0
    code, _, err = run(capsys, "--as", "bob", "notes", "list")
    assert (code, "unauthorized" in err) == (2, True)
    code, _, err = run(capsys, "--as", "nobody", "notes", "list")
    assert (code, "not_found" in err) == (2, True)
