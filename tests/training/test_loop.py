"""The training loop: it learns, writes a standard checkpoint, resumes, skips bad images, is reproducible
and leaves the caller's random generators alone."""

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from shapes import CLASSES, labelled_folder, weights

from clipseek.data.pairs import load_pairs
from clipseek.errors import UsageError
from clipseek.training.loop import TrainConfig, train


def top1(ckpt, folder):
    from clipseek import classify, load_model

    enc = load_model(str(ckpt))
    paths = sorted(str(p) for p in folder.rglob("*.png"))
    res = classify(enc, paths, list(CLASSES), ["a photo of a {}."])
    return np.mean([p.label == os.path.basename(os.path.dirname(p.path)) for p in res.predictions])


def test_finetune_lowers_loss_and_raises_top1(tiny_ckpt, tmp_path):
    data = labelled_folder(tmp_path / "data")
    before = top1(tiny_ckpt, data)
    pairs = load_pairs(str(data), templates=("a photo of a {}.",))
    out = tmp_path / "ft"
    hist = train(tiny_ckpt, pairs, str(out), TrainConfig(epochs=12, lr=2e-3, batch_size=16, warmup_steps=3))
    assert hist[-1].loss < 0.8 * hist[0].loss
    after = top1(out, data)
    assert after > before and after >= 0.75, (before, after)


