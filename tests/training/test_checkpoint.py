"""The run folder: a kill between the save's two renames loses nothing and `--resume` finds the run; the
checks before a run starts; from-scratch presets and the starting checkpoint."""

import json
import os

import pytest
from shapes import labelled_folder, weights

from clipseek import _io
from clipseek.data.pairs import load_pairs
from clipseek.errors import UsageError
from clipseek.model.scratch import SIZES
from clipseek.training.checkpoint import (
    STATE_DIR,
    check_start,
    recover_run,
    scratch_checkpoint,
    start_checkpoint,
)
from clipseek.training.loop import TrainConfig, train


def _tensors_equal(a, b):
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_kill_between_the_two_renames_resumes_and_loses_nothing(tiny_ckpt, tmp_path, monkeypatch):
    pairs = load_pairs(str(labelled_folder(tmp_path / "data", per_class=4)))
    cfg = TrainConfig(epochs=2, batch_size=8, warmup_steps=1)
    straight = tmp_path / "straight"
    train(tiny_ckpt, pairs, str(straight), cfg)

    out, seen = tmp_path / "run", {}
    real_replace = os.replace

    def killed_between_the_renames(src, dst):
        """The epoch-2 save: the epoch-1 run is aside, the new one not yet in; the process dies here."""
        if os.fspath(dst) == str(out) and list(tmp_path.glob(".run.old-*")):
            raise KeyboardInterrupt("killed")
        real_replace(src, dst)

    def on_step(info):  # in epoch 2 the folder holds the epoch-1 checkpoint
        if info["epoch"] == 2 and not seen:
            seen.update(weights(out))

    monkeypatch.setattr(_io.os, "replace", killed_between_the_renames)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_ckpt, pairs, str(out), cfg, on_step=on_step)
    monkeypatch.undo()
    assert not out.exists() and seen  # the kill window: no run folder at all
    hist = train(tiny_ckpt, pairs, str(out), cfg, resume=True)  # recovers the epoch-1 run, redoes epoch 2
    assert [h.epoch for h in hist] == [2]
    assert _tensors_equal(weights(out), weights(straight))  # as if the run had never stopped
    assert [e["epoch"] for e in json.loads((out / "training_log.json").read_text())["epochs"]] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run", "straight"]  # no leftovers


def test_recovery_puts_back_the_last_complete_checkpoint(tiny_ckpt, tmp_path):
    pairs = load_pairs(str(labelled_folder(tmp_path / "data", per_class=2)))
    out = tmp_path / "run"
    train(tiny_ckpt, pairs, str(out), TrainConfig(epochs=1, batch_size=4, warmup_steps=1))
    epoch1 = weights(out)
    os.replace(out, tmp_path / ".run.old-1-cafe")  # atomic_dir's first rename, by hand
    assert recover_run(out)
    assert _tensors_equal(weights(out), epoch1)
    assert [e["epoch"] for e in json.loads((out / "training_log.json").read_text())["epochs"]] == [1]


def test_recover_run_finds_a_folder_left_aside_by_older_versions(tmp_path):
    out = tmp_path / "run"
    assert not recover_run(out)
    (tmp_path / ".run.old" / STATE_DIR).mkdir(parents=True)
    (tmp_path / ".run.old" / STATE_DIR / "state.pt").write_bytes(b"x")
    assert recover_run(out) and (out / STATE_DIR / "state.pt").is_file()


def test_scratch_small_builds_the_bundled_models_architecture(tmp_path):
    """`clipseek train --scratch small` (the recorded recipe) starts from the bundled model's shape."""
    from transformers import CLIPConfig

    from clipseek.data.synthetic import vocabulary
    from clipseek.model.loader import BUNDLED_MODELS

    made = CLIPConfig.from_pretrained(scratch_checkpoint(str(tmp_path / "s"), "small", vocabulary()))
    bundled = CLIPConfig.from_pretrained(BUNDLED_MODELS["clipseek-demo"])
    for tower in ("vision_config", "text_config"):
        keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "hidden_act",
                "image_size", "patch_size", "max_position_embeddings")
        a, b = getattr(made, tower).to_dict(), getattr(bundled, tower).to_dict()
        assert {k: a.get(k) for k in keys} == {k: b.get(k) for k in keys}, tower
    assert made.projection_dim == bundled.projection_dim


def test_check_start_refusals(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(UsageError, match="give either --model"):
        check_start(out)
    with pytest.raises(UsageError, match="give either --model"):
        check_start(out, model="m", scratch="tiny")
    with pytest.raises(UsageError, match="--scratch must be one of tiny, small, not 'huge'"):
        check_start(out, scratch="huge")
    with pytest.raises(UsageError, match="no checkpoint to resume"):
        check_start(out, resume=True)
    check_start(out, scratch="tiny")  # a new folder: fine
    (tmp_path / ".run.old-1-cafe" / STATE_DIR).mkdir(parents=True)  # a run whose save was killed
    (tmp_path / ".run.old-1-cafe" / STATE_DIR / "state.pt").write_bytes(b"x")
    with pytest.raises(UsageError, match="already holds a training run; use --resume"):
        check_start(out, model="m")
    assert (out / STATE_DIR / "state.pt").is_file()  # recovered, so --resume finds it
    check_start(out, resume=True)


def test_start_checkpoint_from_scratch_is_temporary_and_covers_the_captions(tmp_path):
    import torch
    from transformers import CLIPConfig, CLIPTokenizer

    pairs = load_pairs(str(labelled_folder(tmp_path / "data", per_class=1)))
    before = torch.get_rng_state()
    with start_checkpoint(tmp_path / "run", pairs, scratch="tiny", templates=("art of a {}.",), seed=3) as start:
        tok = CLIPTokenizer.from_pretrained(start)
        assert CLIPConfig.from_pretrained(start).vision_config.image_size == SIZES["tiny"]["image_size"]
        vocab = tok.get_vocab()  # words of the captions and of the templates are in the vocabulary
        assert {"circle</w>", "square</w>", "art</w>"} <= set(vocab) and "tree</w>" not in vocab
        assert os.path.isdir(start)
    assert not os.path.exists(start)
    assert torch.equal(torch.get_rng_state(), before)
    with start_checkpoint(tmp_path / "run", pairs, resume=True) as start:
        assert start == str(tmp_path / "run")
