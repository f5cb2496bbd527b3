"""Issue 23 items 9, 13, 14 and part of 10: numbers, devices and text lengths are checked where they
enter. A NaN, an infinity or an out-of-range number given to any command is one line and exit 2 (never
exit 0 with NaN weights, scores of 0.0 or an option silently ignored); training stops with one line when
the loss or the weights stop being finite, keeping the last good checkpoint; a vector that is not finite
never reaches a score or the database; a label, caption, template or query longer than MAX_TEXT_CHARS is
refused before any tokenizer sees it, and a manifest line is never held whole."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import clipseek
from clipseek.core.prompts import MAX_TEXT_CHARS
from clipseek.errors import ClipseekError, UsageError
from helpers import FakeEncoder, cli_env, image_folder, make_image, run_cli

LONG = "x" * (MAX_TEXT_CHARS + 1)


def one_line(r, rc: int = 2) -> str:
    """The command failed with `rc` and exactly one line on stderr, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode == rc and len(lines) == 1 and lines[0].startswith("clipseek: error: "), \
        (r.returncode, r.stderr)
    return lines[0]


@pytest.fixture(scope="module")
def imgs(tmp_path_factory):
    return image_folder(tmp_path_factory.mktemp("numbers") / "imgs", 3)


# ---- item 14 and the numeric options of item 9 / 10: one line, exit 2 ------------------------------------
BAD_ARGS = [  # (command line, what the one line must name); IMGS, OUT and CKPT are filled in below
    (["search", "cat", "--threshold", "nan"], "--threshold"),
    (["search", "cat", "--threshold", "inf"], "--threshold"),
    (["search", "cat", "--add", "1e308:cat"], "at most 100"),
    (["search", "cat", "--ext", ",,,"], "names no file type"),
    (["search", "cat", "--ext", ""], "names no file type"),
    (["search", "cat", "--after", "9999-12-31"], "out of range"),
    (["search", "cat", "--before", "1200-01-01"], "out of range"),
    (["search", "cat", "--max-file-mb", "nan"], "--max-file-mb"),
    (["classify", "IMGS", "-l", "cat,dog", "--none-below", "nan", "--sort-into", "OUT"], "--none-below"),
    (["classify", "IMGS", "-l", "cat,dog", "--unsure-below", "nan", "--sort-into", "OUT"], "--unsure-below"),
    (["classify", "IMGS", "-l", "cat,dog", "--mode", "move"], "--sort-into"),
    (["classify", "IMGS", "-l", "cat,dog", "--dry-run"], "--sort-into"),
    (["classify", "IMGS", "-l", "cat,dog", "--max-file-mb", "nan"], "--max-file-mb"),
    (["classify", "IMGS", "-l", "cat,dog", "--max-file-mb", "inf"], "--max-file-mb"),
    (["classify", "IMGS", "-l", "cat,dog", "--device", "tpu"], "unknown device"),
    (["index", "IMGS", "--max-file-mb", "-inf"], "--max-file-mb"),
    (["index", "IMGS", "--watch", "--poll-interval", "nan"], "--poll-interval"),
    (["eval", "IMGS", "--max-file-mb", "nan"], "--max-file-mb"),
    (["embed", "IMGS", "--out", "OUT", "--max-file-mb", "inf"], "--max-file-mb"),
    (["embed", "IMGS", "--out", "OUT", "--num-gpus-per-worker", "nan"], "--num-gpus-per-worker"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--lr", "nan"], "--lr"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--lr", "-1"], "--lr"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--lr", "0"], "--lr"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--weight-decay", "nan"], "--weight-decay"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--group-frac", "nan"], "--group-frac"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--mask-patches", "inf"], "--mask-patches"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--cache-mb", "nan"], "--cache-mb"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--seed", "-1"], "--seed"),
    (["train", "IMGS", "--out", "OUT", "--scratch", "tiny", "--device", "tpu"], "unknown device"),
]


