import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw

from clipseek.errors import UsageError
from clipseek.training.loop import TrainConfig, load_pairs, read_caption_manifest, train

CLASSES = {"red circle": ((220, 30, 30), "circle"), "blue square": ((30, 60, 220), "square"),
           "green circle": ((30, 170, 50), "circle"), "red square": ((220, 30, 30), "square")}


def labelled_folder(root, per_class=12):
    rng = np.random.RandomState(0)
    for name, (colour, shape) in CLASSES.items():
        d = root / name
        d.mkdir(parents=True)
        for i in range(per_class):
            img = Image.new("RGB", (32, 32), tuple(int(x) for x in rng.randint(90, 160, 3)))
            x, y, r = rng.randint(9, 23), rng.randint(9, 23), rng.randint(6, 9)
            draw = ImageDraw.Draw(img)
            (draw.ellipse if shape == "circle" else draw.rectangle)((x - r, y - r, x + r, y + r), fill=colour)
            img.save(d / f"{i}.png")
    return root


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


def test_manifest_bad_lines(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"image": "ok.png", "caption": "a red circle"}) + "\n" +
                 json.dumps({"image": "gone.png", "caption": "a blue star"}) + "\n")
    pairs = read_caption_manifest(m)
    assert pairs.paths == [str(tmp_path / "ok.png")] and len(pairs.skipped) == 1
    m.write_text(m.read_text() + "{not json\n")
    with pytest.raises(UsageError, match=r"m.jsonl:3: malformed"):
        read_caption_manifest(m)


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


def test_grouped_batches_cover_everything_once_and_share_a_group():
    import torch

    from clipseek.training.loop import GroupedBatchSampler

    groups = [["red", "blue", "green"][i % 3] for i in range(300)]
    sampler = GroupedBatchSampler(groups, batch_size=10, frac=0.6, generator=torch.Generator().manual_seed(1))
    batches = list(sampler)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) and len(flat) >= 300 - 3 * 10
    assert all(len(b) == 10 for b in batches)
    pure = sum(len({groups[i] for i in b}) == 1 for b in batches)
    assert pure >= 0.5 * len(batches) * 0.9  # ~60% of items are in one-group batches


def test_group_by_needs_the_field(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"image": "ok.png", "caption": "x", "colour": "red"}) + "\n")
    assert read_caption_manifest(m, group_by="colour").groups == ["red"]
    with pytest.raises(UsageError, match="no field 'shape'"):
        read_caption_manifest(m, group_by="shape")


def test_positive_matcher_follows_what_each_caption_names():
    from clipseek.training.loop import PositiveMatcher

    captions = ["a red star", "a star", "a photo of a red shape", "a blue star", "a photo", "a red starfish"]
    colour = ["red", "blue", "red", "blue", "green", "red"]
    shape = ["star", "star", "circle", "star", "ring", "starfish"]
    m = PositiveMatcher(captions, {"colour": colour, "shape": shape}).mask(list(range(6)))
    # [i, j]: image i has every value caption j names; built by hand from the lists above
    expected = np.array([
        # "a red star" "a star" "red shape" "a blue star" "a photo" "red starfish"
        [1, 1, 1, 0, 1, 0],   # red star
        [0, 1, 0, 1, 1, 0],   # blue star
        [0, 0, 1, 0, 1, 0],   # red circle
        [0, 1, 0, 1, 1, 0],   # blue star
        [0, 0, 0, 0, 1, 0],   # green ring
        [0, 0, 1, 0, 1, 1],   # red starfish: "star" is not a whole word of "starfish"
    ], dtype=bool)
    assert (m == expected).all()
    sub = PositiveMatcher(captions, {"colour": colour, "shape": shape}).mask([3, 0])
    assert (sub == expected[np.ix_([3, 0], [3, 0])]).all()


def test_contrastive_loss_matches_clip_and_spreads_targets_over_positives():
    import torch
    import torch.nn.functional as F

    from clipseek.training.loop import contrastive_loss

    torch.manual_seed(0)
    logits = torch.randn(5, 5) * 3
    eye = torch.eye(5, dtype=torch.bool)
    ref = (F.cross_entropy(logits, torch.arange(5)) + F.cross_entropy(logits.t(), torch.arange(5))) / 2
    assert torch.allclose(contrastive_loss(logits), ref)
    assert torch.allclose(contrastive_loss(logits, eye), ref)
    pos = eye.clone()
    pos[0, 1] = True  # image 0 also matches caption 1
    li = [-(torch.log_softmax(logits[i], 0)[pos[i]]).mean() for i in range(5)]
    lt = [-(torch.log_softmax(logits[:, j], 0)[pos[:, j]]).mean() for j in range(5)]
    assert torch.allclose(contrastive_loss(logits, pos), (torch.stack(li).mean() + torch.stack(lt).mean()) / 2)


