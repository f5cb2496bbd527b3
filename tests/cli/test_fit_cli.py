"""`clipseek fit` and `--examples/--classifier` on classify, eval and classify --sort-into, end to end
with the bundled demo model on synthetic shapes it was not trained on (render seeds far from its
training set's)."""

import json
import os

import pytest

from clipseek.data.synthetic import render
from helpers import assert_schema_documented
from helpers import run_cli as run

CLASSES = [("blue", "circle"), ("blue", "square"), ("red", "star"), ("red", "cross")]
SEED = 91_000_000


def shapes(root, n, offset, classes=CLASSES):
    for k, (colour, shape) in enumerate(classes):
        d = root / f"{colour} {shape}"
        d.mkdir(parents=True)
        for i in range(n):
            s = SEED + offset + 100 * k + i
            render(colour, shape, ("small", "large")[i % 2], ("plain", "noise", "stripes")[s % 3], s).save(
                d / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fewshot")
    shapes(root / "examples", 12, 0)
    shapes(root / "data" / "train", 10, 10_000)
    shapes(root / "data" / "test", 8, 20_000)
    return root


@pytest.fixture(scope="module")
def fitted(data):
    out = data / "shapes.npz"
    r = run("fit", data / "examples", "--out", out, "--model", "clipseek-demo", "--coverage", "0.8",
            "--format", "json", "--cache-dir", data / "cache")
    assert r.returncode == 0, r.stderr
    return out, json.loads(r.stdout)


def test_fit_writes_a_self_describing_file(fitted):
    out, doc = fitted
    assert os.path.getsize(out) < 100_000 and doc["classifier"] == str(out)
    assert [c["name"] for c in doc["classes"]] == [f"{c} {s}" for c, s in sorted(CLASSES)]
    assert doc["selection"]["asked"] == "auto" and doc["selection"]["why"].startswith(f"auto: {doc['method']}")
    assert doc["conformal"]["coverage"] == 0.8 and doc["n_calibration"] + doc["n_fitting"] == 48
    assert doc["fingerprint"].startswith("clipseek-demo@")


def test_classify_with_the_file_gives_sets(fitted, data):
    out, _ = fitted
    r = run("classify", data / "data" / "test", "--classifier", out, "--model", "clipseek-demo", "-f", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["classifier"]["conformal"]["coverage"] == 0.8 and len(doc["results"]) == 32
    truth = [os.path.basename(os.path.dirname(x["path"])) for x in doc["results"]]
    assert sum(t in x["set"] for t, x in zip(truth, doc["results"])) / 32 >= 0.7
    assert all(x["set"] and x["set"][0] == x["label"] for x in doc["results"])
    r = run("classify", data / "data" / "test" / "red star", "--classifier", out, "--model", "clipseek-demo")
    assert r.returncode == 0 and "set (80%)" in r.stdout


def test_sort_into_sends_images_whose_set_is_not_one_label_to_unsure(fitted, data, tmp_path):
    out, _ = fitted
    doc = json.loads(run("classify", data / "data" / "test", "--classifier", out, "--model", "clipseek-demo",
                         "-f", "json").stdout)
    sets = {x["path"]: x["set"] for x in doc["results"]}
    r = run("classify", data / "data" / "test", "--classifier", out, "--model", "clipseek-demo",
            "--sort-into", tmp_path / "sorted", "--format", "json")
    assert r.returncode == 0, r.stderr
    for f in json.loads(r.stdout)["files"]:
        folder = os.path.basename(os.path.dirname(f["destination"]))
        assert folder == ("_unsure" if len(sets[f["source"]]) != 1 else sets[f["source"]][0])


def test_eval_reports_coverage_and_set_size(fitted, data):
    out, _ = fitted
    r = run("eval", data / "data", "--model", "clipseek-demo", "--classifier", out, "--no-probe", "-f", "json",
            "--cache-dir", data / "cache")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    row = doc["rows"][-1]
    assert row["kind"] == "few-shot" and row["fewshot"]["source"] == str(out)
    m = row["metrics"]
    assert m["coverage_target"] == 0.8 and 0 <= m["coverage"] <= 1 and 1 <= m["mean_set_size"] <= 4
    assert m["n"] == 32 and "top1" in m
    assert_schema_documented(doc)


def test_eval_shots_curves_and_the_report_plot(data, tmp_path):
    r = run("eval", data / "data", "--model", "clipseek-demo", "--shots", "1,2", "--seeds", "2", "--coverage",
            "0.8", "--no-probe", "-f", "json", "--cache-dir", data / "cache", "--report", tmp_path / "rep")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    rows = doc["fewshot_curves"]["rows"]
    assert {(x["method"], x["shots"]) for x in rows} == {("zero-shot", 0)} | {
        (m, k) for m in ("text", "prototype", "tip", "logistic", "auto") for k in (1, 2)}
    for x in rows:
        assert {"method", "shots", "top1", "coverage", "mean_set_size"} <= set(x)
    one = next(x for x in rows if x["method"] == "tip" and x["shots"] == 1)
    assert one["coverage"] is None and one["note"].startswith("too few calibration examples for coverage 0.8")
    two = next(x for x in rows if x["method"] == "tip" and x["shots"] == 2)
    assert two["coverage"] is not None and two["seeds"] == 2
    assert (tmp_path / "rep" / "fewshot_curves.png").stat().st_size > 1000
    assert "fewshot_curves.png" in (tmp_path / "rep" / "report.html").read_text()
    assert_schema_documented(doc)


def test_one_class_flags_the_unusual(data, tmp_path):
    normal = shapes(tmp_path / "normal", 24, 30_000, classes=[("blue", "square")])
    r = run("fit", normal, "--out", tmp_path / "ok.npz", "--model", "clipseek-demo", "--false-alarm", "0.1")
    assert r.returncode == 0, r.stderr
    assert "false-alarm rate <= 0.1" in r.stdout
    r = run("eval", data / "data", "--model", "clipseek-demo", "--classifier", tmp_path / "ok.npz", "--no-probe",
            "-f", "json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)["rows"][-1]
    assert row["kind"] == "one-class" and row["metrics"]["n_normal"] == 8 and row["metrics"]["n_other"] == 24
    assert row["metrics"]["detection_rate"] >= 0.5


def test_a_classifier_of_another_model_is_refused_in_one_line(fitted, data, tiny_ckpt):
    r = run("classify", data / "data" / "test" / "red star", "--classifier", fitted[0], "--model", tiny_ckpt)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "was fitted with model clipseek-demo" in r.stderr


@pytest.mark.parametrize("case,match", [
    ("broken", "example class 'broken' has no readable image"),
    ("one", "1 usable example image; need at least 2"),
    ("coverage", "too few calibration examples for coverage 0.95: need >= 19, have"),
])
def test_example_mismatches_are_one_line(data, tmp_path, case, match):
    ex = tmp_path / "ex"
    if case == "one":
        shapes(ex, 1, 40_000, classes=[("red", "star")])
    else:
        shapes(ex, 4, 40_000)
    if case == "broken":
        (ex / "broken").mkdir()
        (ex / "broken" / "x.png").write_bytes(b"not a png")
    extra = ["--coverage", "0.95"] if case == "coverage" else []
    r = run("fit", ex, "--out", tmp_path / "c.npz", "--model", "clipseek-demo", "--no-cache", *extra)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and match in r.stderr, r.stderr
    assert not (tmp_path / "c.npz").exists()


def test_serve_with_examples_and_a_classifier_of_another_model(fitted, data, encoder, tmp_path, monkeypatch,
                                                               capsys):
    import uvicorn
    from fastapi.testclient import TestClient

    from clipseek.cli import main
    from helpers import indexed_gallery

    db = indexed_gallery(tmp_path / "photos", encoder, 3)
    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(app))
    assert main(["serve", "--db", db, "--examples", str(data / "examples"), "--coverage", "0.8"]) == 0
    with TestClient(calls[0], base_url="http://127.0.0.1") as c:
        img = next((data / "data" / "test" / "red star").iterdir()).read_bytes()
        r = c.post("/api/classify/examples", files={"file": ("x.png", img)})
        assert r.status_code == 200 and r.json()["coverage"] == 0.8 and len(r.json()["set"]) >= 1
    capsys.readouterr()
    assert main(["serve", "--db", db, "--classifier", str(fitted[0])]) == 2    # fitted with clipseek-demo
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "was fitted with model clipseek-demo" in err


def test_example_options_without_examples_are_refused(data):
    r = run("classify", data / "data" / "test" / "red star", "--labels", "a,b", "--coverage", "0.9",
            "--model", "clipseek-demo")
    assert r.returncode == 2 and r.stderr.strip() == \
        "clipseek: error: --coverage needs --examples DIR or --classifier FILE"
