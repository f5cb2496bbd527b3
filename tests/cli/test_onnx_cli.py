"""`--backend onnx` and `clipseek export onnx` as a user runs them: the search and classify paths start
without importing torch or transformers, and a gallery indexed with torch searches with ONNX."""

import json
import subprocess
import sys

import pytest

from helpers import cli_env, image_folder
from helpers import run_cli as run

pytest.importorskip("onnxruntime")

# Runs the CLI in a new process, then reports which heavy modules that process imported.
PROBE = ("import sys; from clipseek.cli import main; rc = main(sys.argv[1:]); "
         "print('HEAVY=' + ','.join(m for m in ('torch', 'transformers') if m in sys.modules), file=sys.stderr); "
         "sys.exit(rc)")


def probe(*args):
    r = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True,
                       env=cli_env(), timeout=300)
    heavy = [line for line in r.stderr.splitlines() if line.startswith("HEAVY=")]
    return r, heavy[-1].removeprefix("HEAVY=") if heavy else None


@pytest.fixture
def photos(tmp_path):
    return image_folder(tmp_path / "photos", 8, lambda i: (40 + i, 36))


def test_search_and_classify_run_without_torch(tiny_ckpt, photos, tmp_path):
    db = tmp_path / "g.db"
    r = run("index", photos, "--db", db, "--model", tiny_ckpt, "--backend", "torch")
    assert r.returncode == 0, r.stderr
    want = run("search", "red car", "--db", db, "--backend", "torch", "-f", "json")
    assert want.returncode == 0, want.stderr
    first = run("search", "red car", "--db", db, "--backend", "onnx", "-f", "json")  # exports if needed
    assert first.returncode == 0, first.stderr

    r, heavy = probe("search", "red car", "--db", db, "--backend", "onnx", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert heavy == ""  # neither torch nor transformers was imported
    got, ref = json.loads(r.stdout)["results"], json.loads(want.stdout)["results"]
    assert [x["path"] for x in got] == [x["path"] for x in ref]  # torch-indexed, ONNX-searched
    assert [x["score"] for x in got] == pytest.approx([x["score"] for x in ref], abs=1e-5)

    r, heavy = probe("classify", photos, "-l", "cat,dog,red car", "--model", tiny_ckpt, "--backend", "onnx",
                     "-f", "json")
    assert r.returncode == 0, r.stderr
    assert heavy == "" and len(json.loads(r.stdout)["results"]) == 8


def test_export_then_use_the_folder(tiny_ckpt, photos, tmp_path):
    out = tmp_path / "tiny-onnx"
    r = run("export", "onnx", tiny_ckpt, out, "--int8")
    assert r.returncode == 0, r.stderr
    assert f"exported {tiny_ckpt} to {out}" in r.stdout and "text.int8.onnx" in r.stdout
    manifest = json.loads((out / "clipseek-onnx.json").read_text())
    assert manifest["source"] == tiny_ckpt and "backend=torch dtype=float32" in manifest["fingerprint"]

    r, heavy = probe("classify", photos, "-l", "cat,dog", "--model", out, "--dtype", "int8", "-f", "json")
    assert r.returncode == 0, r.stderr
    assert heavy == ""  # the default backend (auto) picks ONNX for an export folder


def test_bad_backend_and_export_arguments_are_usage_errors(tiny_ckpt, photos, tmp_path):
    r = run("classify", photos, "-l", "cat,dog", "--model", tiny_ckpt, "--backend", "tensorrt")
    assert r.returncode == 2 and "unknown backend 'tensorrt'" in r.stderr
    r = run("classify", photos, "-l", "cat,dog", "--model", tiny_ckpt, "--backend", "onnx", "--dtype", "fp16")
    assert r.returncode == 2 and "--backend onnx runs on the CPU" in r.stderr
    r = run("export", "onnx", tiny_ckpt, photos)  # a folder of the user's: never replaced
    assert r.returncode == 2 and "not an ONNX export folder" in r.stderr
    assert len(list(photos.iterdir())) == 8