def test_bad_numbers_dates_and_sort_options_are_one_line_and_exit_2(imgs, tmp_path):
    fill = {"IMGS": str(imgs), "OUT": str(tmp_path / "out")}
    failures = []
    for args, named in BAD_ARGS:
        r = run_cli(*[fill.get(a, a) for a in args], cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        if not (r.returncode == 2 and len(lines) == 1 and named in lines[0]):
            failures.append((args, r.returncode, r.stderr[-300:]))
    assert not failures, failures
    assert not (tmp_path / "out").exists()


def test_a_device_this_machine_lacks_is_named_with_those_it_has(imgs, tiny_ckpt):
    import torch

    have = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())] + \
        (["mps"] if torch.backends.mps.is_available() else [])
    missing = [d for d in ("cuda", "mps", "cuda:999") if d not in have and not (d == "cuda" and "cuda:0" in have)]
    for device in missing:
        line = one_line(run_cli("classify", imgs, "-l", "cat,dog", "-m", tiny_ckpt, "--backend", "torch",
                                "--device", device))
        assert f"--device {device}" in line and f"it has: {', '.join(have)}" in line, line


def test_the_library_checks_the_same_numbers():
    from clipseek.core.images import ImageLimits
    from clipseek.gallery.query import Filter, parse_term
    from clipseek.model.loader import resolve_device
    from clipseek.training.loop import TrainConfig

    bad = [lambda: TrainConfig(lr=math.nan), lambda: TrainConfig(lr=-1.0), lambda: TrainConfig(weight_decay=math.nan),
           lambda: TrainConfig(epochs=0), lambda: TrainConfig(mask_patches=math.inf),
           lambda: ImageLimits.from_options(max_file_mb=math.nan),
           lambda: ImageLimits.from_options(max_file_mb=math.inf),
           lambda: parse_term("1e308:cat"), lambda: Filter.parse(ext=",,,"), lambda: Filter.parse(after="9999-12-31"),
           lambda: resolve_device("tpu"), lambda: resolve_device("cuda:999")]
    for i, make in enumerate(bad):
        with pytest.raises(UsageError):
            make()
            pytest.fail(f"case {i} was accepted")


def test_search_threshold_and_sort_thresholds_must_be_finite(tmp_path, fake_encoder):
    from clipseek.zero_shot import classify, sort_plan

    image_folder(tmp_path / "imgs", 3)
    with clipseek.Gallery(str(tmp_path / "g.db"), fake_encoder) as g:
        g.index([str(tmp_path / "imgs")])
        for bad in (math.nan, math.inf, 2.0):
            with pytest.raises(UsageError, match="threshold"):
                g.search("cat", threshold=bad)
    result = classify(fake_encoder, [str(p) for p in sorted((tmp_path / "imgs").iterdir())], ["cat", "dog"])
    with pytest.raises(UsageError, match="none_below"):
        sort_plan(result, str(tmp_path / "out"), none_below=math.nan)


# ---- item 9: training stops when the loss or the weights stop being finite --------------------------------
def _classes(root: Path) -> str:
    for k, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        for i in range(4):
            make_image(10 * k + i, (32, 32)).save(root / name / f"{i}.png")
    return str(root)


def _weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("where", ["loss", "weights"])
def test_training_stops_at_a_non_finite_loss_and_keeps_the_last_good_checkpoint(tiny_ckpt, tmp_path, monkeypatch,
                                                                                   where):
    import torch

    from clipseek.data.pairs import load_pairs
    from clipseek.training import loop

    pairs, out, seen = load_pairs(_classes(tmp_path / "data")), tmp_path / "run", {}
    real_epoch, real_loss, real_step = loop._Run.epoch, loop.contrastive_loss, loop.optimizer_step

    def epoch(self, e):
        seen["epoch"] = e
        return real_epoch(self, e)

    def loss(*a, **k):
        value = real_loss(*a, **k)
        if seen["epoch"] == 1 and "kept" not in seen:
            seen["kept"] = _weights(out)  # what the folder holds when epoch 2 goes wrong
        return value * math.nan if where == "loss" and seen["epoch"] == 1 else value

    def step(model, opt, sched):
        real_step(model, opt, sched)
        if where == "weights" and seen["epoch"] == 1:
            with torch.no_grad():
                next(model.parameters()).fill_(math.inf)

    monkeypatch.setattr(loop._Run, "epoch", epoch)
    monkeypatch.setattr(loop, "contrastive_loss", loss)
    monkeypatch.setattr(loop, "optimizer_step", step)
    with pytest.raises(loop.Diverged) as e:
        loop.train(tiny_ckpt, pairs, str(out), loop.TrainConfig(epochs=3, batch_size=4, warmup_steps=0))
    msg = str(e.value)
    assert "\n" not in msg and "epoch 2" in msg and "keeps the checkpoint of epoch 1" in msg, msg
    log = json.loads((out / "training_log.json").read_text())
    assert [x["epoch"] for x in log["epochs"]] == [1]
    after = _weights(out)
    assert all(torch.isfinite(t).all() for t in after.values())
    assert all(torch.equal(after[k], seen["kept"][k]) for k in after)


