"""Patch dropout: what the hook keeps, its own seeded draws, the unmasked last epoch, and that the hook
always comes off the model."""

import pytest
from shapes import labelled_folder

from clipseek.data.pairs import load_pairs
from clipseek.training import loop
from clipseek.training.loop import TrainConfig, train
from clipseek.training.patch_dropout import PatchDropout


def test_patch_dropout_keeps_the_class_token_and_a_random_half_of_the_patches(tiny_ckpt):
    import torch
    from transformers import CLIPModel

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


def test_draws_follow_the_seed_not_torchs_global_generator(tiny_ckpt):
    import torch
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(tiny_ckpt).train()
    emb = model.vision_model.embeddings
    px = torch.randn(4, 3, 32, 32)
    with PatchDropout(model, 0.5, seed=7) as drop, torch.no_grad():
        first = emb(px)
        torch.manual_seed(123)  # the global generator does not decide the draws
        second = emb(px)
        drop.reseed(7)
        assert torch.equal(emb(px), first) and not torch.equal(second, first)
        before = torch.get_rng_state()
        emb(px)
        assert torch.equal(torch.get_rng_state(), before)
    assert not emb._forward_hooks  # the context manager took the hook off


def test_masked_training_unmasks_the_last_epoch_and_saves_a_plain_clip(tiny_ckpt, tmp_path, monkeypatch):
    from transformers import CLIPModel

    tokens = []  # per training forward: (tokens the vision encoder got, tokens of the whole image)
    real_hook = PatchDropout._hook

    def spy(self, module, inputs, out):
        res = real_hook(self, module, inputs, out)
        if module.training:
            tokens.append((res.shape[1], out.shape[1]))
        return res

    monkeypatch.setattr(PatchDropout, "_hook", spy)
    pairs = load_pairs(str(labelled_folder(tmp_path / "data", per_class=4)))  # 16 images: 2 steps an epoch
    train(tiny_ckpt, pairs, str(tmp_path / "o"), TrainConfig(epochs=3, batch_size=8, warmup_steps=1,
                                                            mask_patches=0.5))
    assert len(tokens) == 6
    assert all(got < full for got, full in tokens[:4])   # epochs 1-2: half the patches
    assert all(got == full for got, full in tokens[4:])  # last epoch: whole images
    model = CLIPModel.from_pretrained(tmp_path / "o")
    assert not model.vision_model.embeddings._forward_hooks


def test_a_step_that_raises_mid_epoch_leaves_no_hook_on_the_model(tiny_ckpt, tmp_path, monkeypatch):
    models, steps = [], []
    real_init = PatchDropout.__init__

    def spy_init(self, model, share, seed=0):
        models.append(model)
        real_init(self, model, share, seed)

    def failing_step(model, opt, sched):
        steps.append(1)
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(PatchDropout, "__init__", spy_init)
    monkeypatch.setattr(loop, "optimizer_step", failing_step)
    pairs = load_pairs(str(labelled_folder(tmp_path / "data", per_class=4)))
    with pytest.raises(RuntimeError, match="simulated"):
        train(tiny_ckpt, pairs, str(tmp_path / "o"), TrainConfig(epochs=2, batch_size=8, mask_patches=0.5))
    assert len(models) == 1 and steps == [1]
    emb = models[0].vision_model.embeddings
    assert not emb._forward_hooks
    assert not models[0].training  # and the model is back in eval mode