def test_training_with_positives_and_a_group_share_ramp(tiny_ckpt, tmp_path):
    data = labelled_folder(tmp_path / "data", per_class=6)
    rows = [{"image": str(p.relative_to(data)), "caption": f"a {p.parent.name}", "colour": p.parent.name.split()[0],
             "shape": p.parent.name.split()[1]} for p in sorted(data.rglob("*.png"))]
    (data / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = load_pairs(str(data / "m.jsonl"), split=None, group_by="colour", positives=("colour", "shape"))
    assert pairs.attrs["shape"][:1] == [rows[0]["shape"]]
    cfg = TrainConfig(epochs=3, batch_size=6, warmup_steps=1, group_frac=0.2, group_frac_end=0.8,
                      positives=("colour", "shape"))
    hist = train(tiny_ckpt, pairs, str(tmp_path / "o"), cfg)
    assert len(hist) == 3 and all(np.isfinite(h.loss) for h in hist)
    log = json.loads((tmp_path / "o" / "training_log.json").read_text())
    assert log["config"]["positives"] == ["colour", "shape"] and log["config"]["group_frac_end"] == 0.8
    with pytest.raises(UsageError, match="no field 'size'"):
        load_pairs(str(data / "m.jsonl"), split=None, positives=("size",))
    with pytest.raises(UsageError, match="labelled folder has only the field 'label'"):
        load_pairs(str(data), positives=("colour",))
    folder = load_pairs(str(data), positives=("label",))
    assert folder.attrs["label"][0] in CLASSES


def test_pair_cache_gives_every_epoch_the_same_float16_pixels(tmp_path):
    from clipseek.core.preprocess import PreprocessCfg, preprocess
    from clipseek.model.scratch import make_processor
    from clipseek.training.loop import _PairDataset

    data = labelled_folder(tmp_path / "data", per_class=2)
    pairs = load_pairs(str(data))
    cfg = PreprocessCfg.from_processor(make_processor(32))
    cached = _PairDataset(pairs, cfg, cache_mb=1)
    first = [cached[i][0] for i in range(len(cached))]
    assert len(cached.cache) == len(cached)
    again = [cached[i][0] for i in range(len(cached))]
    exact = preprocess(Image.open(pairs.paths[0]).convert("RGB"), cfg)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert first[0].dtype == np.float32 and np.allclose(first[0], exact, atol=4e-3)
    uncached = _PairDataset(pairs, cfg, cache_mb=0)  # 8 images x 12 KB do not fit in 0 MB
    assert uncached.cache is None and np.array_equal(uncached[0][0], exact)


def test_scratch_small_builds_the_bundled_models_architecture(tmp_path):
    """`clipseek train --scratch small` (the recorded recipe) starts from the bundled model's shape."""
    from transformers import CLIPConfig

    from clipseek.cli.train_cmd import SIZES
    from clipseek.data.synthetic import vocabulary
    from clipseek.model.loader import BUNDLED_MODELS
    from clipseek.model.scratch import save_new_checkpoint

    made = CLIPConfig.from_pretrained(save_new_checkpoint(str(tmp_path / "s"), vocabulary(), **SIZES["small"]))
    bundled = CLIPConfig.from_pretrained(BUNDLED_MODELS["clipseek-demo"])
    for tower in ("vision_config", "text_config"):
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
                "image_size", "patch_size", "max_position_embeddings")
        a, b = getattr(made, tower).to_dict(), getattr(bundled, tower).to_dict()
        assert {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}, tower
    assert made.projection_dim == bundled.projection_dim


def test_patch_dropout_keeps_the_class_token_and_a_random_half_of_the_patches(tiny_ckpt):
    import torch
    from transformers import CLIPModel

    from clipseek.training.loop import PatchDropout

    model = CLIPModel.from_pretrained(tiny_ckpt)
    emb = model.vision_model.embeddings
    px = torch.randn(3, 3, model.config.vision_config.image_size, model.config.vision_config.image_size)
    emb.eval()
    with torch.no_grad():
        full = emb(px)
    drop = PatchDropout(model, 0.5)
    emb.train()
    with torch.no_grad():
        part = emb(px)
    n = full.shape[1] - 1
    assert part.shape == (3, 1 + round(n / 2), full.shape[2])
    assert torch.equal(part[:, 0], full[:, 0])  # the class token
    for b in range(3):  # every kept token is one of that image's own patches (with its position), once
        match = [[k for k in range(1, n + 1) if torch.equal(part[b, j], full[b, k])] for j in range(1, part.shape[1])]
        assert all(len(m) == 1 for m in match) and len({m[0] for m in match}) == len(match)
    emb.eval()
    with torch.no_grad():
        assert torch.equal(emb(px), full)  # inference sees whole images
    drop.remove()
    emb.train()
    with torch.no_grad():
        assert emb(px).shape == full.shape


def test_masked_training_unmasks_the_last_epoch_and_saves_a_plain_clip(tiny_ckpt, tmp_path, monkeypatch):
    from transformers import CLIPModel

    import clipseek.training.loop as tr

    tokens = []  # per training forward: (tokens the vision encoder got, tokens of the whole image)
    real_hook = tr.PatchDropout._hook

    def spy(self, module, inputs, out):
        res = real_hook(self, module, inputs, out)
        if module.training:
            tokens.append((res.shape[1], out.shape[1]))
        return res

    monkeypatch.setattr(tr.PatchDropout, "_hook", spy)
    pairs = load_pairs(str(labelled_folder(tmp_path / "data", per_class=4)))  # 16 images: 2 steps an epoch
    train(tiny_ckpt, pairs, str(tmp_path / "o"), TrainConfig(epochs=3, batch_size=8, warmup_steps=1,
                                                            mask_patches=0.5))
    assert len(tokens) == 6
    assert all(got < full for got, full in tokens[:4])   # epochs 1-2: half the patches
    assert all(got == full for got, full in tokens[4:])  # last epoch: whole images
    model = CLIPModel.from_pretrained(tmp_path / "o")
    assert not model.vision_model.embeddings._forward_hooks