# ---- item 9: vectors that are not finite ---------------------------------------------------------------
class NaNForFlatImages(FakeEncoder):
    """A broken model: the vector of an image of one flat colour is NaN."""

    def encode_pixels(self, pixels):
        out = super().encode_pixels(pixels)
        flat = np.ptp(np.asarray(pixels)[:, 0].reshape(len(pixels), -1), axis=1) == 0  # one colour
        out[flat] = np.nan
        return out


def _with_a_flat_image(d: Path) -> Path:
    image_folder(d, 3)
    from PIL import Image

    Image.new("RGB", (40, 40), (200, 10, 10)).save(d / "flat.png")
    return d


def test_a_file_whose_vector_is_not_finite_is_skipped_everywhere(tmp_path):
    from clipseek.embed.stages import encode_columns, load_record, stack_records
    from clipseek.zero_shot import classify

    enc, d = NaNForFlatImages(), _with_a_flat_image(tmp_path / "imgs")
    files = sorted(str(p) for p in d.iterdir())
    res = classify(enc, files, ["cat", "dog"])
    assert [s.path for s in res.skipped] == [str(d / "flat.png")] and "not finite" in res.skipped[0].reason
    assert len(res.predictions) == 3 and np.isfinite(res.probs).all()

    with clipseek.Gallery(str(tmp_path / "g.db"), enc) as g:
        summary = g.index([str(d)])
        assert summary.added == 3 and [s.path for s in summary.skipped] == [str(d / "flat.png")]
        ids, vecs = g.store.all_vectors()
        assert len(ids) == 3 and np.isfinite(vecs).all()
        assert all(np.isfinite(r.score) for r in g.search("cat", k=10)) and len(g.search("cat", k=10)) == 3

    recs = [load_record(f, enc.preprocess_cfg) for f in files]
    cols = encode_columns(enc, stack_records(recs, recs[0]["pixels"].shape))
    bad = [str(p) for p, err in zip(cols["path"], cols["error"]) if err]
    assert bad == [str(d / "flat.png")] and np.isfinite(cols["vector"]).all()