def test_output_is_a_standard_checkpoint_and_resumes(tiny_ckpt, tmp_path):
    from transformers import CLIPModel, CLIPProcessor, pipeline

    data = labelled_folder(tmp_path / "data", per_class=4)
    pairs = load_pairs(str(data))
    out = tmp_path / "run"
    train(tiny_ckpt, pairs, str(out), TrainConfig(epochs=1, batch_size=8, warmup_steps=1))
    assert {"model.safetensors", "config.json"} <= set(os.listdir(out))
    CLIPModel.from_pretrained(out)
    CLIPProcessor.from_pretrained(out)
    pipe = pipeline("zero-shot-image-classification", model=str(out))
    assert len(pipe(Image.new("RGB", (40, 40)), candidate_labels=["red", "blue"])) == 2
    hist = train(tiny_ckpt, pairs, str(out), TrainConfig(epochs=2, batch_size=8, warmup_steps=1), resume=True)
    assert [h.epoch for h in hist] == [2]
    log = json.loads((out / "training_log.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2]


def test_resume_without_checkpoint(tiny_ckpt, tmp_path):
    pairs = load_pairs(str(labelled_folder(tmp_path / "d", per_class=2)))
    with pytest.raises(UsageError, match="no checkpoint to resume"):
        train(tiny_ckpt, pairs, str(tmp_path / "empty"), TrainConfig(epochs=1), resume=True)


def test_unreadable_image_mid_epoch_is_skipped_and_counted(tiny_ckpt, tmp_path):
    data = labelled_folder(tmp_path / "data", per_class=3)
    (data / "red circle" / "broken.png").write_bytes(b"not a png")
    hist = train(tiny_ckpt, load_pairs(str(data)), str(tmp_path / "o"), TrainConfig(epochs=1, batch_size=13))
    assert hist[0].skipped == 1 and hist[0].images == 12


def test_train_cli(tiny_ckpt, tmp_path):
    data = labelled_folder(tmp_path / "data", per_class=3)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "clipseek.cli", "train", str(data), "--out", str(tmp_path / "o"),
           "--model", tiny_ckpt, "--epochs", "1", "--batch-size", "4"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "epoch 1: loss" in r.stdout and (tmp_path / "o" / "model.safetensors").is_file()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2 and "--resume" in r.stderr
    r = subprocess.run([sys.executable, "-m", "clipseek.cli", "train", str(data), "--out",
                        str(tmp_path / "new"), "--resume"], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "no checkpoint to resume" in r.stderr.strip()


def test_training_with_positives_and_a_group_share_ramp(tiny_ckpt, tmp_path):
    data = labelled_folder(tmp_path / "data", per_class=6)
    rows = [{"image": str(p.relative_to(data)), "caption": f"a {p.parent.name}", "colour": p.parent.name.split()[0],
             "shape": p.parent.name.split()[1]} for p in sorted(data.rglob("*.png"))]
    (data / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_pairs(str(data / "m.jsonl"), split=None, group_by="colour", positives=("colour", "shape"))
    assert pairs.attrs["shape"][:1] == [rows[0]["shape"]]
    cfg = TrainConfig(epochs=4, batch_size=6, warmup_steps=1, lr=2e-3, group_frac=0.2, group_frac_end=0.8,
                      positives=("colour", "shape"), seed=3)
    hist = train(tiny_ckpt, pairs, str(tmp_path / "o"), cfg)
    assert len(hist) == 4 and all(np.isfinite(h.loss) for h in hist)
    assert hist[-1].loss < 0.9 * hist[0].loss, [h.loss for h in hist]  # it learns with positives and a ramp
    start, big = weights(Path(tiny_ckpt)), weights(tmp_path / "o")
    train(tiny_ckpt, pairs, str(tmp_path / "tiny_lr"), TrainConfig(**{**cfg.__dict__, "lr": 1e-7}))
    small = weights(tmp_path / "tiny_lr")

    def moved(w):
        return sum(float((w[k].float() - start[k].float()).abs().sum()) for k in start)

    assert moved(big) > 0, "training changed no weight"
    assert moved(small) < 0.1 * moved(big), (moved(small), moved(big))  # the step size follows --lr
    log = json.loads((tmp_path / "o" / "training_log.json").read_text())
    assert log["config"]["positives"] == ["colour", "shape"] and log["config"]["group_frac_end"] == 0.8
    with pytest.raises(UsageError, match="no field 'size'"):
        load_pairs(str(data / "m.jsonl"), split=None, positives=("size",))
    with pytest.raises(UsageError, match="training data has no field size"):
        train(tiny_ckpt, pairs, str(tmp_path / "o2"), TrainConfig(epochs=1, positives=("size",)))


def test_same_seed_same_weights_and_the_global_generators_are_left_alone(tiny_ckpt, tmp_path):
    import torch

    data = labelled_folder(tmp_path / "data", per_class=4)
    rows = [{"image": str(p.relative_to(data)), "caption": f"a {p.parent.name}", "colour": p.parent.name.split()[0]}
            for p in sorted(data.rglob("*.png"))]
    (data / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_pairs(str(data / "m.jsonl"), split=None, group_by="colour")
    cfg = TrainConfig(epochs=2, batch_size=4, warmup_steps=1, group_frac=0.5, mask_patches=0.5, seed=5)

    def draws():
        return random.random(), float(np.random.random()), float(torch.rand(()))

    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = [draws() for _ in range(2)]
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    got = [draws()]
    train(tiny_ckpt, pairs, str(tmp_path / "a"), cfg)
    got.append(draws())
    assert got == expected  # train() neither reseeded nor advanced Python's, NumPy's or torch's generators
    train(tiny_ckpt, pairs, str(tmp_path / "b"), cfg)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    train(tiny_ckpt, pairs, str(tmp_path / "c"), TrainConfig(**{**cfg.__dict__, "seed": 6}))
    c = weights(tmp_path / "c")
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the seed matters


def test_a_31_pair_run_sees_every_pair_and_reaches_its_peak_lr(tiny_ckpt, tmp_path):
    data = labelled_folder(tmp_path / "data", per_class=8)
    (data / "red square" / "7.png").unlink()  # 31 pairs: batches of 16 and 15
    pairs = load_pairs(str(data))
    assert len(pairs.paths) == 31
    steps = []
    hist = train(tiny_ckpt, pairs, str(tmp_path / "o"), TrainConfig(epochs=2, lr=1e-3, batch_size=16),
                 on_step=steps.append)
    assert [h.images for h in hist] == [31, 31]
    assert max(s["lr"] for s in steps) == pytest.approx(1e-3)


def test_a_run_too_small_for_its_settings_warns_in_one_line():
    from clipseek.training.loop import size_warning

    line = size_warning(31, TrainConfig(epochs=3, batch_size=16, warmup_steps=100))
    assert "\n" not in line and "--warmup 100" in line and "6 optimizer steps" in line
    assert "--batch-size 128 is larger than the 31 pairs" in size_warning(31, TrainConfig())
    assert size_warning(10_000, TrainConfig(batch_size=64)) is None
