"""`clipseek search` with filters, --add/--subtract and --relevant, and its bad-input lines."""

import json

import pytest

import clipseek
from clipseek.gallery.query import Filter
from helpers import cli_in_process as cli
from helpers import make_image


@pytest.fixture(scope="module")
def gallery(tmp_path_factory, tiny_ckpt):
    root = tmp_path_factory.mktemp("s")
    photos = root / "photos"
    (photos / "trip").mkdir(parents=True)
    for i in range(12):
        size = [(64, 40), (40, 64), (48, 48)][i % 3]
        make_image(i, size).save(photos / ("trip" if i % 2 else ".") / f"p{i:02d}{'.png' if i % 4 else '.jpg'}")
    db = root / "g.db"
    from clipseek.cli import main

    assert main(["index", str(photos), "--db", str(db), "--model", tiny_ckpt]) == 0
    return db, photos


def search_json(capsys, db, *args):
    rc, out, err = cli(capsys, "search", *args, "--db", db, "--format", "json")
    assert rc == 0, err
    return json.loads(out), err


def test_filters_terms_and_relevance_from_the_command_line(capsys, gallery, encoder):
    db, photos = gallery
    body, _ = search_json(capsys, db, "a red circle", "-k", "12", "--in", photos / "trip",
                          "--orientation", "landscape", "--ext", "png")
    with clipseek.Gallery(str(db), encoder) as g:
        want = g.search("a red circle", k=12, where=Filter.parse([str(photos / "trip")], orientation="landscape",
                                                                 ext="png"))
    assert [r["id"] for r in body["results"]] == [r.id for r in want] and want
    assert all(r["width"] > r["height"] and "/trip/" in r["path"] and r["path"].endswith(".png")
               for r in body["results"])
    assert "under" in body["filter"] and "landscape" in body["filter"]

    body, _ = search_json(capsys, db, "a red circle", "--add", "0.5:blue", "--subtract", photos / "p00.jpg",
                          "--min-size", "48x48", "-k", "5")
    with clipseek.Gallery(str(db), encoder) as g:
        want = g.search("a red circle", k=5, add=["0.5:blue"], subtract=[str(photos / "p00.jpg")],
                        where=Filter.parse(min_size="48x48"))
    assert [r["id"] for r in body["results"]] == [r.id for r in want]
    assert body["add"] == ["0.5:blue"] and all(r["height"] >= 48 for r in body["results"])

    body, _ = search_json(capsys, db, "a red circle", "-k", "12", "--relevant")
    assert body["results"] and all(r["relevant"] and r["relevance"] >= 0.9 for r in body["results"])
    rc, out, _ = cli(capsys, "search", "a red circle", "--db", db, "-k", "3")
    assert rc == 0 and "relevance" in out and "*" in out  # the best match is always relevant


def test_a_filter_no_image_passes_says_so_and_exits_0(capsys, gallery):
    db, photos = gallery
    body, err = search_json(capsys, db, "a red circle", "--in", photos / "trip", "--after", "2200-01-01")
    assert body["results"] == [] and "no image passes the filter (under " in err
    rc, out, err = cli(capsys, "search", "x", "--db", db, "--after", "2200-01-01")
    assert rc == 0 and "no image passes the filter (after 2200-01-01" in err


def test_a_folder_that_is_not_in_the_gallery_is_an_error_naming_its_folders(capsys, gallery):
    db, photos = gallery
    rc, out, err = cli(capsys, "search", "a red circle", "--db", db, "--in", photos / "nope")
    lines = err.strip().splitlines()
    assert rc == 2 and out == "" and len(lines) == 1, err
    assert f"--in {photos / 'nope'}: no image of this gallery is in that folder" in lines[0]
    assert lines[0].endswith(f"the gallery's folders are {photos}")


@pytest.mark.parametrize("args, message", [
    (["--orientation", "diagonal"], "unknown orientation 'diagonal'"),
    (["--after", "last tuesday"], "cannot read after date 'last tuesday'"),
    (["--min-size", "big"], "cannot read min-size 'big'"),
    (["--ext", "docx"], "unknown image extension 'docx'"),
    (["--add", "1..5:sunset"], "weight '1..5' in '1..5:sunset' is not a number"),
    (["--add", "sunset.jpg"], "image not found: sunset.jpg"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, gallery, args, message):
    db, _ = gallery
    rc, out, err = cli(capsys, "search", "a red circle", "--db", db, *args)
    assert rc == 2 and out == "" and message in err and err.count("\n") == 1, err


def test_an_add_path_that_is_not_an_image_exits_2(capsys, gallery, tmp_path):
    db, _ = gallery
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    rc, _, err = cli(capsys, "search", "a red circle", "--db", db, "--add", bad)
    assert rc == 2 and "notes.png is not a readable image" in err and err.count("\n") == 1