def _poisoned(tiny_ckpt, dest: Path, key: str) -> str:
    import shutil

    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(tiny_ckpt, dest)
    w = load_file(str(dest / "model.safetensors"))
    w[key] = torch.full_like(w[key], math.nan)
    save_file(w, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return str(dest)


def test_a_model_with_nan_weights_never_prints_or_stores_nan(tiny_ckpt, tmp_path, imgs):
    from clipseek.zero_shot import classify

    text_nan = _poisoned(tiny_ckpt, tmp_path / "text-nan", "text_projection.weight")
    line = one_line(run_cli("classify", imgs, "-l", "cat,dog", "-m", text_nan, "--backend", "torch"), rc=1)
    assert "text vectors" in line and "not finite" in line, line

    image_nan = clipseek.load_model(_poisoned(tiny_ckpt, tmp_path / "image-nan", "visual_projection.weight"),
                                    device="cpu", backend="torch")
    res = classify(image_nan, sorted(str(p) for p in imgs.iterdir()), ["cat", "dog"])
    assert not res.predictions and len(res.skipped) == 3 and all("not finite" in s.reason for s in res.skipped)
    with pytest.raises(ClipseekError, match="image vectors"):
        image_nan.encode_images([make_image(0)])
    with pytest.raises(ClipseekError, match="logit_scale"):
        clipseek.load_model(_poisoned(tiny_ckpt, tmp_path / "scale-nan", "logit_scale"), device="cpu", backend="torch")


# ---- item 13: text lengths ----------------------------------------------------------------------------
def _jsonl_with_a_huge_label(path: Path, mb: int) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"path": "a.png", "label": "cat"}\n{"path": "b.png", "label": "')
        chunk = "x" * (1 << 20)
        for _ in range(mb):
            f.write(chunk)
        f.write('"}\n')
    return path


def test_a_100_mb_label_in_a_manifest_is_refused_fast_without_holding_it(tmp_path):
    from clipseek.data.labelled import read_manifest

    manifest = _jsonl_with_a_huge_label(tmp_path / "m.jsonl", 100)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(UsageError) as e:
            read_manifest(manifest)
        seconds, peak = time.perf_counter() - t0, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < 5 and peak < 32 << 20, (seconds, peak)
    assert "\n" not in str(e.value) and "m.jsonl:2" in str(e.value), str(e.value)

    r = subprocess.run([sys.executable, "-m", "clipseek.cli", "eval", str(manifest), "-m", "clipseek-demo"],
                       capture_output=True, text=True, env=cli_env(), timeout=120)
    assert "m.jsonl:2" in one_line(r)


def test_a_4_mb_label_in_a_labels_file_is_refused_before_the_model(tmp_path, imgs, tiny_ckpt):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\n" + "x" * (4 << 20) + "\ndog\n", encoding="utf-8")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "clipseek.cli", "classify", str(imgs), "--labels-file", str(labels),
                        "-m", tiny_ckpt], capture_output=True, text=True, env=cli_env(), timeout=120)
    line = one_line(r)
    assert f"{MAX_TEXT_CHARS:,}" in line and "line 2" in line and time.perf_counter() - t0 < 60, line


def test_long_queries_and_terms_are_refused_with_the_limit(tmp_path):
    d = str(image_folder(tmp_path / "imgs", 1))
    for args in (["search", LONG], ["search", "cat", "--add", LONG], ["search", "cat", "--subtract", "2:" + LONG],
                 ["classify", d, "-l", "cat," + LONG], ["classify", d, "-l", "cat", "--template", LONG + "{}"]):
        assert f"{MAX_TEXT_CHARS:,}" in one_line(run_cli(*args, cwd=tmp_path)), args


def test_every_reader_of_labels_captions_and_templates_caps_their_length(tmp_path):
    from clipseek.core.prompts import build_classifier, check_template, parse_labels
    from clipseek.data.labelled import read_captions, read_class_map, read_manifest
    from clipseek.data.pairs import read_caption_manifest
    from clipseek.gallery.query import query_terms

    (tmp_path / "caps.jsonl").write_text(json.dumps({"image": "a.png", "caption": LONG}) + "\n")
    (tmp_path / "labels.csv").write_text(f"path,label\na.png,{LONG}\n")
    (tmp_path / "classes.txt").write_text(f"cat: {LONG}\n")
    (tmp_path / "a.png").write_bytes(b"")
    cases = [lambda: read_captions(tmp_path / "caps.jsonl"), lambda: read_caption_manifest(tmp_path / "caps.jsonl"),
             lambda: read_manifest(tmp_path / "labels.csv"), lambda: read_class_map(tmp_path / "classes.txt"),
             lambda: parse_labels("cat," + LONG), lambda: check_template(LONG + "{}"),
             lambda: build_classifier(FakeEncoder(), ["cat", LONG]), lambda: query_terms(LONG),
             lambda: query_terms("cat", add=[LONG])]
    for i, case in enumerate(cases):
        with pytest.raises(UsageError, match=f"{MAX_TEXT_CHARS:,}"):
            case()
            pytest.fail(f"case {i} was accepted")
