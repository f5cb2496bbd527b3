"""Tables fit the terminal (COLUMNS=80): paths shortened in the middle, numbers and headers whole;
full paths in csv/json; an empty result is one line, not an empty box."""

import csv
import io

import pytest
from dupes_images import copies_of, photo
from test_index_cli import cli

DEEP = "a-rather-long-folder-name/another-long-folder-name/and-one-more-long-folder"


@pytest.fixture
def deep(tmp_path, tiny_ckpt, capsys):
    root = tmp_path / "photos" / DEEP
    root.mkdir(parents=True)
    for i in range(3):
        photo(i).resize((300, 200)).save(root / f"holiday-photo-number-{i}-from-the-beach.png")
    copies_of(root / "holiday-photo-number-0-from-the-beach.png", root, "holiday-photo-number-0-copy")
    db = tmp_path / "g.db"
    assert cli(capsys, "index", tmp_path / "photos", "--db", db, "--model", tiny_ckpt)[0] == 0
    return db, tmp_path


def _fits(out: str) -> list[str]:
    lines = out.splitlines()
    assert lines and max(map(len, lines)) <= 80, "\n".join(lines)
    return lines


def test_tables_fit_80_columns(deep, capsys, monkeypatch):
    db, tmp = deep
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, err = cli(capsys, "search", "a red circle", "--db", db, "-k", "5")
    assert rc == 0, err
    lines = _fits(out)
    assert "relevance" in lines[1] and "\u2026" in out and "300x200" in out  # header and size whole
    assert len([l for l in lines if "\u2026" in l]) == 5  # one line per result
    rc, out, err = cli(capsys, "dupes", "--db", db)
    assert rc == 0 and "keep" in _fits(out)[3], out
    rc, out, err = cli(capsys, "dupes", "--db", db, "--move-extras-to", tmp / "extras", "--dry-run")
    assert rc == 0, err
    _fits(out)


def test_search_csv_has_full_paths_and_an_empty_result_is_one_line(deep, capsys, monkeypatch):
    db, tmp = deep
    monkeypatch.setenv("COLUMNS", "80")
    rc, out, err = cli(capsys, "search", "a red circle", "--db", db, "-k", "2", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and len(rows) == 2 and DEEP in rows[0]["path"] and rows[0]["width"] == "300"
    rc, out, err = cli(capsys, "search", "a red circle", "--db", db, "--threshold", "0.9999")
    assert rc == 0 and out == "" and err.strip().splitlines() == ["no results with score >= 0.9999"]


def test_no_image_readable_gives_no_empty_table_before_the_error(tmp_path, tiny_ckpt, capsys):
    d = tmp_path / "bad"
    d.mkdir()
    (d / "a.jpg").write_bytes(b"garbage")
    rc, out, err = cli(capsys, "classify", d, "-l", "cat,dog", "--model", tiny_ckpt)
    assert rc == 1 and "no image could be read" in err
    assert "\u2501" not in out and "image" not in out  # no table frame, no header
