"""`clipseek models` (table and JSON, instant: no model, no torch) and open_clip errors at the CLI."""

import json
import subprocess
import sys
from pathlib import Path

from helpers import run_cli as run

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "open_clip" / "vit-quickgelu-40"


def fake_cache(root: Path, repo: str) -> None:
    snap = root / ("models--" + repo.replace("/", "--")) / "snapshots" / ("0" * 8)
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(b"x")


def test_models_json_names_sources_picks_and_cached(tmp_path):
    fake_cache(tmp_path, "openai/clip-vit-base-patch32")
    r = run("models", "--format", "json", "--cache-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    cached = {m["hub_id"]: m["cached"] for m in doc["models"]}
    assert cached["openai/clip-vit-base-patch32"] and sum(cached.values()) == 1
    assert set(doc["picks"]) == {"fastest", "best_on_cpu", "best_overall", "multilingual"}
    assert all(doc["picks"].values()) and doc["speed"]["machine"]
    m = next(m for m in doc["models"] if m["hub_id"] == "hf-hub:apple/DFN5B-CLIP-ViT-H-14-378")
    assert m["imagenet_top1"] == 84.37 and "ViT-H-14-378-quickgelu / dfn5b" in m["top1_source"]


def test_models_table_says_how_to_pick(tmp_path):
    r = run("models", "--cache-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    for text in ("openai/clip-vit-base-patch32", "hf-hub:apple/DFN5B-CLIP-ViT-H-14-378", "How to pick",
                 "fastest on CPU", "best on CPU", "best overall", "multilingual", "openclip_results.csv"):
        assert text in r.stdout
    assert run("models", "--format", "csv").returncode == 2


def test_models_is_instant_no_torch():
    code = ("import sys, io, contextlib; from clipseek.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['models', '--format', 'json'])\n"
            "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.split() == ["0", "False", "False"], r.stderr


def test_open_clip_checkpoint_at_the_cli(tmp_path):
    r = run("classify", FIXTURE / "wide.png", "--labels", "cat,dog", "--model", FIXTURE, "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["scoring"] == "softmax"
    bad = tmp_path / "convnext"
    bad.mkdir()
    cfg = json.loads((FIXTURE / "open_clip_config.json").read_text())
    cfg["model_cfg"]["vision_cfg"]["timm_model_name"] = "convnext_base"
    (bad / "open_clip_config.json").write_text(json.dumps(cfg))
    r = run("classify", FIXTURE / "wide.png", "--labels", "cat,dog", "--model", bad)
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "unsupported open_clip architecture: timm image tower 'convnext_base'" in r.stderr
