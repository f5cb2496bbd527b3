"""`clipseek eval` end to end: real files, a tiny checkpoint, JSON/table output, report directory, errors.

The tiny model is random, so zero-shot numbers are checked against a brute-force recomputation from the
same vectors; the linear probe (colour classes are trivially separable in any embedding) must be ~perfect.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import assert_schema_documented
from helpers import run_cli as run

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220), "other": (128, 128, 128)}


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours") / "data"
    rng = np.random.RandomState(0)
    for split, n in (("train", 10), ("test", 6)):
        for c, rgb in COLOURS.items():
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n):
                a = np.clip(np.array(rgb)[None, None] + rng.randn(30, 36, 3) * 25, 0, 255).astype(np.uint8)
                Image.fromarray(a).save(d / f"{c}{i}.png")
    (root / "test" / "red" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def brute_force_top1(tiny_ckpt, paths, labels, classes, templates):
    from clipseek import load_model
    from clipseek.core.prompts import build_classifier
    from clipseek.embed.stages import embed_all

    enc = load_model(tiny_ckpt, device="cpu")
    emb = embed_all(enc, paths)
    w = build_classifier(enc, classes, templates)
    pred = (emb.vectors @ w.T).argmax(1)
    y = [labels[paths.index(p)] for p in emb.paths]
    return float(np.mean(pred == np.array(y)))


def test_eval_json_report_and_brute_force_parity(tiny_ckpt, colour_data, tmp_path):
    rep = tmp_path / "rep"
    r = run("eval", colour_data, "--model", tiny_ckpt, "--template", "a photo of a {}.", "--templates",
            "imagenet", "--format", "json", "--report", rep, "--cache-dir", tmp_path / "cache")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == "clipseek.eval/1" and doc["dataset"]["split"] == "test"
    assert [(row["kind"], row["prompt_set"]) for row in doc["rows"]] == [
        ("zero-shot", "a photo of a {}."), ("zero-shot", "imagenet"), ("linear-probe", "linear probe")]
    assert [os.path.basename(s["path"]) for s in doc["skipped"]] == ["broken.jpg"]
    for row in doc["rows"]:
        m = row["metrics"]
        assert m["n"] == 24 and m["n_skipped"] == 1 and m["top5"] is None
        assert sum(map(sum, row["confusion_matrix"])) == 24
    probe = doc["rows"][2]
    assert probe["metrics"]["top1"] >= 0.95 and probe["linear_probe"]["n_train"] == 40
    zs = doc["rows"][0]
    assert zs["n_templates"] == 1 and doc["rows"][1]["n_templates"] == 80
    assert zs["calibration"]["fitted_on"] == "2-fold cross-fit on the evaluated split"  # never train
    nt = zs["none_of_these"]          # the data has an "other" class: the decision detects its images
    assert nt["detects"] == "other-class images" and nt["threshold"] is not None
    # zero-shot accuracy equals a brute-force recomputation from the same model and images
    classes = doc["dataset"]["classes"]
    paths = [str(p) for c in classes for p in sorted((colour_data / "test" / c).iterdir())]
    labels = [classes.index(os.path.basename(os.path.dirname(p))) for p in paths]
    assert zs["metrics"]["top1"] == pytest.approx(brute_force_top1(tiny_ckpt, paths, labels, classes,
                                                                   ["a photo of a {}."]))
    # report directory: complete, consistent with stdout, with images and the skipped file
    assert sorted(os.listdir(rep)) == ["confusion_0.png", "confusion_1.png", "confusion_2.png",
                                       "report.html", "report.json", "report.md", "thumbs"]
    saved = json.loads((rep / "report.json").read_text())
    assert saved["rows"] == doc["rows"]
    assert Image.open(rep / "confusion_0.png").size[0] > 200
    html = (rep / "report.html").read_text()
    assert "1 skipped" in html and "broken.jpg" in html and "confusion_0.png" in html
    n_thumbs = len(os.listdir(rep / "thumbs"))
    assert n_thumbs > 0 and html.count("<img src='thumbs/") >= n_thumbs
    assert "(n=24, 1 skipped)" in (rep / "report.md").read_text()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".rep")]   # no temp dirs left behind
    assert_schema_documented(doc)


def test_eval_table_from_manifest_fills_cache(tiny_ckpt, colour_data, tmp_path):
    lines = [f"{p.relative_to(colour_data)},{p.parent.name}" for p in sorted(colour_data.glob("test/*/*.png"))]
    (colour_data / "m.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    args = ["eval", colour_data / "m.csv", "--model", tiny_ckpt, "--cache-dir", tmp_path / "cache"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert "top-1" in r.stdout and "n=24, 0 skipped" in r.stdout
    import sqlite3

    db = sqlite3.connect(tmp_path / "cache" / "embeddings.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM image_vectors").fetchone()[0] == 24


@pytest.mark.parametrize("extra,message", [
    (["--split", "val"], "split 'val' not found"),
    (["--format", "csv"], "unknown format"),
    (["--task", "segmentation"], "--task must be"),
    (["--templates", "nope"], "unknown template set"),
])
def test_eval_bad_input_one_line(tiny_ckpt, colour_data, extra, message):
    import io
    from contextlib import redirect_stderr

    from clipseek.cli import main

    err = io.StringIO()
    with redirect_stderr(err):
        rc = main(["eval", str(colour_data), "--model", tiny_ckpt, "--no-cache", *extra])
    lines = err.getvalue().strip().splitlines()
    assert rc == 2 and len(lines) == 1 and message in lines[0]


def test_eval_unknown_label_in_manifest(tmp_path, tiny_ckpt):
    r = run("eval", _manifest_with_unknown_label(tmp_path), "--model", tiny_ckpt, "--no-cache")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0
    assert "label 'cow'" in r.stderr and "not a known class" in r.stderr


def _manifest_with_unknown_label(tmp_path):
    from helpers import make_image

    make_image(0).save(tmp_path / "a.png")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    (tmp_path / "m.jsonl").write_text('{"path": "a.png", "label": "cat"}\n{"path": "a.png", "label": "cow"}\n')
    return tmp_path / "m.jsonl"


def test_retrieval_task_matches_brute_force(tiny_ckpt, tmp_path, capsys):
    from clipseek import load_model
    from clipseek.cli import main
    from clipseek.evaluation import metrics as ev
    from helpers import make_image

    caps = []
    words = ["cat", "dog", "car", "tree", "bird", "fish", "house", "boat"]
    for i, w in enumerate(words):
        make_image(i).save(tmp_path / f"{i}.png")
        caps.append({"image": f"{i}.png", "captions": [f"a photo of a {w}", f"the {w}"]})
    (tmp_path / "bad.png").write_bytes(b"")
    caps.append({"image": "bad.png", "caption": "nothing"})
    (tmp_path / "caps.jsonl").write_text("\n".join(map(json.dumps, caps)) + "\n")
    rc = main(["eval", str(tmp_path / "caps.jsonl"), "--task", "retrieval", "--model", tiny_ckpt,
               "--format", "json", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    m = doc["rows"][0]["metrics"]
    assert m["n_images"] == 8 and m["n_captions"] == 16 and m["n_skipped"] == 1
    assert_schema_documented(doc)
    enc = load_model(tiny_ckpt, device="cpu")
    iv = enc.encode_images([Image.open(tmp_path / f"{i}.png") for i in range(8)])
    tv = enc.encode_texts([c for d in caps[:8] for c in d["captions"]])
    ref = ev.retrieval_recall(iv, tv, np.repeat(np.arange(8), 2))
    for k in (1, 5, 10):
        assert m[f"text_to_image_recall@{k}"] == pytest.approx(ref[f"text_to_image_recall@{k}"])
        assert m[f"image_to_text_recall@{k}"] == pytest.approx(ref[f"image_to_text_recall@{k}"])


def test_report_write_is_atomic(tmp_path, monkeypatch):
    from clipseek.evaluation import report

    doc = report.build_document("retrieval", {"source": "x"}, [], [])
    out = report.write_report(doc, tmp_path / "rep")
    first = (out / "report.json").read_text()

    def boom(*a):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "render_html", boom)
    with pytest.raises(RuntimeError):
        report.write_report(dict(doc, created="later"), tmp_path / "rep")
    assert (tmp_path / "rep" / "report.json").read_text() == first         # old report intact
    assert sorted(os.listdir(tmp_path)) == ["rep"]                          # no partial/temp dirs
    with pytest.raises(RuntimeError):
        report.write_report(doc, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()
