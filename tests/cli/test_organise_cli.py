"""`clipseek classify --sort-into`, `clipseek undo` and `clipseek dupes`, driven as a user would."""

import csv
import hashlib
import io
import json
import os

import pytest

from helpers import cli_in_process as cli
from helpers import make_image


def tree(folder) -> dict[str, str]:
    return {os.path.relpath(p, folder): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in map(str, folder.rglob("*")) if os.path.isfile(p)}


@pytest.fixture
def sort_photos(tmp_path):
    d = tmp_path / "photos"
    (d / "trip").mkdir(parents=True)
    for i in range(6):
        make_image(i, (40 + i, 36)).save(d / ("trip" if i % 2 else ".") / f"p{i}.png")
    make_image(1, (41, 36)).save(d / "p1.png")  # same name as trip/p1.png, other content
    (d / "broken.jpg").write_bytes(b"\xff\xd8 nope")
    return d


def test_sort_move_then_undo_round_trip(tmp_path, tiny_ckpt, sort_photos, capsys):
    before = tree(sort_photos)
    out = tmp_path / "sorted"
    rc, stdout, err = cli(capsys, "classify", sort_photos, "-l", "cat,dog,CON", "--model", tiny_ckpt,
                          "--sort-into", out, "--mode", "move", "--format", "json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert len(doc["files"]) == 7 and all(f["done"] for f in doc["files"]) and doc["mode"] == "move"
    assert [os.path.basename(s["path"]) for s in doc["skipped"]] == ["broken.jpg"] and "clipseek undo" in err
    folders = {os.path.relpath(os.path.dirname(f["destination"]), out) for f in doc["files"]}
    assert folders <= {"cat", "dog", "label CON"}  # a reserved name gets a safe one
    assert len({f["destination"] for f in doc["files"]}) == 7  # two p1.png: one got a suffix
    assert sorted(os.listdir(sort_photos)) == ["broken.jpg", "trip"] and os.listdir(sort_photos / "trip") == []
    rows = list(csv.DictReader(open(doc["log"], newline="")))
    assert [r["source"] for r in rows] == [f["source"] for f in doc["files"]]
    assert set(rows[0]) == {"source", "destination", "label", "probability", "mode"}

    rc, stdout, _ = cli(capsys, "undo", doc["log"])
    assert rc == 0 and stdout.startswith("7 files put back")
    assert tree(sort_photos) == before  # every file back, byte-identical
    assert sorted(os.listdir(out)) == [os.path.basename(doc["log"])]


def test_sort_copy_unsure_and_dry_run(tmp_path, tiny_ckpt, sort_photos, capsys):
    out = tmp_path / "sorted"
    rc, stdout, err = cli(capsys, "classify", sort_photos, "-l", "cat,dog", "--model", tiny_ckpt,
                          "--sort-into", out, "--dry-run", "--format", "csv")
    assert rc == 0 and not out.exists() and "dry run: 7 files would be copied" in err
    assert len(list(csv.DictReader(io.StringIO(stdout)))) == 7
    before = tree(sort_photos)
    rc, _, err = cli(capsys, "classify", sort_photos, "-l", "cat,dog", "--model", tiny_ckpt,
                     "--sort-into", out, "--none-below", "1")  # no cosine reaches 1
    assert rc == 0 and tree(sort_photos) == before  # copies: the sources stay
    assert sorted(os.listdir(out / "_unsure")) == ["p0.png", "p1-1.png", "p1.png", "p2.png", "p3.png",
                                                    "p4.png", "p5.png"]
    log = err.strip().rsplit(" ", 1)[1]
    rc, _, err = cli(capsys, "classify", sort_photos, "-l", "cat,dog", "--model", tiny_ckpt,
                     "--sort-into", out, "--unsure-below", "0.999", "--log", tmp_path / "second.csv")
    assert rc == 0 and len(os.listdir(out / "_unsure")) == 14  # never overwritten: suffixes
    assert cli(capsys, "undo", tmp_path / "second.csv")[0] == 0
    rc, stdout, _ = cli(capsys, "undo", log)
    assert rc == 0 and tree(sort_photos) == before and not (out / "_unsure").exists()
    assert stdout.startswith("7 copies removed (the originals stayed in place), 0 left alone"), stdout
    rc, stdout, _ = cli(capsys, "undo", log)  # a second undo: already done
    assert rc == 0 and stdout.startswith("nothing to undo: all 7 files in "), stdout
    assert "undone already" in stdout


def test_sort_bad_input_one_line(tmp_path, tiny_ckpt, sort_photos, capsys):
    cases = [
        (["classify", sort_photos, "-l", "a,b", "--model", tiny_ckpt, "--sort-into", sort_photos / "out"],
         "inside the source folder"),
        (["classify", sort_photos, "-l", "a,b", "--model", tiny_ckpt, "--sort-into", tmp_path / "o", "--mode", "zip"],
         "--mode must be one of"),
        (["classify", sort_photos, "-l", "a,b", "--model", tiny_ckpt, "--sort-into", tmp_path / "o",
          "--unsure-below", "2"], "--unsure-below must be"),
        (["undo", tmp_path / "missing.csv"], "log not found"),
        (["undo", sort_photos / "p0.png"], "not a clipseek log"),
    ]
    for args, message in cases:
        rc, _, err = cli(capsys, *args)
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and message in lines[0], (args, err)
    assert not (sort_photos / "out").exists() and not (tmp_path / "o").exists()


def _dupe_folder(root):
    from dupes_images import copies_of, photo

    (root / "copies").mkdir(parents=True)
    for i in range(4):
        photo(i).save(root / f"p{i}.png")
    copies_of(root / "p0.png", root / "copies", "p0")
    copies_of(root / "p1.png", root, "p1")


def test_dupes_formats_move_extras_and_undo(tmp_path, tiny_ckpt, capsys):
    root = tmp_path / "photos"
    _dupe_folder(root)
    db = tmp_path / "g.db"
    assert cli(capsys, "index", root, "--db", db, "--model", tiny_ckpt)[0] == 0
    rc, stdout, err = cli(capsys, "dupes", "--db", db, "--format", "json")
    assert rc == 0 and "2 groups, 8 extra copies" in err
    groups = json.loads(stdout)["groups"]
    assert [os.path.basename(g["keep"]) for g in groups] == ["p0.png", "p1.png"]
    assert {m["reason"] for g in groups for m in g["members"]} == {"keep", "identical", "phash"}
    rc, stdout, _ = cli(capsys, "dupes", "--db", db, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert len(rows) == 10 and sum(int(r["keep"]) for r in rows) == 2
    rc, stdout, _ = cli(capsys, "dupes", "--db", db)
    assert rc == 0 and "keep" in stdout and "p0-q60.jpg" in stdout

    before = tree(root)
    extras = tmp_path / "extras"
    rc, stdout, err = cli(capsys, "dupes", "--db", db, "--move-extras-to", extras, "--format", "json")
    assert rc == 0, err
    doc = json.loads(stdout)
    assert sorted(os.path.relpath(f["destination"], extras) for f in doc["files"]) == sorted(
        ["copies/p0-bytes.png", "copies/p0-q60.jpg", "copies/p0-half.png", "copies/p0-crop.png",
         "p1-bytes.png", "p1-q60.jpg", "p1-half.png", "p1-crop.png"])  # relative paths kept
    assert sorted(tree(root)) == ["p0.png", "p1.png", "p2.png", "p3.png"]
    assert cli(capsys, "undo", doc["log"])[0] == 0 and tree(root) == before

    rc, _, err = cli(capsys, "dupes", "--db", db, "--move-extras-to", root / "x")
    assert rc == 2 and "inside the source folder" in err and not (root / "x").exists()
    rc, _, err = cli(capsys, "dupes", "--db", tmp_path / "none.db")
    assert rc == 2 and "no clipseek database" in err
    rc, _, err = cli(capsys, "dupes", "--db", db, "--threshold", "1.5")
    assert rc == 2 and "--threshold" in err
    rc, stdout, _ = cli(capsys, "dupes", "--db", db, "--similar", "--threshold", "0.0001", "--format", "json")
    assert rc == 0 and len(json.loads(stdout)["groups"]) == 1  # everything is "similar" at cosine 0.0001
