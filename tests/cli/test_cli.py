"""The CLI driven as a user would: a subprocess, real files, exit codes, stdout/stderr."""

import csv
import io
import json
import os

import pytest

from helpers import run_cli as run


def test_help_and_version():
    r = run("--help")
    assert r.returncode == 0 and "classify" in r.stdout
    assert run("--version").stdout.startswith("clipseek ")


def test_classify_json_with_skips(tiny_ckpt, image_dir):
    (image_dir / "zero.jpg").write_bytes(b"")
    (image_dir / "text.png").write_text("not really a png")
    r = run("classify", image_dir, "--labels", "cat,dog,red car", "--model", tiny_ckpt,
            "--format", "json", "--top-k", "2")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["results"]) == 6 and doc["labels"] == ["cat", "dog", "red car"]
    assert all(len(x["predictions"]) == 2 for x in doc["results"])
    reasons = {os.path.basename(s["path"]): s["reason"] for s in doc["skipped"]}
    assert set(reasons) == {"zero.jpg", "text.png"} and "empty" in reasons["zero.jpg"]


def test_classify_table_csv_and_templates(tiny_ckpt, image_dir, tmp_path):
    (image_dir / "bad.jpg").write_bytes(b"nope")
    r = run("classify", image_dir / "img0.png", image_dir / "bad.jpg", "-l", "cat,dog",
            "--model", tiny_ckpt, "--templates", "imagenet")
    assert r.returncode == 0 and "img0.png" in r.stdout
    assert "skipping" in r.stderr and "bad.jpg" in r.stderr
    r = run("classify", image_dir / "img0.png", image_dir / "bad.jpg", "-l", "cat,dog",
            "--model", tiny_ckpt, "--strict")
    assert r.returncode == 1
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    r = run("classify", str(image_dir / "*.png"), "--labels-file", labels, "--model", tiny_ckpt,
            "--format", "csv", "--top-k", "3", "--crop", "pad")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 5 * 3 and {row["label"] for row in rows} == {"cat", "dog", "bird"}
    for path in {row["path"] for row in rows}:
        assert abs(sum(float(x["score"]) for x in rows if x["path"] == path) - 1) < 1e-4


@pytest.mark.parametrize("args,message", [
    (["classify", "IMG", "--model", "CKPT"], "no labels"),
    (["classify", "/does/not/exist.jpg", "-l", "a,b", "--model", "CKPT"], "path not found"),
    (["classify", "IMG", "-l", "a,b", "--templates", "nope", "--model", "CKPT"], "unknown template set"),
    (["classify", "IMG", "-l", "a,b", "--format", "xml", "--model", "CKPT"], "unknown format"),
    (["classify", "IMG", "-l", "a,b", "--model", "/no/such/model"], "model directory not found"),
    (["classify", "IMG", "-l", "a,b", "--top-k", "0", "--model", "CKPT"], "--top-k"),
    (["classify", "IMG", "-l", "a,b", "--crop", "zoom", "--model", "CKPT"], "--crop must be one of"),
])
def test_bad_arguments_get_one_clear_line(tiny_ckpt, image_dir, args, message):
    args = [str(image_dir / "img1.png") if a == "IMG" else tiny_ckpt if a == "CKPT" else a for a in args]
    r = run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.stderr


def test_model_that_cannot_load_is_a_runtime_failure(image_dir):
    """Exit 1 (not 2): the arguments were well formed, the model could not be had (offline hub)."""
    r = run("classify", image_dir / "img1.png", "-l", "a,b", "--model", "someone/not-cached-clip")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "hub" in lines[0] and "Traceback" not in r.stderr


def test_nothing_readable_exits_nonzero(tiny_ckpt, tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"broken")
    r = run("classify", bad, "-l", "a,b", "--model", tiny_ckpt)
    assert r.returncode == 1 and "no image could be read" in r.stderr
